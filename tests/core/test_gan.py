"""InpaintingGAN: real train/test steps at a tiny size (32x32, base_filters 4, random VGG16)."""

import keras
import numpy as np
import pytest
import tensorflow as tf
from skimage import data, transform

from image_completion.core.gan import METRIC_NAMES, InpaintingGAN
from image_completion.core.losses import LossWeights
from image_completion.core.models import build_discriminator, build_generator

SIZE = 32
B = 4


@pytest.fixture(scope="module")
def batch():
    """4 real photos downscaled to 32x32, each with a box hole; hole pixels of "masked" = 1."""
    photos = [data.astronaut(), data.coffee(), data.chelsea(), data.rocket()]
    images = np.stack([transform.resize(p, (SIZE, SIZE), anti_aliasing=True) for p in photos]).astype("float32")
    mask = np.zeros((B, SIZE, SIZE, 1), "float32")
    for i in range(B):
        top, left = 4 + 3 * i, 6 + 2 * i
        mask[i, top : top + 12, left : left + 10] = 1.0
    masked = np.where(mask > 0, 1.0, images).astype("float32")
    return {"masked": tf.constant(masked), "image": tf.constant(images), "mask": tf.constant(mask)}


@pytest.fixture
def policy():
    yield
    keras.config.set_dtype_policy("float32")


def make_gan(seed=3, weights=LossWeights(), train_discriminator=True, global_batch_size=B, g_lr=1e-3, d_lr=1e-3):  # noqa: B008 - a frozen dataclass, immutable
    keras.utils.set_random_seed(seed)
    generator = build_generator("unet_scaled", SIZE, base_filters=4, decoder_filters=8)
    discriminator = build_discriminator(SIZE, backbone_weights="none", dense_units=8)
    gan = InpaintingGAN(generator, discriminator)
    gan.compile(
        keras.optimizers.Adam(g_lr),
        keras.optimizers.Adam(d_lr),
        weights,
        train_discriminator=train_discriminator,
        global_batch_size=global_batch_size,
    )
    return gan


def metric_values(gan):
    return {m.name: float(m.result()) for m in gan.metrics}


def test_train_step_lowers_the_generator_loss(batch):
    gan = make_gan(g_lr=3e-3)
    losses = [float(gan.train_step(batch)["g_loss"]) for _ in range(6)]
    assert all(np.isfinite(losses))
    # 6 Adam steps on one batch (generator lr 3e-3): the loss falls at every step, well below its start.
    assert all(b < a for a, b in zip(losses, losses[1:])), losses
    assert losses[-1] < 0.85 * losses[0], losses
    assert int(gan.g_optimizer.iterations) == 6 and int(gan.d_optimizer.iterations) == 6


def test_metrics_are_named_and_consistent(batch):
    weights = LossWeights(valid=1.0, hole=6.0, adversarial=0.1, style=0.0)
    gan = make_gan(weights=weights)
    assert [m.name for m in gan.metrics] == list(METRIC_NAMES)
    losses = gan.test_step(batch)
    values = metric_values(gan)
    # The total is the paper's weighted sum of its logged parts; validation also reports the
    # style distance, which has weight 0 here.
    expected = values["g_valid"] + 6.0 * values["g_hole"] + 0.1 * values["g_perceptual"]
    assert values["g_loss"] == pytest.approx(expected, rel=1e-5)
    assert values["g_style"] > 0.0
    assert float(losses["g_loss"]) == pytest.approx(values["g_loss"], rel=1e-5)
    assert float(losses["d_loss"]) == pytest.approx(values["d_real_loss"] + values["d_fake_loss"], rel=1e-5)
    # Accuracies agree with the discriminator's own outputs.
    fake = gan.generator(batch["masked"], training=False)
    d_real = gan.discriminator(batch["image"]).numpy().ravel()
    d_fake = gan.discriminator(fake).numpy().ravel()
    assert values["d_accuracy"] == pytest.approx((np.sum(d_real > 0.5) + np.sum(d_fake <= 0.5)) / (2 * B))
    assert values["perceptual_accuracy"] == pytest.approx(np.mean(d_fake > 0.5))
    # test_step changes nothing.
    assert int(gan.g_optimizer.iterations) == 0


def test_losses_are_averaged_over_the_global_batch(batch):
    # A replica holding 4 of a global batch of 8 contributes half its local mean.
    local = make_gan(global_batch_size=B).test_step(batch)
    shared = make_gan(global_batch_size=2 * B).test_step(batch)
    assert float(shared["g_loss"]) == pytest.approx(float(local["g_loss"]) / 2, rel=1e-5)
    assert float(shared["d_loss"]) == pytest.approx(float(local["d_loss"]) / 2, rel=1e-5)


