"""Stage ``compare``: the paper's architecture comparison, one generator kind and one seed per run.

The generator alone, Keras ``fit()`` with dvclive; what is measured: ``docs/architecture.md``,
"The architecture comparison".

The command line is ``image_completion.stages.compare``.
"""

from __future__ import annotations

import math
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf
from dvclive import Live
from dvclive.keras import DVCLiveCallback

from image_completion.config import (
    Params,
)
from image_completion.core import losses
from image_completion.core.holes import InputSpec
from image_completion.core.models import generator_from_params
from image_completion.data.dataset import build_dataset, make_fixed_masks
from image_completion.data.manifest import photo_paths
from image_completion.training import loop

PAPER_WEIGHTS = losses.LossWeights()  # valid 1, hole 6: fixed, the comparison ignores the recipes
PARTS = ("g_loss", "g_valid", "g_hole")  # logged as train/<part>
VALIDATION = ("val/l1_hole", "val/hole_propagation", "val/grad_norm_enc1", "val/grad_ratio_enc1_out")
METRIC_NAMES = tuple(f"train/{p}" for p in PARTS) + VALIDATION


class Reconstruction(keras.Model):
    """The generator trained alone on the reconstruction loss; batches are dataset dicts."""

    def __init__(self, generator: keras.Model):
        super().__init__(name="reconstruction")
        self.generator = generator
        self.trackers = [keras.metrics.Mean(name=name) for name in PARTS]

    @property
    def metrics(self):
        return self.trackers

    def call(self, masked, training=False):
        return self.generator(masked, training=training)

    def parts(self, batch, pred) -> dict:
        """Batch means of the two L1 terms and their weighted sum, float32."""
        valid = tf.reduce_mean(losses.contextual_loss_valid(batch["image"], pred, batch["mask"]))
        hole = tf.reduce_mean(losses.contextual_loss_hole(batch["image"], pred, batch["mask"]))
        return {"g_loss": losses.reconstruction_loss(valid, hole, PAPER_WEIGHTS), "g_valid": valid, "g_hole": hole}

    def train_step(self, batch):
        variables = self.generator.trainable_variables
        with tf.GradientTape() as tape:
            parts = self.parts(batch, self.generator(batch["masked"], training=True))
        self.optimizer.apply_gradients(zip(tape.gradient(parts["g_loss"], variables), variables))
        for tracker in self.trackers:
            tracker.update_state(parts[tracker.name])
        return {tracker.name: tracker.result() for tracker in self.trackers}

    @tf.function
    def kernel_gradients(self, batch):
        """Norms of the loss's gradient w.r.t. the kernels of ``enc1_conv`` and ``output`` on
        ``batch``, as a training step sees it (BatchNormalization in training mode) but without
        moving the BatchNormalization statistics (a stateless call)."""
        g = self.generator
        trainable, frozen = [v.value for v in g.trainable_variables], [v.value for v in g.non_trainable_variables]
        with tf.GradientTape() as tape:
            tape.watch(trainable)
            pred, _ = g.stateless_call(trainable, frozen, batch["masked"], training=True)
            loss = self.parts(batch, pred)["g_loss"]
        grads = dict(zip((v.path for v in g.trainable_variables), tape.gradient(loss, trainable)))
        return tuple(tf.norm(grads[g.get_layer(name).kernel.path]) for name in ("enc1_conv", "output"))


def hole_l1(output: np.ndarray, target: np.ndarray, mask: np.ndarray) -> float:
    """Mean |output - target| over all hole pixels and channels of a set (N, S, S, 3)."""
    hole = np.broadcast_to(np.asarray(mask) > 0.5, np.shape(output))
    return float(np.abs(np.asarray(output, np.float64) - target)[hole].mean())


