"""Tests of the losses on hand-computed tiny examples, their properties and mixed precision."""

from __future__ import annotations

import dataclasses
import math
import types

import numpy as np
import pytest
import tensorflow as tf

from image_completion.core import losses
from image_completion.core.losses import LossWeights


def _tiny_batch():
    """Two 2x2 RGB examples whose L1 values are worked out by hand below."""
    y_true = np.full((2, 2, 2, 3), 0.5, np.float32)
    y_pred = np.empty_like(y_true)
    # example 0: each pixel grey; |diff| per pixel = 0.4, 0.4 / 0.3, 0.3
    y_pred[0] = np.array([[0.9, 0.1], [0.2, 0.8]], np.float32)[..., None]
    # example 1: every pixel (0.5, 0.6, 0.7); |diff| per channel = 0, 0.1, 0.2 -> mean 0.1
    y_pred[1] = np.array([0.5, 0.6, 0.7], np.float32)
    mask = np.zeros((2, 2, 2, 1), np.float32)
    mask[0, 0, 0] = 1.0  # example 0: the top-left pixel is the hole; example 1: no hole
    return y_true, y_pred, mask


def test_contextual_losses_hand_computed():
    y_true, y_pred, mask = _tiny_batch()
    valid = losses.contextual_loss_valid(y_true, y_pred, mask).numpy()
    hole = losses.contextual_loss_hole(y_true, y_pred, mask).numpy()
    assert valid.shape == hole.shape == (2,)
    # example 0: valid = (0.4 + 0.3 + 0.3) * 3 channels / (3 pixels * 3 channels) = 1/3; hole = 0.4
    # example 1: valid = (0 + 0.1 + 0.2) * 4 pixels / (4 pixels * 3 channels) = 0.1; hole: empty -> 0
    np.testing.assert_allclose(valid, [1 / 3, 0.1], rtol=1e-6)
    np.testing.assert_allclose(hole, [0.4, 0.0], atol=1e-7)


def test_mask_without_channel_axis_is_accepted():
    y_true, y_pred, mask = _tiny_batch()
    np.testing.assert_allclose(
        losses.contextual_loss_hole(y_true, y_pred, mask[..., 0]).numpy(),
        losses.contextual_loss_hole(y_true, y_pred, mask).numpy(),
    )


def test_valid_and_hole_partition_the_image():
    rng = np.random.default_rng(0)
    y_true = rng.random((4, 8, 8, 3), dtype=np.float32)
    y_pred = rng.random((4, 8, 8, 3), dtype=np.float32)
    mask = (rng.random((4, 8, 8, 1)) < 0.3).astype(np.float32)
    ratio = mask.mean(axis=(1, 2, 3))  # hole share of each example
    valid = losses.contextual_loss_valid(y_true, y_pred, mask).numpy()
    hole = losses.contextual_loss_hole(y_true, y_pred, mask).numpy()
    overall = np.abs(y_true - y_pred).mean(axis=(1, 2, 3))
    np.testing.assert_allclose((1 - ratio) * valid + ratio * hole, overall, rtol=1e-5)
    # swapping the mask swaps the two losses
    np.testing.assert_allclose(losses.contextual_loss_hole(y_true, y_pred, 1 - mask).numpy(), valid, rtol=1e-6)


def test_empty_regions_give_zero_loss_and_finite_gradients():
    y_true = np.zeros((2, 4, 4, 3), np.float32)
    y_pred = tf.Variable(np.full((2, 4, 4, 3), 0.25, np.float32))
    mask = np.stack([np.ones((4, 4, 1)), np.zeros((4, 4, 1))]).astype(np.float32)  # all hole / no hole
    with tf.GradientTape() as tape:
        valid = losses.contextual_loss_valid(y_true, y_pred, mask)
        hole = losses.contextual_loss_hole(y_true, y_pred, mask)
        total = tf.reduce_sum(valid + hole)
    np.testing.assert_allclose(valid.numpy(), [0.0, 0.25])
    np.testing.assert_allclose(hole.numpy(), [0.25, 0.0])
    grad = tape.gradient(total, y_pred).numpy()
    assert np.all(np.isfinite(grad))
    # d(mean |.|)/dy = 1 / (16 pixels * 3 channels) for the non-empty region of each example
    np.testing.assert_allclose(grad, np.full_like(grad, 1 / 48), rtol=1e-6)


def test_perceptual_loss_is_bce_against_real():
    d_fake = np.array([[0.9], [0.2]], np.float32)
    np.testing.assert_allclose(losses.perceptual_loss(d_fake).numpy(), [-math.log(0.9), -math.log(0.2)], rtol=1e-6)
    # (B,) input gives the same (B,) result
    np.testing.assert_allclose(losses.perceptual_loss(d_fake[:, 0]).numpy(), losses.perceptual_loss(d_fake).numpy())


def test_discriminator_losses_hand_computed():
    d_real = np.array([[0.9], [0.2]], np.float32)
    d_fake = np.array([[0.3], [0.99]], np.float32)
    real, fake = losses.discriminator_losses(d_real, d_fake)
    assert real.shape == fake.shape == (2,)
    np.testing.assert_allclose(real.numpy(), [-math.log(0.9), -math.log(0.2)], rtol=1e-6)
    np.testing.assert_allclose(fake.numpy(), [-math.log(0.7), -math.log(0.01)], rtol=1e-5)
    # agrees with Keras' own binary cross-entropy
    keras_bce = tf.keras.losses.binary_crossentropy(np.zeros((2, 1), np.float32), d_fake).numpy()
    np.testing.assert_allclose(fake.numpy(), keras_bce, rtol=1e-5)


