"""Stage `ablation_report` of pipelines/ablation/dvc.yaml: the ablation table and the learning
curve figure from the saved results of the ablation's other stages.

    python -m image_completion.stages.ablation_report --params params.yaml --ablation reports/ablation \
        --results reports/ablation/results.md --figure reports/ablation/learning_curve.png

Reads DIR/baselines/metrics.json, DIR/variants/<name>/metrics.json for each of ``ablation.variants``
and DIR/curve/curve.json (``image_completion.evaluation.report.read_ablation``).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import seaborn as sns

from image_completion.config import load_stage_params
from image_completion.errors import run_main
from image_completion.evaluation.figures import plot_learning_curve
from image_completion.evaluation.report import ablation_markdown, read_ablation, read_json
from image_completion.images import write_text_atomic

PROG = "python -m image_completion.stages.ablation_report"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog=PROG, description=__doc__.splitlines()[0])
    parser.add_argument("--params", type=Path, required=True, help="reads ablation.variants and train.default_recipe")
    parser.add_argument("--ablation", type=Path, required=True, help="the ablation's folder")
    parser.add_argument("--results", type=Path, required=True)
    parser.add_argument("--figure", type=Path, required=True)
    args = parser.parse_args(argv)
    params = load_stage_params(args.params, PROG)
    ablation = read_ablation(args.ablation, params.ablation.variants)
    curve = read_json(args.ablation / "curve" / "curve.json")
    sns.set_theme(style="whitegrid", context="notebook")
    plot_learning_curve(curve, ablation, args.figure)
    write_text_atomic(args.results, ablation_markdown(ablation, params.train.default_recipe))


if __name__ == "__main__":
    run_main(main, PROG)
