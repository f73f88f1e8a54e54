"""Stage ``evaluate``: every recipe's stage-2 generator and the classical baselines on the fixed test inputs.

    python -m image_completion.stages.evaluate --params params.yaml --model paper=models/paper/stage2 \
        --model refine=models/refine/stage2 --photos data/photos --masks data/eval_masks \
        --predictions data/predictions --metrics reports/metrics.json \
        --per-image reports/per_image.csv --bucket-metrics reports/bucket_metrics.csv

Argument checks and the params, then one call into ``image_completion.evaluation.predictions`` (what it does and writes).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from image_completion.config import load_stage_params
from image_completion.core.cards import recipe_model_arg
from image_completion.errors import run_main, usage_error
from image_completion.evaluation.predictions import (
    run_evaluation,
    score_predictions,
    write_scores,
)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Evaluate the generator and the baselines on the fixed test set.")
    parser.add_argument("--params", required=True)
    parser.add_argument(
        "--model",
        required=True,
        action="append",
        type=recipe_model_arg,
        metavar="RECIPE=DIR",
        help="a recipe's stage-2 folder, e.g. paper=models/paper/stage2; repeat for each recipe",
    )
    parser.add_argument("--photos", required=True, type=Path)
    parser.add_argument("--masks", required=True, type=Path)
    parser.add_argument("--predictions", required=True, type=Path)
    parser.add_argument("--metrics", required=True, type=Path)
    parser.add_argument("--per-image", required=True, type=Path)
    parser.add_argument("--bucket-metrics", required=True, type=Path)
    args = parser.parse_args(argv)
    params = load_stage_params(args.params, "evaluate")
    recipes = [recipe for recipe, _ in args.model]
    for recipe in recipes:  # the names become files and metrics keys: only the params' checked ones
        if recipe not in params.recipes or recipes.count(recipe) > 1:
            usage_error(
                "evaluate",
                f"--model {recipe}=...: RECIPE must be one of recipes {sorted(params.recipes)} of {args.params}, each given once",
            )
    run_evaluation(
        models=dict(args.model),
        photos_dir=args.photos,
        masks_dir=args.masks,
        predictions_dir=args.predictions,
        base=params.base,
        evaluate=params.evaluate,
    )
    per_image, buckets, headline = score_predictions(
        args.predictions, bootstrap_samples=params.evaluate.bootstrap_samples, seed=params.base.seed
    )
    write_scores(
        per_image,
        buckets,
        headline,
        metrics_path=args.metrics,
        per_image_path=args.per_image,
        bucket_path=args.bucket_metrics,
    )
    print(json.dumps(headline, indent=2))


if __name__ == "__main__":
    run_main(main, "evaluate")
