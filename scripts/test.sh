#!/usr/bin/env bash
# README command 2: install everything, then run the whole test suite.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup_env.sh
# Stage commands call `python`: make it the environment's.
export PATH="$PWD/.venv/bin:$PATH"
# Lint and format first (seconds): a red lint fails CI like a red test.
ruff check src tests scripts
ruff format --check src tests scripts
python -m pytest "$@"
