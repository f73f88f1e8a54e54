"""Stage ``compare``: the paper's architecture search, rerun under one fixed budget.

    python -m image_completion.compare --params params.yaml --kind KIND --photos data/photos \
        --out reports/compare/KIND

The paper tried three generators (paper.md, "Choosing the architecture"): a plain
``autoencoder`` (the gradient vanished and learning stopped), a plain ``unet`` (the gradient
flowed but "the hole in the input image propagated to the output") and the ``unet_scaled``
U-Net with skip coefficients (1.0, 0.8, 0.4, 0.2) that it kept. This stage trains each kind
(one DVC matrix entry per kind) on the same data with the same budget and seed, and measures
both observations instead of assuming them.

Setup, identical for every kind:
- data: ``compare.image_size`` crops (32: CIFAR-10-sized, as the paper searched on CIFAR-10)
  of the ``train`` photos with fresh training masks (``masks`` params); ``compare.epochs``
  epochs of ``compare.images_per_epoch`` images in batches of ``compare.batch_size``;
- the generator alone, trained with Adam (``compare.learning_rate``) on the reconstruction
  loss ``contextual_loss_valid + 6 * contextual_loss_hole`` (the paper's weights 1 and 6;
  per-example means, averaged over the batch). **No discriminator and no adversarial term**:
  the adversarial term has weight 0.1 in the paper, the observations concern the generator's
  architecture, and leaving out the VGG16 discriminator keeps the comparison cheap on a CPU.
  Everything runs in float32.

Logged per epoch through dvclive (``<out>/plots/metrics/...``; ``<out>/metrics.json`` holds the
final values):
- ``train/g_loss``: the mean training loss of the epoch;
- ``train/grad_norm_enc1``: L2 norm of the gradient of the loss with respect to the kernel of
  the first encoder convolution (``enc1_conv``), averaged over the epoch's steps: the gradient
  that reaches the first layer (the autoencoder's vanishing-gradient claim);
- ``train/grad_ratio_enc1_out``: the same norm divided by the norm of the gradient of the
  output convolution's kernel (``output``), step by step, averaged: how much of the gradient
  survives the way from the output to the first layer, independent of the loss's size;
- ``val/l1_hole``: mean |G(x) - y| over the hole pixels (x 3 channels) of the fixed validation
  set (``compare.validation_images`` crops of the ``validation`` photos with fixed masks);
- ``val/hole_propagation``: how far the output's hole strays from the constant fill it was
  given, relative to how far the truth is from it, on the same validation set::

        P = sum_{hole} |G(x) - h|  /  sum_{hole} |y - h|

  summed over every validation image, hole pixel and channel, with ``h = base.hole_value``.
  P = 0: the output reproduces the fill (the hole propagates to the output);
  P = 1: the output's hole departs from the fill as much as the real content does.
  P is meaningful only against the other kinds and the ground truth: a sigmoid output
  starting near 0.5 has P near |0.5 - h| / mean|y - h| before any training.
"""

from __future__ import annotations

import argparse
import math
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from image_completion.config import (
    GENERATOR_KINDS,
    BaseParams,
    CompareParams,
    ConfigError,
    MaskParams,
    ModelParams,
    load_stage_params,
)

# The paper's weights of the two reconstruction terms (paper.md, "Losses"). Fixed here so the
# comparison does not depend on the training stages' `train` params.
VALID_WEIGHT = 1.0
HOLE_WEIGHT = 6.0

METRIC_NAMES = (
    "train/g_loss",
    "train/grad_norm_enc1",
    "train/grad_ratio_enc1_out",
    "val/l1_hole",
    "val/hole_propagation",
)


@dataclass(frozen=True)
class ValidationSet:
    """Fixed validation arrays: masked (N, S, S, 3), image (N, S, S, 3), mask (N, S, S, 1); float32."""

    masked: np.ndarray
    image: np.ndarray
    mask: np.ndarray


