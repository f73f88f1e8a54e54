"""The inpainting GAN in the keras-io style: ``keras.Model`` with its own ``compile`` /
``train_step`` / ``test_step`` and one tracker per loss part (``METRIC_NAMES``).

A batch is {"masked" (B, S, S, C), "image" (B, S, S, 3), "mask" (B, S, S, 1)}. Losses are per
example and averaged over the *global* batch, so ``training.train_gan`` can run ``train_step``
under any tf.distribute strategy. Stage 2 (``train_discriminator=False``) never updates D.
The step's losses, what D sees and why: ``docs/architecture.md``, "The GAN step".
"""

from __future__ import annotations

import keras
import tensorflow as tf

from image_completion.core.losses import (
    LossWeights,
    contextual_loss_hole,
    contextual_loss_valid,
    discriminator_losses,
    generator_loss,
    hole_sharpness,
    log_mse_hole,
    perceptual_loss,
    style_loss,
)
from image_completion.core.models import style_features

# Names of the metric trackers, in the order of ``InpaintingGAN.metrics``.
METRIC_NAMES = (
    "g_loss",  # weighted total generator loss
    "g_valid",  # L1 over the known pixels
    "g_hole",  # L1 over the hole
    "g_hole_log_mse",  # log(MSE over the hole): the hole term when the recipe's hole_loss is log_mse (else validation only)
    "g_perceptual",  # BCE(D(G(x)), 1)
    "g_style",  # |S(x) - S(G(x))|_1 (0 and not computed when the style weight is 0)
    "d_real_loss",  # BCE(D(x), 1)
    "d_fake_loss",  # BCE(D(G(x)), 0)
    "d_accuracy",  # share of real with D > 0.5 and fake with D <= 0.5 (over 2B decisions)
    "perceptual_accuracy",  # share of generated images with D(G(x)) > 0.5 (fooled D)
    "sharpness",  # hole gradient energy of G(x) / that of x (1 = as sharp as the truth); validation only
)


