"""Stage `report`: figures and a results table from saved metrics only.

    python -m image_completion.stages.report --reports reports --metrics reports/metrics.json \
        --bucket-metrics reports/bucket_metrics.csv --predictions data/predictions \
        --figures reports/figures --results reports/results.md

Argument checks and the params, then one call into ``image_completion.evaluation.report`` (what it does and writes).
"""

from __future__ import annotations

import argparse
import dataclasses
from pathlib import Path

import pandas as pd
import seaborn as sns

from image_completion.config import load_stage_params
from image_completion.errors import run_main
from image_completion.evaluation.claims import comparison_claims, training_claims
from image_completion.evaluation.figures import (
    plot_buckets,
    plot_claims,
    plot_comparison,
    plot_examples,
    plot_loss_parts,
    plot_perceptual_accuracy,
)
from image_completion.evaluation.report import (
    load_bucket_metrics,
    load_comparison,
    load_learning_d,
    load_training_history,
    make_results_markdown,
    read_json,
    target_rows,
)
from image_completion.images import write_text_atomic


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reports", type=Path, required=True, help="holds compare/ and train/<recipe>/stage{1,2}/ (dvclive)")
    parser.add_argument(
        "--params", type=Path, required=True, help="params.yaml (reads train.recipes: the last is the improved one)"
    )
    parser.add_argument("--metrics", type=Path, required=True, help="headline metrics JSON of evaluate")
    parser.add_argument("--per-image", type=Path, required=True, help="per-image CSV of evaluate")
    parser.add_argument("--bucket-metrics", type=Path, required=True, help="per-bucket CSV of evaluate")
    parser.add_argument("--predictions", type=Path, required=True)
    parser.add_argument("--figures", type=Path, required=True)
    parser.add_argument("--results", type=Path, required=True)
    args = parser.parse_args(argv)
    params = load_stage_params(args.params, "report")
    args.recipes = params.train.recipes
    sns.set_theme(style="whitegrid", context="notebook")
    history = load_training_history(args.reports, args.recipes)
    comparison = load_comparison(args.reports)
    buckets = load_bucket_metrics(args.bucket_metrics)
    headline = read_json(args.metrics)
    targets = target_rows(
        pd.read_csv(args.per_image), params.train.default_recipe, params.report.bootstrap_samples, params.base.seed
    )
    plot_loss_parts(history, args.figures / "train_loss_parts.png")
    plot_perceptual_accuracy(history, args.figures / "perceptual_accuracy.png", load_learning_d(args.reports / "claims"))
    plot_comparison(comparison, args.figures / "architecture_comparison.png")
    plot_buckets(buckets[~buckets["method"].str.endswith("_raw")], args.figures / "metrics_by_bucket.png")
    plot_examples(args.predictions, args.figures / "examples.png")
    deltas = dataclasses.asdict(params.report.claim_deltas)
    claims = comparison_claims(args.reports / "compare", deltas) + training_claims(args.reports / "claims", deltas)
    plot_claims(claims, args.figures / "claims.png")
    results = make_results_markdown(headline, buckets, targets, comparison, history, claims, params.train.default_recipe)
    write_text_atomic(args.results, results)


if __name__ == "__main__":
    run_main(main, "python -m image_completion.stages.report")
