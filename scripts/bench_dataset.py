"""Throughput of the training input pipeline: 1024x768 PNG photos, image_size 64, batch 8.

Usage: python scripts/bench_dataset.py [batches]  (prints batches/s and CPU seconds per image)
"""
import atexit
import os
import shutil
import sys
import tempfile
import time

import numpy as np
from PIL import Image
from skimage import data, transform

from image_completion.config import load_params
from image_completion.dataset import build_dataset

folder = tempfile.mkdtemp(prefix="bench_photos_")
atexit.register(shutil.rmtree, folder, ignore_errors=True)
rng = np.random.default_rng(0)
paths = []
for i, name in enumerate(["astronaut", "coffee", "chelsea", "rocket", "immunohistochemistry", "hubble_deep_field", "retina", "colorwheel"]):
    big = transform.resize(getattr(data, name)()[..., :3], (768, 1024), order=1)
    # Sensor-like noise so the PNGs are as large (and as slow to decode) as real photos' (~1.4 MB).
    big = np.clip(big * 255 + rng.normal(0, 4, big.shape), 0, 255).astype(np.uint8)
    paths.append(os.path.join(folder, f"photo_{i}.png"))
    Image.fromarray(big).save(paths[-1])
print("photo PNG sizes (KB):", [os.path.getsize(p) // 1024 for p in paths])
mask_params = load_params(os.environ.get("PARAMS", "params.yaml")).masks
ds = build_dataset(paths, is_train=True, image_size=64, batch_size=8, hole_value=1.0, seed=1234, mask_params=mask_params)
it = iter(ds)
for _ in range(5):
    next(it)  # warm-up: tracing, autotune
n = int(sys.argv[1]) if len(sys.argv) > 1 else 100
wall, cpu = time.perf_counter(), time.process_time()
for _ in range(n):
    next(it)
wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
del it  # stop the background threads before the interpreter exits
print(
    f"{n} batches in {wall:.2f} s: {n / wall:.1f} batches/s = {8 * n / wall:.0f} images/s "
    f"({cpu / (8 * n) * 1000:.1f} ms CPU per image); 2560 images/epoch -> {2560 / (8 * n / wall):.1f} s; "
    f"load average {os.getloadavg()[0]:.1f}"
)