def test_bce_clips_saturated_probabilities():
    p = tf.Variable(np.array([[0.0], [1.0]], np.float32))
    with tf.GradientTape() as tape:
        gen = losses.perceptual_loss(p)
        real, fake = losses.discriminator_losses(p, p)
        total = tf.reduce_sum(gen + real + fake)
    for value in (gen, real, fake):
        assert np.all(np.isfinite(value.numpy()))
    expected_max = -math.log(losses.EPSILON)  # about 16.1
    np.testing.assert_allclose(gen.numpy()[0], expected_max, rtol=1e-4)
    # p = 1 is clipped to float32(1 - EPSILON) = 1 - 2**-23 (float32 spacing below 1)
    np.testing.assert_allclose(fake.numpy()[1], -math.log(1.0 - float(np.float32(1.0 - losses.EPSILON))), rtol=1e-4)
    assert gen.numpy()[1] < 1e-6 and fake.numpy()[0] < 1e-6
    assert np.all(np.isfinite(tape.gradient(total, p).numpy()))


def test_style_loss_hand_computed():
    real = np.array([[[[1.0, 2.0]]], [[[3.0, 3.0]]]], np.float32)  # (2, 1, 1, 2)
    fake = np.array([[[[0.0, 4.0]]], [[[3.0, 3.0]]]], np.float32)
    # example 0: (|1 - 0| + |2 - 4|) / 2 = 1.5; example 1: identical -> 0
    np.testing.assert_allclose(losses.style_loss(real, fake).numpy(), [1.5, 0.0])


def test_generator_loss_weights_combination():
    valid = tf.constant([0.1, 0.2])
    hole = tf.constant([1.0, 2.0])
    perceptual = tf.constant([3.0, 4.0])
    style = tf.constant([5.0, 6.0])
    w = LossWeights(valid=1.0, hole=6.0, adversarial=0.1, style=0.5)
    # 0.1 + 6 * 1 + 0.1 * 3 + 0.5 * 5 = 8.9 ; 0.2 + 6 * 2 + 0.1 * 4 + 0.5 * 6 = 15.6
    np.testing.assert_allclose(losses.generator_loss(valid, hole, perceptual, style, w).numpy(), [8.9, 15.6], rtol=1e-6)
    # the paper's defaults, style weight 0: 0.1 + 6 + 0.3 = 6.4 ; 0.2 + 12 + 0.4 = 12.6
    np.testing.assert_allclose(
        losses.generator_loss(valid, hole, perceptual, style, LossWeights()).numpy(), [6.4, 12.6], rtol=1e-6
    )


def test_loss_weights_dataclass():
    w = LossWeights()
    assert (w.valid, w.hole, w.adversarial, w.style, w.hole_loss) == (1.0, 6.0, 0.1, 0.0, "l1")
    with pytest.raises(dataclasses.FrozenInstanceError):
        w.hole = 1.0  # type: ignore[misc]
    recipe = types.SimpleNamespace(
        valid_weight=2.0, hole_weight=3.0, adversarial_weight=0.5, style_weight=0.25, hole_loss="log_mse"
    )
    assert LossWeights.of_recipe(recipe) == LossWeights(2.0, 3.0, 0.5, 0.25, "log_mse")


@pytest.mark.parametrize("dtype", [tf.bfloat16, tf.float16])
def test_losses_under_mixed_precision_are_float32(dtype):
    y_true, y_pred, mask = _tiny_batch()
    low = lambda a: tf.cast(a, dtype)  # noqa: E731
    valid = losses.contextual_loss_valid(low(y_true), low(y_pred), low(mask))
    hole = losses.contextual_loss_hole(low(y_true), low(y_pred), mask)
    perceptual = losses.perceptual_loss(low(np.array([[1.0], [0.0]])))  # saturated in low precision
    real, fake = losses.discriminator_losses(low([[1.0], [0.5]]), low([[0.0], [1.0]]))
    style = losses.style_loss(low(np.ones((2, 1, 1, 4))), low(np.zeros((2, 1, 1, 4))))
    total = losses.generator_loss(valid, hole, perceptual, style, LossWeights(style=1.0))
    for value in (valid, hole, perceptual, real, fake, style, total):
        assert value.dtype == tf.float32 and value.shape == (2,)
        assert np.all(np.isfinite(value.numpy()))
    np.testing.assert_allclose(valid.numpy(), [1 / 3, 0.1], rtol=2e-2)
    np.testing.assert_allclose(hole.numpy(), [0.4, 0.0], atol=1e-2)


def test_log_mse_hole_is_the_log_of_the_hole_mse_and_zero_without_a_hole():
    from image_completion.core.losses import LOG_MSE_FLOOR, log_mse_hole

    truth = np.zeros((3, 4, 4, 3), np.float32)
    pred = truth.copy()
    pred[0] = 0.5  # hole of crop 0: error 0.5 everywhere; a change outside the hole does not count
    pred[1, :2] = 0.1
    mask = np.zeros((3, 4, 4, 1), np.float32)
    mask[0, :2] = mask[1, 2:] = 1.0  # crop 2: no hole
    out = np.asarray(log_mse_hole(truth, pred, mask))
    np.testing.assert_allclose(out, [np.log(0.25 + LOG_MSE_FLOOR), np.log(LOG_MSE_FLOOR), 0.0], rtol=1e-6)
