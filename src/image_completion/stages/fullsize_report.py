"""Stage `fullsize_report` of pipelines/fullsize/dvc.yaml: the whole-photo tables and figure from
each size's saved ``per_case.csv``.

    python -m image_completion.stages.fullsize_report --params params.yaml --fullsize reports/fullsize/sizes \
        --results reports/fullsize/results.md --figure reports/fullsize/figure.png
"""

from __future__ import annotations

import argparse
from pathlib import Path

import pandas as pd
import seaborn as sns

from image_completion.config import load_stage_params
from image_completion.errors import run_main
from image_completion.evaluation.figures import plot_fullsize
from image_completion.evaluation.report import fullsize_markdown, read_csv, target_rows
from image_completion.images import write_text_atomic

PROG = "python -m image_completion.stages.fullsize_report"
PER_CASE_COLUMNS = {"index", "bucket", "method", "l1_hole", "psnr_hole", "ssim", "seconds"}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog=PROG, description=__doc__.splitlines()[0])
    parser.add_argument("--params", type=Path, required=True, help="reads fullsize.sizes and train.default_recipe")
    parser.add_argument("--fullsize", type=Path, required=True, help="holds <size>/per_case.csv")
    parser.add_argument("--results", type=Path, required=True)
    parser.add_argument("--figure", type=Path, required=True)
    args = parser.parse_args(argv)
    params = load_stage_params(args.params, PROG)
    recipe = params.train.default_recipe
    per_case = {size: read_csv(args.fullsize / str(size) / "per_case.csv", PER_CASE_COLUMNS) for size in params.fullsize.sizes}
    targets = {
        size: target_rows(table, recipe, params.report.bootstrap_samples, params.base.seed) for size, table in per_case.items()
    }
    sns.set_theme(style="whitegrid", context="notebook")
    plot_fullsize(pd.concat([t.assign(size=s) for s, t in per_case.items()]), args.figure)
    write_text_atomic(args.results, fullsize_markdown(per_case, targets, recipe))


if __name__ == "__main__":
    run_main(main, PROG)
