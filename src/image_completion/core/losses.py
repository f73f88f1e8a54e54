"""The losses as pure tensor functions with per-example outputs of shape (B,).

Per-example values let a distributed loop average over the global batch. The L1 terms are means
over their region (scale-free; the paper's loss values suggest sums: ``docs/paper.md``). Inputs
are cast to float32, so the functions work under mixed precision. Masks: 1 = hole.
"""

from __future__ import annotations

import dataclasses

import keras
import tensorflow as tf

# keras.losses.binary_crossentropy clips probabilities to [EPSILON, 1 - EPSILON] before the log.
EPSILON = keras.config.epsilon()


@dataclasses.dataclass(frozen=True)
class LossWeights:
    """Weights of the generator's loss terms (paper: valid 1, hole 6, adversarial 0.1; style untried)."""

    valid: float = 1.0
    hole: float = 6.0
    adversarial: float = 0.1
    style: float = 0.0
    hole_loss: str = "l1"  # the hole term: "l1" (the paper) or "log_mse" (``log_mse_hole``, the metric PSNR's own)

    @classmethod
    def of_recipe(cls, recipe) -> "LossWeights":
        """From a ``config.RecipeParams`` (validated there: finite and >= 0)."""
        return cls(recipe.valid_weight, recipe.hole_weight, recipe.adversarial_weight, recipe.style_weight, recipe.hole_loss)


def _prepare(y_true, y_pred, mask):
    """float32 images (B, H, W, C) and mask (B, H, W, 1); ``mask`` may also be (B, H, W)."""
    y_true = tf.cast(y_true, tf.float32)
    y_pred = tf.cast(y_pred, tf.float32)
    mask = tf.cast(mask, tf.float32)
    if mask.shape.rank == 3:
        mask = mask[..., tf.newaxis]
    assert mask.shape.rank == 4 and mask.shape[-1] in (None, 1), mask.shape
    assert y_true.shape.rank == 4 and y_pred.shape.rank == 4, (y_true.shape, y_pred.shape)
    return y_true, y_pred, mask


def _masked_mean_abs(y_true, y_pred, region):
    """Per-example mean |y_true - y_pred| over the pixels where ``region`` == 1, all channels.

    All float32; region: (B, H, W, 1) in {0, 1}. Returns (B,); 0 for an example whose region
    is empty (divide_no_nan: no NaN in the value or the gradient).
    """
    channels = tf.cast(tf.shape(y_true)[-1], tf.float32)
    total = tf.reduce_sum(tf.abs(y_true - y_pred) * region, axis=[1, 2, 3])  # (B,)
    count = tf.reduce_sum(region, axis=[1, 2, 3]) * channels  # (B,) region pixels * channels
    return tf.math.divide_no_nan(total, count)


def contextual_loss_valid(y_true, y_pred, mask):
    """L1 over the known pixels (mask == 0), as a per-example mean: (B,)."""
    y_true, y_pred, mask = _prepare(y_true, y_pred, mask)
    return _masked_mean_abs(y_true, y_pred, 1.0 - mask)


def contextual_loss_hole(y_true, y_pred, mask):
    """L1 over the hole (mask == 1), as a per-example mean: (B,)."""
    y_true, y_pred, mask = _prepare(y_true, y_pred, mask)
    return _masked_mean_abs(y_true, y_pred, mask)


LOG_MSE_FLOOR = 1e-5  # added to the MSE before the log: a near-perfect fill (PSNR 50 dB) stops pulling


def log_mse_hole(y_true, y_pred, mask):
    """log(MSE over the hole + LOG_MSE_FLOOR), per example: (B,). Its batch mean is minus the mean
    hole PSNR / (10 log10 e) up to a constant, so it trains what the PSNR column scores; 0 for an
    example without a hole (no gradient)."""
    y_true, y_pred, mask = _prepare(y_true, y_pred, mask)
    channels = tf.cast(tf.shape(y_true)[-1], tf.float32)
    count = tf.reduce_sum(mask, axis=[1, 2, 3]) * channels  # (B,)
    mse = tf.math.divide_no_nan(tf.reduce_sum(tf.square(y_true - y_pred) * mask, axis=[1, 2, 3]), count)
    return tf.where(count > 0, tf.math.log(mse + LOG_MSE_FLOOR), 0.0)


def _bce(probabilities, target: float):
    """Per-example binary cross-entropy of probabilities (B,) or (B, 1) against a constant label: (B,)."""
    p = tf.cast(probabilities, tf.float32)
    p = tf.reshape(p, [tf.shape(p)[0], -1])  # (B, 1)
    return keras.losses.binary_crossentropy(tf.fill(tf.shape(p), target), p)


def perceptual_loss(d_fake):
    """Adversarial loss of the generator: BCE of D(G(x)) against "real" (1), i.e. -log D(G(x)): (B,)."""
    return _bce(d_fake, 1.0)


def discriminator_losses(d_real, d_fake):
    """(real_loss, fake_loss), each (B,): BCE of D(x) vs 1 and of D(G(x)) vs 0. loss_d = their sum."""
    return _bce(d_real, 1.0), _bce(d_fake, 0.0)


def style_loss(features_real, features_fake):
    """The paper's proposed style loss ||S_gt - S_gen||_1 as a per-example mean |difference|: (B,).

    Features: the discriminator backbone's last conv block (``models.style_features``),
    (B, h, w, 512) for the real and the generated image.
    """
    a = tf.cast(features_real, tf.float32)
    b = tf.cast(features_fake, tf.float32)
    diff = tf.abs(a - b)
    return tf.reduce_mean(tf.reshape(diff, [tf.shape(diff)[0], -1]), axis=-1)


def hole_sharpness(y_true, y_pred, mask):
    """Per-example sharpness of the fill: the summed |dx| + |dy| of ``y_pred`` over the hole
    divided by that of ``y_true`` (1 = as much fine detail as the truth, < 1 = blurrier): (B,).
    Used to test the paper's claim that the style loss sharpens the fill."""
    y_true, y_pred, mask = _prepare(y_true, y_pred, mask)

    def energy(images):
        dy, dx = tf.image.image_gradients(images)  # (B, H, W, C) each
        return tf.reduce_sum((tf.abs(dy) + tf.abs(dx)) * mask, axis=[1, 2, 3])

    return tf.math.divide_no_nan(energy(y_pred), energy(y_true))


def reconstruction_loss(valid, hole, weights: LossWeights):
    """The paper's reconstruction part: valid * w_valid + hole * w_hole (per example (B,) or batch means)."""
    return weights.valid * valid + weights.hole * hole


def generator_loss(valid, hole, perceptual, style, weights: LossWeights):
    """Weighted total per example: the reconstruction part + perceptual * w_adv + style * w_style; (B,)."""
    return (
        reconstruction_loss(tf.cast(valid, tf.float32), tf.cast(hole, tf.float32), weights)
        + weights.adversarial * tf.cast(perceptual, tf.float32)
        + weights.style * tf.cast(style, tf.float32)
    )
