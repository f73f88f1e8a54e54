"""Spike (issue 15, item 2): can a network that weighs classical fills per pixel beat their fixed blend?

    python scripts/learned_blend.py --params params.yaml --photos data/photos --masks data/eval_masks \
        [--arch unet|small] [--steps 1000] [--out reports/diagnosis/learned_blend-<arch>.json]

The network sees four classical fills of the hole (biharmonic, Telea, Navier-Stokes, FSR-fast) and
the mask, and outputs per-pixel softmax weights over the fills; its output convolution starts at zero
with biases log(``baselines.BLEND_WEIGHTS``), so training starts exactly at the validated fixed blend
(0.75 biharmonic + 0.25 FSR-fast; 1e-3 on the others). Loss: mean over crops of log(hole MSE), the
mean hole PSNR up to a constant. ``unet``: the recipe's U-Net body (resize upsampling, 32 filters);
``small``: five 3x3 convolutions (dilations 1, 2, 4, 8, 1) of 32 filters. Training pool: 3000 random
crops of the training photos under fresh training masks (``masks.train``), flips and 90-degree turns;
batch 16 (unet) or 32 (small), Adam. Scored every --every steps on the validation crops (never the
test photos). float32.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf

from image_completion.config import load_stage_params
from image_completion.core.baselines import BLEND_WEIGHTS, run_baseline
from image_completion.core.models import _conv_bn_act, _upsample
from image_completion.data.dataset import decoded_photos
from image_completion.data.manifest import photo_paths
from image_completion.data.masks import make_mask
from image_completion.evaluation.validation import score, validation_set

FILLS = ("biharmonic", "telea", "navier_stokes", "fsr_fast")


def fills_of(images: np.ndarray, masks: np.ndarray, radius: int) -> np.ndarray:
    """(N, S, S, 3), (N, S, S) -> (N, K, S, S, 3): every classical fill of ``FILLS``."""
    return np.stack([[run_baseline(k, i, m, inpaint_radius=radius) for k in FILLS] for i, m in zip(images, masks)])


def training_pool(params, photos: Path, n: int, seed: int):
    """``n`` random crops of the training photos, each with a fresh training mask and its fills."""
    size = params.base.image_size
    pictures, _ = decoded_photos(tuple(photo_paths(photos / "manifest.csv", "train")), size)
    rng = np.random.default_rng(seed)
    images, masks = np.zeros((n, size, size, 3), np.float32), np.zeros((n, size, size), np.float32)
    for i in range(n):
        photo = pictures[rng.integers(len(pictures))]
        top, left = rng.integers(photo.shape[0] - size + 1), rng.integers(photo.shape[1] - size + 1)
        crop = photo[top : top + size, left : left + size].astype(np.float32) / 255.0
        images[i] = crop[:, ::-1] if rng.random() < 0.5 else crop
        mask = make_mask(params.masks.train.kind, rng, size, params.masks.train)
        masks[i] = mask if 0 < mask.sum() < mask.size else make_mask("box", rng, size, params.masks.train)
    return images, masks, fills_of(images, masks, params.evaluate.inpaint_radius)


def build(arch: str, size: int) -> keras.Model:
    """[fills (B, K, S, S, 3), mask (B, S, S, 1)] -> per-pixel logits over the fills (B, S, S, K)."""
    k = len(FILLS)
    fills, mask = keras.Input((k, size, size, 3)), keras.Input((size, size, 1))
    x = keras.layers.Reshape((size, size, 3 * k))(keras.layers.Permute((2, 3, 1, 4))(fills))
    x = keras.layers.Concatenate()([x, mask])
    if arch == "small":
        for i, dilation in enumerate((1, 2, 4, 8, 1)):
            x = keras.layers.Conv2D(32, 3, padding="same", dilation_rate=dilation, activation="relu", name=f"c{i}")(x)
    else:
        skips = []
        for i in range(1, 6):
            x = _conv_bn_act(x, 32 * 2 ** (i - 1), 0.001, f"enc{i}")
            if i < 5:
                skips.append(x)
                x = keras.layers.MaxPooling2D(2)(x)
        for j, multiple in zip(range(6, 10), (8, 4, 2, 1)):
            x = keras.layers.Concatenate()([_upsample(x, 32 * multiple, "resize", f"dec{j}"), skips[9 - j]])
            x = _conv_bn_act(x, 96, 0.001, f"dec{j}")
    start = np.log(np.maximum([BLEND_WEIGHTS.get(name, 0.0) for name in FILLS], 1e-3))
    logits = keras.layers.Conv2D(k, 1, kernel_initializer="zeros", bias_initializer=keras.initializers.Constant(start))(x)
    return keras.Model([fills, mask], logits)


def blend(logits, fills):
    """Softmax-weighted fills: (B, S, S, K), (B, K, S, S, 3) -> (B, S, S, 3)."""
    return tf.einsum("bhwk,bkhwc->bhwc", tf.nn.softmax(logits, -1), fills)


def log_hole_mse(output, image, mask):
    """Mean over crops of log(MSE over the hole): (B, S, S, 3) x2, (B, S, S, 1) -> scalar."""
    per_pixel = tf.reduce_mean(tf.square(output - image), -1) * mask[..., 0]
    return tf.reduce_mean(tf.math.log(tf.reduce_sum(per_pixel, [1, 2]) / (tf.reduce_sum(mask, [1, 2, 3]) + 1e-6) + 1e-5))


def hole_l1(output, image, mask):
    """L1 over the hole pixels, as the recipes' hole term: (B, S, S, 3) x2, (B, S, S, 1) -> scalar."""
    return tf.reduce_sum(tf.abs(output - image) * mask) / (3.0 * tf.reduce_sum(mask) + 1e-6)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    for name in ("--params", "--photos", "--masks"):
        parser.add_argument(name, required=True, type=Path)
    parser.add_argument("--arch", choices=("unet", "small"), default="unet")
    parser.add_argument("--steps", type=int, default=1000)
    parser.add_argument("--every", type=int, default=500)
    parser.add_argument("--pool", type=int, default=3000)
    parser.add_argument("--loss", choices=("log_mse", "l1"), default="log_mse")
    parser.add_argument("--batch", type=int, help="default: 16 (unet) or 32 (small)")
    parser.add_argument("--lr", type=float, help="Adam; default: 3e-4 (unet) or 1e-3 (small)")
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    params = load_stage_params(args.params, "scripts/learned_blend.py")
    keras.utils.set_random_seed(params.base.seed)
    images, masks, fills = training_pool(params, args.photos, args.pool, params.base.seed)
    val_images, val_masks, buckets = validation_set(params, args.photos, args.masks)
    val_fills = fills_of(val_images, val_masks, params.evaluate.inpaint_radius)
    model = build(args.arch, params.base.image_size)
    optimizer = keras.optimizers.Adam(args.lr or (3e-4 if args.arch == "unet" else 1e-3))
    batch = args.batch or (16 if args.arch == "unet" else 32)
    loss_of = log_hole_mse if args.loss == "log_mse" else hole_l1

    @tf.function
    def step(f, m, x):
        with tf.GradientTape() as tape:
            loss = loss_of(blend(model([f, m], training=True), f), x, m)
        optimizer.apply_gradients(zip(tape.gradient(loss, model.trainable_variables), model.trainable_variables))
        return loss

    def evaluate() -> dict:
        out = np.concatenate(
            [
                blend(model([val_fills[i : i + 32], val_masks[i : i + 32, ..., None]]), val_fills[i : i + 32])
                for i in range(0, len(val_fills), 32)
            ]
        )
        return score(np.where(val_masks[..., None] > 0.5, np.clip(out, 0, 1), val_images), val_images, val_masks, buckets)["all"]

    rng, curve, start = np.random.default_rng(params.base.seed), [{"step": 0, **evaluate()}], time.time()
    print(curve[-1], flush=True)
    for s in range(1, args.steps + 1):
        idx, turns, flip = rng.integers(len(images), size=batch), int(rng.integers(4)), rng.random() < 0.5
        x, m, f = (
            np.rot90(a, turns, axes) for a, axes in ((images[idx], (1, 2)), (masks[idx][..., None], (1, 2)), (fills[idx], (2, 3)))
        )
        x, m, f = (a[..., ::-1, :] if flip else a for a in (x, m, f))  # width is the second-to-last axis of each
        step(*(tf.constant(np.ascontiguousarray(a), tf.float32) for a in (f, m, x)))
        if s % args.every == 0 or s == args.steps:
            curve.append({"step": s, **evaluate(), "seconds": round(time.time() - start)})
            print(curve[-1], flush=True)
    out = args.out or Path(f"reports/diagnosis/learned_blend-{args.arch}.json")
    out.write_text(json.dumps({"arch": args.arch, "fills": FILLS, "curve": curve}, indent=2) + "\n")


if __name__ == "__main__":
    main()
