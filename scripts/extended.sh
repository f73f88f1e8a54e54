#!/usr/bin/env bash
# The extended configuration (issues 15 and 16): the default pipeline with more seeds for the
# architecture comparison and the claims runs, as one DVC experiment. Run it after `dvc repro` of
# the default configuration (the default's outputs are reused; only the new seeds' runs and the
# report run). Its report is copied to reports/extended/, which is committed; `dvc exp show`
# compares the experiment with the default.
#   bash scripts/extended.sh [N_SEEDS]     (default 10: seeds 1234 .. 1234 + N - 1)
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$PWD/.venv/bin:$PATH"
n=${1:-10}
seeds=$(python -c "print([1234 + i for i in range($n)])" | tr -d ' ')
dvc exp run -n "extended-$n-seeds" -S "compare.seeds=$seeds" -S "claims.seeds=$seeds"
mkdir -p reports/extended
cp reports/results.md reports/extended/results.md
cp reports/figures/claims.png reports/figures/architecture_comparison.png reports/extended/
echo "reports/extended/: the report of compare.seeds = claims.seeds = $seeds"