def make_validation_set(
    photo_paths: list[str], n: int, image_size: int, hole_value: float, mask_params: MaskParams, seed: int
) -> ValidationSet:
    """``n`` fixed crops of ``photo_paths`` with ``n`` fixed masks (both seeded by ``seed``)."""
    from image_completion.dataset import load_crop, make_eval_crops, make_fixed_masks  # noqa: PLC0415

    if n < 1:
        raise ValueError(f"need at least one validation image, got {n}")
    crops = make_eval_crops(photo_paths, n, image_size, seed)
    image = np.stack([load_crop(path, top, left, image_size) for path, top, left in crops]).astype(np.float32)
    mask = np.asarray(make_fixed_masks(mask_params, n, image_size, seed), np.float32)
    if mask.shape != (n, image_size, image_size):
        raise ValueError(f"make_fixed_masks returned shape {mask.shape}, expected {(n, image_size, image_size)}")
    mask = mask[..., None]  # (N, S, S, 1)
    masked = image * (1.0 - mask) + hole_value * mask
    return ValidationSet(masked.astype(np.float32), image, mask)


def hole_propagation(output: np.ndarray, target: np.ndarray, mask: np.ndarray, hole_value: float) -> float:
    """P = sum_hole |output - h| / sum_hole |target - h| (module docstring); arrays (N, S, S, 3/1)."""
    hole = np.broadcast_to(np.asarray(mask) > 0.5, np.shape(output))
    if not hole.any():
        raise ValueError("the validation masks have no hole pixels")
    reference = float(np.abs(np.asarray(target, np.float64)[hole] - hole_value).sum())
    if reference == 0.0:
        raise ValueError(
            f"every validation hole pixel of the ground truth equals the hole value {hole_value}: "
            "the hole-propagation ratio is undefined"
        )
    return float(np.abs(np.asarray(output, np.float64)[hole] - hole_value).sum()) / reference


def hole_l1(output: np.ndarray, target: np.ndarray, mask: np.ndarray) -> float:
    """Mean |output - target| over all hole pixels and channels of a set (N, S, S, 3)."""
    hole = np.broadcast_to(np.asarray(mask) > 0.5, np.shape(output))
    return float(np.abs(np.asarray(output, np.float64) - target)[hole].mean())


def _variable_index(variables, variable, what: str) -> int:
    for i, v in enumerate(variables):
        if v is variable:
            return i
    raise ValueError(f"{what} is not among the generator's trainable variables")


