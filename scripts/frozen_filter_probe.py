"""Issue 19 lead: does holding the frozen VGG16 kernels as graph constants speed up the discriminator?

    python scripts/frozen_filter_probe.py [--calls 20] [--batch 8] [--size 64]

TensorFlow's oneDNN convolution caches its reordered filter when the filter is a graph constant
(``is_filter_const``) and reorders a variable's kernel at every call. This times the stage-1
discriminator pattern (VGG16's 13 convolutions and 5 pools, two forward calls, the input gradient
through one) in float32 with the kernels as ``tf.Variable``s and as constants, alternating, and
checks that both give the same gradient. The layers are the project's own frozen backbone
(``models.build_discriminator``, backbone weights ``none``: the time does not depend on the values).
Prints the max |gradient difference| and the median and best milliseconds of each.
"""

from __future__ import annotations

import argparse
import statistics
import time

# The package first: it turns TensorFlow's oneDNN ops on (as in training), read when TensorFlow loads.
# isort: off
import image_completion  # noqa: F401 - imported for that side effect
import keras
import tensorflow as tf
from image_completion.core import models
# isort: on

POOL = "pool"


def backbone_layers(size: int) -> list:
    """The frozen VGG16 backbone's layers in order: (kernel, bias) arrays per convolution, ``POOL``."""
    backbone = models.backbone_of(models.build_discriminator(size, backbone_weights="none"))
    return [
        (layer.kernel.numpy(), layer.bias.numpy()) if isinstance(layer, keras.layers.Conv2D) else POOL
        for layer in backbone.layers
        if isinstance(layer, (keras.layers.Conv2D, keras.layers.MaxPooling2D))
    ]


def backbone(x, layers):
    """(B, S, S, 3) -> (B,): the convolutions (ReLU) and 2x2 max pools of ``layers``, summed."""
    for layer in layers:
        if layer is POOL:
            x = tf.nn.max_pool2d(x, 2, 2, "VALID")
        else:
            kernel, bias = layer
            x = tf.nn.relu(tf.nn.bias_add(tf.nn.conv2d(x, kernel, 1, "SAME"), bias))
    return tf.reduce_sum(x, axis=[1, 2, 3])


def stage1_pattern(layers, constant: bool):
    """D(fake) and D(real), and the gradient of a loss with respect to ``fake``."""
    as_variables = [layer if layer is POOL else tuple(tf.Variable(a, trainable=False) for a in layer) for layer in layers]

    @tf.function
    def step(real, fake):
        params = (
            [layer if layer is POOL else tuple(tf.constant(a) for a in layer) for layer in layers] if constant else as_variables
        )
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
    layers = backbone_layers(args.size)
    assert sum(layer is not POOL for layer in layers) == len(models.VGG16_CONV_LAYERS), len(layers)
    real = tf.random.uniform((args.batch, args.size, args.size, 3), seed=1)
    fake = tf.random.uniform((args.batch, args.size, args.size, 3), seed=2)
    steps = {"variable": stage1_pattern(layers, False), "constant": stage1_pattern(layers, True)}
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
