"""Seconds per GAN training step (generator + discriminator update) on random data.

Usage: python scripts/bench_train_step.py BASE_FILTERS PRECISION [BACKBONE] [IMAGE_SIZE]
  e.g. python scripts/bench_train_step.py 32 mixed_bfloat16 hed-bsds500 64
Prints wall and CPU seconds per step at batch 8 after two warm-up steps (tracing).
"""

import sys
import time

import keras
import numpy as np
import tensorflow as tf

from image_completion import training
from image_completion.gan import InpaintingGAN
from image_completion.losses import LossWeights
from image_completion.models import build_discriminator, build_generator

base = int(sys.argv[1])
precision = sys.argv[2]
backbone = sys.argv[3] if len(sys.argv) > 3 else "hed-bsds500"
size = int(sys.argv[4]) if len(sys.argv) > 4 else 64
batch_size = 8
training.set_precision(precision)
training.seed_everything(0)
rng = np.random.default_rng(0)
image = rng.random((batch_size, size, size, 3)).astype("float32")
mask = np.zeros((batch_size, size, size, 1), "float32")
mask[:, size // 4 : size // 2, size // 8 : size // 2] = 1
batch = {
    "masked": tf.constant(np.where(mask > 0, 1.0, image).astype("float32")),
    "image": tf.constant(image),
    "mask": tf.constant(mask),
}
gan = InpaintingGAN(
    build_generator("unet_scaled", size, base_filters=base, decoder_filters=96),
    build_discriminator(size, backbone_weights=backbone, dense_units=128),
)
gan.compile(keras.optimizers.Adam(1e-4), keras.optimizers.Adam(1e-7), LossWeights(), global_batch_size=batch_size)
step = tf.function(gan.train_step)
for _ in range(2):
    step(batch)["g_loss"].numpy()
n = 8
wall, cpu = time.perf_counter(), time.process_time()
for _ in range(n):
    step(batch)["g_loss"].numpy()
wall, cpu = (time.perf_counter() - wall) / n, (time.process_time() - cpu) / n
print(f"image_size={size} base_filters={base} precision={precision} backbone={backbone}: "
      f"{wall:.3f} s/step wall, {cpu:.3f} CPU-s/step")