def hole_propagation(output: np.ndarray, target: np.ndarray, mask: np.ndarray, hole_value: float) -> float:
    """P = sum_hole |output - h| / sum_hole |target - h| (docs/architecture.md); arrays (N, S, S, 3/1)."""
    hole = np.broadcast_to(np.asarray(mask) > 0.5, np.shape(output))
    reference = float(np.abs(np.asarray(target, np.float64)[hole] - hole_value).sum())
    if reference == 0.0:
        raise ValueError(f"hole propagation undefined: no validation hole pixel differs from hole value {hole_value}")
    return float(np.abs(np.asarray(output, np.float64)[hole] - hole_value).sum()) / reference


class Validation(keras.callbacks.Callback):
    """Logs the validation measures to ``live`` before training (step 0) and after every epoch
    (before ``DVCLiveCallback`` logs the epoch's training loss and moves to the next step)."""

    def __init__(self, live: Live, batch: dict, hole_value: float):
        super().__init__()
        self.live, self.batch, self.hole_value = live, batch, hole_value
        self.last: dict[str, float] = {}

    def on_train_begin(self, logs=None):
        self.on_epoch_end(-1)
        self.live.next_step()

    def on_epoch_end(self, epoch, logs=None):
        b = self.batch
        output = self.model.predict(b["masked"], batch_size=len(b["masked"]), verbose=0)
        enc1, out = (float(n) for n in self.model.kernel_gradients(b))
        self.last = dict(
            zip(
                VALIDATION,
                (
                    hole_l1(output, b["image"], b["mask"]),
                    hole_propagation(output, b["image"], b["mask"], self.hole_value),
                    enc1,
                    enc1 / out,
                ),
            )
        )
        bad = {k: v for k, v in {**(logs or {}), **self.last}.items() if not math.isfinite(v)}
        if bad:
            raise FloatingPointError(f"non-finite metrics after epoch {epoch + 1}: {bad}")
        for name, value in self.last.items():
            self.live.log_metric(name, value)


def validation_batch(params: Params, paths: list[str], spec: InputSpec) -> dict[str, np.ndarray]:
    """The fixed validation set as one batch: ``compare.validation_images`` crops of ``paths`` with
    fixed ``masks.train`` masks, both drawn from ``base.seed`` (the same for every run)."""
    n, size, seed = params.compare.validation_images, params.compare.image_size, params.base.seed
    masks = make_fixed_masks(params.masks.train, n, size, seed)
    data = build_dataset(paths, is_train=False, image_size=size, batch_size=n, input_spec=spec, seed=seed, masks=masks)
    return {key: value.numpy() for key, value in next(iter(data)).items()}


def run_comparison(params: Params, kind: str, seed: int, photos: Path, out: Path) -> dict[str, float]:
    """Trains ``kind`` from ``seed`` (weights and data stream), logging to dvclive in ``out``;
    returns the last epoch's metrics (``METRIC_NAMES``). The caller sets the precision."""
    c, m = params.compare, params.model
    spec = InputSpec(prefill="constant", mask_channel=False, hole_value=params.base.hole_value)
    loop.seed_everything(seed)
    model = Reconstruction(generator_from_params(m, c.image_size, kind=kind, base_filters=c.base_filters))
    model.compile(optimizer=keras.optimizers.Adam(c.learning_rate))

    manifest = photos / "manifest.csv"
    validation = validation_batch(params, photo_paths(manifest, "validation"), spec)
    # build_dataset decodes each training photo once (dataset.decoded_photos), not per crop.
    data = build_dataset(photo_paths(manifest, "train"), is_train=True, image_size=c.image_size,
                         batch_size=c.batch_size, input_spec=spec, seed=seed, mask_params=params.masks.train)  # fmt: skip
    live = Live(str(out), save_dvc_exp=False, dvcyaml=None)
    scores = Validation(live, validation, spec.hole_value)
    history = model.fit(
        data, epochs=c.epochs, steps_per_epoch=c.images_per_epoch // c.batch_size, shuffle=False, verbose=2,
        callbacks=[scores, DVCLiveCallback(live=live)],  # in this order: see Validation
    )  # fmt: skip
    return {f"train/{k}": float(v[-1]) for k, v in history.history.items()} | scores.last