def run_comparison(
    kind: str,
    *,
    train_paths: list[str],
    validation_paths: list[str],
    base: BaseParams,
    mask_params: MaskParams,
    model: ModelParams,
    compare: CompareParams,
    out_dir: str | Path,
) -> dict[str, float]:
    """Trains one generator kind under the comparison's budget, logging to dvclive in ``out_dir``.

    Reads ``base.seed`` and ``base.hole_value`` only (not ``base.image_size``). Returns the final
    epoch's metrics (the names of ``METRIC_NAMES``).
    """
    import keras  # noqa: PLC0415 - TensorFlow is slow to import; keep `--help` fast
    import tensorflow as tf  # noqa: PLC0415
    from dvclive import Live  # noqa: PLC0415

    from image_completion import losses  # noqa: PLC0415
    from image_completion.dataset import build_dataset  # noqa: PLC0415
    from image_completion.models import build_generator  # noqa: PLC0415

    if kind not in GENERATOR_KINDS:
        raise ValueError(f"unknown generator kind {kind!r}; allowed kinds: {list(GENERATOR_KINDS)}")
    if compare.images_per_epoch % compare.batch_size or compare.images_per_epoch < compare.batch_size:
        raise ValueError(
            f"compare.images_per_epoch ({compare.images_per_epoch}) must be a positive multiple of "
            f"compare.batch_size ({compare.batch_size})"
        )
    if compare.epochs < 1:
        raise ValueError(f"compare.epochs must be >= 1, got {compare.epochs}")
    steps = compare.images_per_epoch // compare.batch_size
    size = compare.image_size
    hole_value = base.hole_value

    keras.mixed_precision.set_global_policy("float32")
    keras.utils.set_random_seed(base.seed)  # same initialisation stream for every kind
    validation = make_validation_set(
        validation_paths, compare.validation_images, size, hole_value, mask_params, base.seed
    )
    dataset = build_dataset(
        train_paths, is_train=True, image_size=size, batch_size=compare.batch_size,
        hole_value=hole_value, seed=base.seed, mask_params=mask_params,
    )
    generator = build_generator(
        kind, size, base_filters=compare.base_filters, decoder_filters=model.decoder_filters,
        alpha=model.leaky_relu_alpha, skip_coefficients=tuple(model.skip_coefficients),
    )
    optimizer = keras.optimizers.Adam(learning_rate=compare.learning_rate)
    variables = generator.trainable_variables
    enc1 = _variable_index(variables, generator.get_layer("enc1_conv").kernel, "enc1_conv's kernel")
    out = _variable_index(variables, generator.get_layer("output").kernel, "the output layer's kernel")

    optimizer.build(variables)  # create Adam's slots now: the tf.function then traces only once

    @tf.function(autograph=False)  # no tensor-dependent Python control flow inside
    def train_step(masked, image, mask):
        with tf.GradientTape() as tape:
            pred = generator(masked, training=True)  # (B, S, S, 3)
            per_example = VALID_WEIGHT * losses.contextual_loss_valid(image, pred, mask) + (
                HOLE_WEIGHT * losses.contextual_loss_hole(image, pred, mask)
            )  # (B,)
            loss = tf.reduce_mean(per_example)
        grads = tape.gradient(loss, variables)
        optimizer.apply_gradients(zip(grads, variables))
        enc1_norm = tf.norm(grads[enc1])
        return loss, enc1_norm, enc1_norm / tf.maximum(tf.norm(grads[out]), 1e-30)

    @tf.function(autograph=False)
    def predict(masked):
        return generator(masked, training=False)

    def predict_all(x: np.ndarray) -> np.ndarray:
        batch = max(compare.batch_size, 32)
        return np.concatenate([predict(tf.constant(x[i : i + batch])).numpy() for i in range(0, len(x), batch)])

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    final: dict[str, float] = {}
    batches = iter(dataset.repeat())  # repeat(): the budget, not the dataset, ends an epoch
    try:
        with Live(dir=str(out_dir), save_dvc_exp=False, dvcyaml=None) as live:
            for epoch in range(compare.epochs):
                started = time.perf_counter()
                sums = np.zeros(3)
                for _ in range(steps):
                    batch = next(batches)
                    values = train_step(batch["masked"], batch["image"], batch["mask"])
                    sums += [float(v) for v in values]
                means = sums / steps
                output = predict_all(validation.masked)
                final = {
                    "train/g_loss": float(means[0]),
                    "train/grad_norm_enc1": float(means[1]),
                    "train/grad_ratio_enc1_out": float(means[2]),
                    "val/l1_hole": hole_l1(output, validation.image, validation.mask),
                    "val/hole_propagation": hole_propagation(output, validation.image, validation.mask, hole_value),
                }
                if not all(math.isfinite(v) for v in final.values()):
                    raise FloatingPointError(f"{kind}: non-finite metrics in epoch {epoch + 1}: {final}")
                for name, value in final.items():
                    live.log_metric(name, value)
                live.next_step()
                print(
                    f"[compare {kind}] epoch {epoch + 1}/{compare.epochs} ({time.perf_counter() - started:.1f} s): "
                    + ", ".join(f"{k} {v:.4g}" for k, v in final.items()),
                    flush=True,
                )
    finally:
        # Release the tf.data iterator (its numpy_function mask sampler) now, also when an error
        # propagates: a traceback would otherwise keep it alive until interpreter exit, where
        # TensorFlow can abort ("terminate called without an active exception") and turn a
        # handled failure, or a success, into a crash.
        del batches, dataset
    return final


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Architecture comparison: train one generator kind under a fixed budget.")
    parser.add_argument("--params", required=True, help="params.yaml")
    parser.add_argument("--kind", required=True, choices=GENERATOR_KINDS)
    parser.add_argument("--photos", required=True, type=Path, help="download stage output (holds manifest.csv)")
    parser.add_argument("--out", required=True, type=Path, help="dvclive folder, e.g. reports/compare/KIND")
    args = parser.parse_args(argv)

    params = load_stage_params(args.params, "compare")
    if args.kind not in params.compare.kinds:
        raise ConfigError(
            f"{args.params}: --kind {args.kind} is not in compare.kinds {params.compare.kinds}"
        )
    from image_completion.manifest import photo_paths  # noqa: PLC0415

    manifest = args.photos / "manifest.csv"
    started = time.perf_counter()
    final = run_comparison(
        args.kind,
        train_paths=photo_paths(manifest, "train"),
        validation_paths=photo_paths(manifest, "validation"),
        base=params.base,
        mask_params=params.masks,
        model=params.model,
        compare=params.compare,
        out_dir=args.out,
    )
    minutes = (time.perf_counter() - started) / 60
    print(f"[compare {args.kind}] done in {minutes:.1f} min; final {final}; metrics in {args.out / 'metrics.json'}")


if __name__ == "__main__":
    main()