class InpaintingGAN(keras.Model):
    """Generator + discriminator with a GAN ``train_step``/``test_step`` (see the module docstring)."""

    def __init__(self, generator: keras.Model, discriminator: keras.Model, name: str = "inpainting_gan", **kwargs):
        super().__init__(name=name, **kwargs)
        self.generator = generator
        self.discriminator = discriminator
        self._trackers = [keras.metrics.Mean(name=n) for n in METRIC_NAMES]
        self._compiled_gan = False

    # keras-io style: only our trackers, so reset_metrics()/fit() see exactly these.
    @property
    def metrics(self):
        return list(self._trackers)

    def compile(
        self,
        g_optimizer: keras.optimizers.Optimizer,
        d_optimizer: keras.optimizers.Optimizer,
        loss_weights: LossWeights,
        train_discriminator: bool = True,
        global_batch_size: int | None = None,
    ):
        """Sets the optimizers, loss weights and stage.

        ``train_discriminator=False`` is stage 2: the discriminator is frozen (no gradient, no
        update, called in inference mode). ``global_batch_size``: the batch over all replicas that
        each per-example loss is averaged over; ``None`` = the local batch (single device only).
        Under a ``mixed_float16`` policy the optimizers are wrapped in ``LossScaleOptimizer``.
        """
        super().compile()
        assert isinstance(loss_weights, LossWeights) and (global_batch_size is None or global_batch_size >= 1)
        if keras.config.dtype_policy().name == "mixed_float16":
            # float16 gradients underflow without loss scaling.
            if not isinstance(g_optimizer, keras.optimizers.LossScaleOptimizer):
                g_optimizer = keras.optimizers.LossScaleOptimizer(g_optimizer)
            if not isinstance(d_optimizer, keras.optimizers.LossScaleOptimizer):
                d_optimizer = keras.optimizers.LossScaleOptimizer(d_optimizer)
        self.g_optimizer = g_optimizer
        self.d_optimizer = d_optimizer
        self.loss_weights = loss_weights
        self.train_discriminator = bool(train_discriminator)
        self.global_batch_size = None if global_batch_size is None else int(global_batch_size)
        self._compiled_gan = True

    def build_optimizers(self):
        """Creates the optimizers' slot variables now (before a checkpoint restore)."""
        self._check_compiled()
        self.g_optimizer.build(self.generator.trainable_variables)
        if self.train_discriminator:
            self.d_optimizer.build(self.discriminator.trainable_variables)

    def call(self, masked, training=False):
        """The generator's output for masked images (B, H, W, 3)."""
        return self.generator(masked, training=training)

    # ----------------------------------------------------------------------------------------

    def _check_compiled(self):
        if not self._compiled_gan:
            raise RuntimeError("InpaintingGAN.compile(g_optimizer, d_optimizer, loss_weights, ...) was not called")

    @staticmethod
    def _unpack(batch):
        """A batch of ``dataset.build_dataset``: {"masked", "image", "mask"}."""
        return batch["masked"], batch["image"], batch["mask"]

    def _average(self, per_example):
        return tf.nn.compute_average_loss(per_example, global_batch_size=self.global_batch_size)

    def _forward(self, batch, training: bool):
        """Forward pass and the per-example measures (each (B,), float32).

        A training step computes only what its updates need: D(x) only while D learns, D(G(x))
        only while D learns or the adversarial term has weight. Validation (``training=False``)
        computes every measure, so the logged discriminator metrics come from there.
        """
        masked, image, mask = self._unpack(batch)
        image = tf.cast(image, tf.float32)
        fake = tf.cast(self.generator(masked, training=training), tf.float32)  # (B, H, W, 3)
        weights = self.loss_weights
        need_real = not training or self.train_discriminator
        need_fake = need_real or weights.adversarial > 0
        # The discriminator runs in training mode only while it learns (stage 1 train steps).
        d_training = training and self.train_discriminator

        measures = {
            "g_valid": contextual_loss_valid(image, fake, mask),
            "g_hole": contextual_loss_hole(image, fake, mask),
        }
        zeros = tf.zeros_like(measures["g_valid"])
        perceptual = style = zeros  # terms not computed have weight 0
        if need_fake:
            d_fake = tf.cast(self.discriminator(fake, training=d_training), tf.float32)  # (B, 1)
            fake_ok = tf.cast(tf.reshape(d_fake, [-1]) <= 0.5, tf.float32)  # (B,)
            perceptual = measures["g_perceptual"] = perceptual_loss(d_fake)
            measures["perceptual_accuracy"] = 1.0 - fake_ok
        if weights.style > 0 or not training:
            # Frozen backbone features (B, S/32, S/32, 512); the real ones need no gradient.
            f_real = tf.stop_gradient(style_features(self.discriminator, image))
            style = measures["g_style"] = style_loss(f_real, style_features(self.discriminator, fake))
        if weights.hole_loss == "log_mse" or not training:
            measures["g_hole_log_mse"] = log_mse_hole(image, fake, mask)
        hole = measures["g_hole_log_mse"] if weights.hole_loss == "log_mse" else measures["g_hole"]
        measures["g_loss"] = generator_loss(measures["g_valid"], hole, perceptual, style, weights)
        if not training:
            measures["sharpness"] = hole_sharpness(image, fake, mask)
        if need_real:
            d_real = tf.cast(self.discriminator(image, training=d_training), tf.float32)  # (B, 1)
            measures["d_real_loss"], measures["d_fake_loss"] = discriminator_losses(d_real, d_fake)
            real_ok = tf.cast(tf.reshape(d_real, [-1]) > 0.5, tf.float32)  # (B,)
            measures["d_accuracy"] = tf.concat([real_ok, fake_ok], axis=0)  # (2B,)
        return measures

    def _update_trackers(self, measures):
        for t in self._trackers:
            if t.name in measures:
                t.update_state(measures[t.name])

    def _step_losses(self, measures):
        """This replica's share of the global-batch mean losses (sum over replicas = the mean)."""
        losses = {"g_loss": self._average(measures["g_loss"])}
        if "d_real_loss" in measures:
            losses["d_loss"] = self._average(measures["d_real_loss"] + measures["d_fake_loss"])
        return losses

    def train_step(self, batch):
        """One update of G (and of D unless frozen). Returns this replica's share of the
        global-batch mean ``g_loss`` and ``d_loss`` (reduce with SUM across replicas)."""
        self._check_compiled()
        g_vars = self.generator.trainable_variables
        d_vars = self.discriminator.trainable_variables
        with tf.GradientTape() as g_tape, tf.GradientTape() as d_tape:
            measures = self._forward(batch, training=True)
            losses = self._step_losses(measures)
            g_scaled = self.g_optimizer.scale_loss(losses["g_loss"])
            if self.train_discriminator:
                d_scaled = self.d_optimizer.scale_loss(losses["d_loss"])
        # LossScaleOptimizer unscales the gradients (and skips non-finite steps) in apply.
        g_grads = g_tape.gradient(g_scaled, g_vars)
        self.g_optimizer.apply_gradients(zip(g_grads, g_vars))
        if self.train_discriminator:
            d_grads = d_tape.gradient(d_scaled, d_vars)
            self.d_optimizer.apply_gradients(zip(d_grads, d_vars))
        self._update_trackers(measures)
        return losses

    def test_step(self, batch):
        """The same measures as ``train_step`` in inference mode, without any update."""
        self._check_compiled()
        measures = self._forward(batch, training=False)
        self._update_trackers(measures)
        return self._step_losses(measures)