def test_stage2_keeps_every_discriminator_weight(batch):
    gan = make_gan(train_discriminator=False)
    d_before = [w.copy() for w in gan.discriminator.get_weights()]
    g_before = [w.copy() for w in gan.generator.get_weights()]
    for _ in range(3):
        gan.train_step(batch)
    d_after = gan.discriminator.get_weights()
    assert all(np.array_equal(a, b) for a, b in zip(d_before, d_after))
    assert int(gan.d_optimizer.iterations) == 0
    changed = [not np.array_equal(a, b) for a, b in zip(g_before, gan.generator.get_weights())]
    assert sum(changed) > len(changed) // 2


def test_stage1_trains_only_the_discriminators_dense_layers(batch):
    gan = make_gan()
    backbone = gan.discriminator.get_layer("vgg16_backbone")
    vgg_before = [w.copy() for w in backbone.get_weights()]
    dense_before = gan.discriminator.get_layer("dense1").get_weights()[0].copy()
    gan.train_step(batch)
    assert all(np.array_equal(a, b) for a, b in zip(vgg_before, backbone.get_weights()))
    assert not np.array_equal(dense_before, gan.discriminator.get_layer("dense1").get_weights()[0])


def test_style_loss_enters_the_total_when_weighted(batch):
    gan = make_gan(weights=LossWeights(valid=1.0, hole=6.0, adversarial=0.1, style=2.0))
    gan.test_step(batch)
    values = metric_values(gan)
    assert values["g_style"] > 0
    expected = values["g_valid"] + 6.0 * values["g_hole"] + 0.1 * values["g_perceptual"] + 2.0 * values["g_style"]
    assert values["g_loss"] == pytest.approx(expected, rel=1e-5)


def test_mixed_bfloat16_step_is_finite_and_float32_losses(batch, policy):
    keras.config.set_dtype_policy("mixed_bfloat16")
    gan = make_gan()
    assert gan.generator.get_layer("enc1_conv").compute_dtype == "bfloat16"
    losses = gan.train_step(batch)
    assert losses["g_loss"].dtype == tf.float32
    assert np.isfinite(float(losses["g_loss"])) and np.isfinite(float(losses["d_loss"]))


def test_mixed_float16_wraps_optimizers_in_loss_scaling(policy):
    keras.config.set_dtype_policy("mixed_float16")
    gan = make_gan()
    assert isinstance(gan.g_optimizer, keras.optimizers.LossScaleOptimizer)
    assert isinstance(gan.d_optimizer, keras.optimizers.LossScaleOptimizer)


def test_errors(batch):
    gan = InpaintingGAN(
        build_generator("unet", SIZE, base_filters=4, decoder_filters=8),
        build_discriminator(SIZE, backbone_weights="none", dense_units=8),
    )
    with pytest.raises(RuntimeError, match="compile"):
        gan.train_step(batch)


def _counts(gan) -> dict:
    return {m.name: int(m.count) for m in gan.metrics}


def test_a_log_mse_hole_loss_replaces_the_l1_hole_term(batch):
    gan = make_gan(weights=LossWeights(adversarial=0.0, hole_loss="log_mse"), train_discriminator=False)
    losses = gan.train_step(batch)
    values = metric_values(gan)
    assert values["g_loss"] == pytest.approx(values["g_valid"] + 6.0 * values["g_hole_log_mse"], rel=1e-5)
    assert values["g_hole_log_mse"] < 0 < values["g_hole"]  # log of an MSE < 1; the L1 is still logged
    assert float(losses["g_loss"]) == pytest.approx(values["g_loss"], rel=1e-5)


def test_a_training_step_runs_the_discriminator_only_where_an_update_needs_it(batch):
    # Stage 2 of the paper: D frozen, adversarial weight 0.1: D(G(x)) is needed, D(x) is not.
    gan = make_gan(train_discriminator=False)
    gan.train_step(batch)
    counts = _counts(gan)
    assert counts["perceptual_accuracy"] == B and counts["g_perceptual"] == B
    assert counts["d_real_loss"] == counts["d_accuracy"] == counts["g_style"] == 0
    assert "d_loss" not in gan.train_step(batch)
    # No adversarial term and D frozen: the discriminator is not run at all during training.
    gan = make_gan(weights=LossWeights(adversarial=0.0), train_discriminator=False)
    gan.train_step(batch)
    counts = _counts(gan)
    assert counts["g_hole"] == B and counts["perceptual_accuracy"] == counts["g_perceptual"] == counts["g_hole_log_mse"] == 0
    # Validation computes every measure.
    for m in gan.metrics:
        m.reset_state()
    gan.test_step(batch)
    assert all(c > 0 for c in _counts(gan).values())
