"""Stage `fullsize@<size>` of pipelines/fullsize/dvc.yaml: every method filled through ``fill`` on
the test photos at ``--size`` px, scored per case.

    python -m image_completion.stages.fullsize --params params.yaml --size 512 --photos data/photos \
        --model paper=models/paper/stage2 --model refine=models/refine/stage2 --out reports/fullsize/sizes/512

Writes OUT/per_case.csv (one row per case and method: scores and the fill's seconds) and
OUT/metrics.json (means per method, overall and per bucket). What a case is:
``image_completion.evaluation.fullsize``.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import pandas as pd

from image_completion.config import load_stage_params
from image_completion.core.cards import recipe_model_arg
from image_completion.errors import run_main
from image_completion.evaluation.fullsize import fillers, make_cases, score_cases, summarize
from image_completion.images import write_text_atomic

PROG = "python -m image_completion.stages.fullsize"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog=PROG, description=__doc__.splitlines()[0])
    parser.add_argument("--params", required=True, type=Path)
    parser.add_argument("--size", required=True, type=int, help="one of fullsize.sizes")
    parser.add_argument("--photos", required=True, type=Path)
    parser.add_argument("--model", action="append", default=[], type=recipe_model_arg, metavar="RECIPE=DIR")
    parser.add_argument("--out", required=True, type=Path)
    args = parser.parse_args(argv)
    params = load_stage_params(args.params, PROG)
    models = dict(args.model)
    if args.size not in params.fullsize.sizes:
        parser.error(f"--size {args.size} must be one of fullsize.sizes {params.fullsize.sizes}")
    if any(r not in params.train.recipes for r in models) or len(models) != len(args.model):
        parser.error(f"--model RECIPE=...: RECIPE must be one of train.recipes {params.train.recipes}, each given once")
    cases = make_cases(params, args.photos, args.size)
    rows = score_cases(cases, fillers(params.evaluate.baselines, models, params.evaluate.inpaint_radius))
    write_text_atomic(args.out / "per_case.csv", pd.DataFrame(rows).to_csv(index=False))
    write_text_atomic(args.out / "metrics.json", json.dumps(summarize(rows), indent=2, sort_keys=True) + "\n")


if __name__ == "__main__":
    run_main(main, PROG)
