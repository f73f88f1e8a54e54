#!/usr/bin/env bash
# The paper's scale (configs/paper.yaml: the keys that differ from params.yaml) as one DVC
# experiment, on a GPU machine with internet access (README, "Paper-scale run"). `dvc exp show`
# compares it with the default configuration; the workspace keeps its params and outputs.
#   bash scripts/paper.sh            (GPU=0 bash scripts/paper.sh installs the CPU build)
set -euo pipefail
cd "$(dirname "$0")/.."
GPU=${GPU:-1} bash scripts/setup_env.sh
export PATH="$PWD/.venv/bin:$PATH"
flags=$(python -m image_completion.config --dvc-set-flags configs/paper.yaml)
mapfile -t flags <<< "$flags"
dvc exp run -n paper-scale "${flags[@]}"
