"""Diagnosis of the `refine` recipe (issue 15): does the network learn a correction, and do
training and inference agree?

    python scripts/diagnose_refine.py --params params.yaml --photos data/photos [--steps 400] \
        [--out reports/diagnosis/refine.json]

1. Trains `refine` (stage-1 settings, float32, no discriminator) for --steps steps on the training
   stream and logs, per 100 steps, the hole L1 of the pre-fill and of the network (training-mode
   BatchNorm, before the step) on the SAME batches, the gate and the output kernel's mean |w|.
2. Scores the trained network on fresh training batches in training and inference mode, and on the
   validation batches in inference mode, each against the pre-fill's own hole L1.
3. Gradient signal-to-noise at the start, with the output kernel drawn N(0, 0.01) so every layer
   has a gradient: SNR = ||mean_b g_b||^2 / mean_b ||g_b - mean g||^2 over 48 batches, for the
   L1 and the MSE hole loss, at the first encoder block, the last decoder block and the output.
Validation photos only; the test photos are never read.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf

from image_completion.config import load_stage_params
from image_completion.core.losses import contextual_loss_hole
from image_completion.training import loop, runner


def hole_l1(batch, out) -> float:
    return float(tf.reduce_mean(contextual_loss_hole(batch["image"], out, batch["mask"])))


def learning(params, manifest: Path, steps: int) -> dict:
    train_fn, val = runner.make_datasets(params, "refine", manifest)
    keras.utils.set_random_seed(params.base.seed)
    g, d = runner.build_networks(params, "refine", backbone_weights="none")
    step = tf.function(runner.compile_gan(params, "refine", 1, g, d).train_step)
    it, log, pre, net = iter(train_fn(0)), [], [], []
    for s in range(steps):
        b = next(it)
        pre.append(hole_l1(b, b["masked"][..., :3]))
        net.append(hole_l1(b, g(b["masked"], training=True)))
        step(b)
        if (s + 1) % 100 == 0:
            log.append({"step": s + 1, "prefill_hole_l1": float(np.mean(pre[-100:])), "network_hole_l1": float(np.mean(net[-100:])),
                        "gate": float(g.get_layer("residual_fill").gate.numpy()),
                        "output_kernel_mean_abs": float(tf.reduce_mean(tf.abs(g.get_layer("output").kernel)))})  # fmt: skip
            print(log[-1], flush=True)
    it2 = iter(train_fn(7))
    fresh = [next(it2) for _ in range(20)]
    after = {
        "train_prefill": np.mean([hole_l1(b, b["masked"][..., :3]) for b in fresh]),
        "train_training_mode": np.mean([hole_l1(b, g(b["masked"], training=True)) for b in fresh]),
        "train_inference": np.mean([hole_l1(b, g(b["masked"], training=False)) for b in fresh]),
        "validation_prefill": np.mean([hole_l1(b, b["masked"][..., :3]) for b in val]),
        "validation_inference": np.mean([hole_l1(b, g(b["masked"], training=False)) for b in val]),
    }
    return {"per_100_steps": log, "after": {k: float(v) for k, v in after.items()}}


def gradient_snr(params, manifest: Path, batches: int = 48) -> dict:
    train_fn, _ = runner.make_datasets(params, "refine", manifest)
    keras.utils.set_random_seed(params.base.seed)
    g, _ = runner.build_networks(params, "refine", backbone_weights="none")
    out = g.get_layer("output")
    out.kernel.assign(tf.random.normal(out.kernel.shape, stddev=0.01))
    it = iter(train_fn(0))
    data = [next(it) for _ in range(batches)]
    result = {}
    for name, f in (("l1", tf.abs), ("mse", tf.square)):

        @tf.function
        def grad(b, f=f):
            with tf.GradientTape() as t:
                y, m = g(b["masked"], training=True), b["mask"]
                loss = tf.reduce_sum(f(y - b["image"]) * m) / (tf.reduce_sum(m) * 3)
            return t.gradient(loss, g.trainable_variables)

        grads = [grad(b) for b in data]
        for block in ("enc1_conv", "dec9_conv", "output"):
            i = next(k for k, v in enumerate(g.trainable_variables) if v.path.startswith(block + "/") and "kernel" in v.path)
            per_batch = np.stack([gb[i].numpy().ravel() for gb in grads])
            mean = per_batch.mean(0)
            result[f"{name}/{block}"] = float((mean**2).sum() / ((per_batch - mean) ** 2).sum(1).mean())
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--params", type=Path, default=Path("params.yaml"))
    parser.add_argument("--photos", type=Path, default=Path("data/photos"))
    parser.add_argument("--steps", type=int, default=400)
    parser.add_argument("--out", type=Path, default=Path("reports/diagnosis/refine.json"))
    args = parser.parse_args()
    params = load_stage_params(args.params, "train")
    loop.set_precision("float32")
    loop.seed_everything(params.base.seed)
    manifest = args.photos / "manifest.csv"
    result = {
        "steps": args.steps,
        "learning": learning(params, manifest, args.steps),
        "gradient_snr": gradient_snr(params, manifest),
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result["learning"]["after"], indent=2), json.dumps(result["gradient_snr"], indent=2))


if __name__ == "__main__":
    main()
