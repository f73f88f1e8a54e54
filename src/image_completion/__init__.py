"""Image Completion Network: a reproducible reimplementation (see README.md, docs/architecture.md).

TensorFlow's oneDNN kernels are on for every x86 CPU, not only those TensorFlow turns them on
for by itself (AVX-512 VNNI/BF16, AMX): on a 2-core AVX2-only AMD EPYC they take the paper's
float32 training step from 0.97 to 0.62 s (bench medians; README, "Speed and time budget"). Set here, before
any module imports TensorFlow, so every stage, command and test trains with the same kernels; a
``TF_ENABLE_ONEDNN_OPTS`` the user set wins (``0``: TensorFlow's own Eigen kernels).
"""

import os

os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "1")
