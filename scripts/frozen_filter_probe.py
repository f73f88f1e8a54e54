"""Issue 19 lead: does holding the frozen VGG16 kernels as graph constants speed up the discriminator?

    python scripts/frozen_filter_probe.py [--calls 20] [--batch 8] [--size 64]

TensorFlow's oneDNN convolution caches its reordered filter when the filter is a graph constant
(``is_filter_const``) and reorders a variable's kernel at every call. This times the stage-1
discriminator pattern (VGG16's 13 convolutions and 5 pools, two forward calls, the input gradient
through one) in float32 with the kernels as ``tf.Variable``s and as constants, alternating, and
checks that both give the same gradient. Random kernels: the time does not depend on their values.
Prints the max |gradient difference| and the median and best milliseconds of each.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "1")  # as image_completion/__init__.py does

import numpy as np  # noqa: E402 - after the oneDNN switch, which TensorFlow reads at import
import tensorflow as tf  # noqa: E402 - idem

VGG16 = [64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512, "M"]


def kernels(seed: int = 0) -> list[tuple[np.ndarray, np.ndarray]]:
    rng, out, channels = np.random.default_rng(seed), [], 3
    for width in VGG16:
        if width != "M":
            out.append((rng.normal(0, 0.05, (3, 3, channels, width)).astype("float32"), np.zeros(width, "float32")))
            channels = width
    return out


def backbone(x, params):
    """(B, S, S, 3) -> (B,): the VGG16 convolutions and pools, summed."""
    params = iter(params)
    for width in VGG16:
        if width == "M":
            x = tf.nn.max_pool2d(x, 2, 2, "VALID")
        else:
            kernel, bias = next(params)
            x = tf.nn.relu(tf.nn.bias_add(tf.nn.conv2d(x, kernel, 1, "SAME"), bias))
    return tf.reduce_sum(x, axis=[1, 2, 3])


def stage1_pattern(weights, constant: bool):
    """D(fake) and D(real), and the gradient of a loss with respect to ``fake``."""
    variables = [(tf.Variable(k, trainable=False), tf.Variable(b, trainable=False)) for k, b in weights]

    @tf.function
    def step(real, fake):
        params = [(tf.constant(k), tf.constant(b)) for k, b in weights] if constant else variables
        with tf.GradientTape() as tape:
            tape.watch(fake)
            loss = tf.reduce_mean(backbone(fake, params)) - tf.reduce_mean(backbone(real, params))
        return tape.gradient(loss, fake)

    return step


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--calls", type=int, default=20, help="timed calls of each variant (alternating)")
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--size", type=int, default=64)
    args = parser.parse_args()
    weights = kernels()
    real = tf.random.uniform((args.batch, args.size, args.size, 3), seed=1)
    fake = tf.random.uniform((args.batch, args.size, args.size, 3), seed=2)
    steps = {"variable": stage1_pattern(weights, False), "constant": stage1_pattern(weights, True)}
    grads = {name: step(real, fake) for name, step in steps.items()}  # traced and warmed up
    print("max |gradient difference|", float(tf.reduce_max(tf.abs(grads["variable"] - grads["constant"]))))
    times = {name: [] for name in steps}
    for i in range(args.calls):
        for name in list(steps)[:: 1 if i % 2 else -1]:
            start = time.perf_counter()
            steps[name](real, fake).numpy()
            times[name].append(time.perf_counter() - start)
    for name, seconds in times.items():
        print(f"{name}: median {statistics.median(seconds) * 1000:.1f} ms, best {min(seconds) * 1000:.1f} ms")


if __name__ == "__main__":
    main()
