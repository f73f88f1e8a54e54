"""Stage ``claims@<seed>``: the training runs behind the paper's claims (d) and (e), small scale.

    python -m image_completion.stages.claims --params params.yaml --seed SEED --photos data/photos \
        --out reports/claims/SEED

Argument checks and the params, then one call into ``image_completion.training.claim_runs`` (what it does and writes).
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from image_completion.config import load_stage_params
from image_completion.errors import run_main, usage_error
from image_completion.training import loop
from image_completion.training.claim_runs import claim_params, run_claims


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(prog="python -m image_completion.stages.claims", description=__doc__.split("\n")[0])
    parser.add_argument("--params", required=True, type=Path)
    parser.add_argument("--seed", required=True, type=int, help="one of claims.seeds")
    parser.add_argument("--photos", required=True, type=Path)
    parser.add_argument("--out", required=True, type=Path)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s", stream=sys.stderr)
    params = load_stage_params(args.params, "claim_runs")
    if args.seed not in params.claims.seeds:
        usage_error("claim_runs", f"--seed {args.seed} is not in claims.seeds {params.claims.seeds} of {args.params}")
    loop.set_precision(loop.resolve_precision(params.train.precision))
    loop.seed_everything(args.seed)
    run_claims(claim_params(params, args.seed), args.photos, args.out)


if __name__ == "__main__":
    run_main(main, "claims")
