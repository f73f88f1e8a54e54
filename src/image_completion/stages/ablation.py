"""Recipe ablation on the validation photos: one change at a time, same steps, same seed.

    python -m image_completion.stages.ablation --params params.yaml --photos data/photos \
        --masks data/eval_masks --out reports/ablation [--steps 960] [--curve-steps 4800] [--only NAME ...]

Argument checks and the params, then one call into ``image_completion.training.ablation`` (what it does and writes).
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path

from image_completion.config import load_stage_params, run_main
from image_completion.evaluation.validation import score, validation_set
from image_completion.images import write_text_atomic
from image_completion.training.ablation import (
    VARIANTS,
    log,
    run_variant,
    variant_params,
)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(prog="python -m image_completion.stages.ablation", description=__doc__.split("\n")[0])
    parser.add_argument("--params", required=True, type=Path)
    parser.add_argument("--photos", required=True, type=Path)
    parser.add_argument("--masks", required=True, type=Path)
    parser.add_argument("--out", required=True, type=Path)
    parser.add_argument("--base", default=None, help="the recipe the variants change (default: train.default_recipe)")
    parser.add_argument("--steps", type=int, default=960, help="training steps per variant (a multiple of the steps per epoch)")
    parser.add_argument("--only", nargs="*", default=None, help=f"variants to run (default: all of {list(VARIANTS)} and paper)")
    parser.add_argument(
        "--curve-steps",
        type=int,
        default=0,
        help="also train --base for this many steps, scored after every epoch (the learning curve)",
    )
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s", stream=sys.stderr)
    params = load_stage_params(args.params, "ablation")
    args.base = args.base or params.train.default_recipe
    epochs, rest = divmod(args.steps, params.train.steps_per_epoch)
    if args.steps < 1 or rest or args.base not in params.recipes:
        parser.error(
            f"--steps must be a positive multiple of {params.train.steps_per_epoch} and --base one of {sorted(params.recipes)}"
        )
    from image_completion.core import baselines, holes  # noqa: PLC0415 - TensorFlow loads after argument checks
    from image_completion.training import loop  # noqa: PLC0415

    loop.set_precision(loop.resolve_precision(params.train.precision))
    data = validation_set(params, args.photos, args.masks)
    metrics_path = args.out / "metrics.json"
    results = json.loads(metrics_path.read_text()) if metrics_path.is_file() else {}
    for name in baselines.BASELINES:
        spec = holes.InputSpec(prefill=name, inpaint_radius=params.evaluate.inpaint_radius)
        results[name] = score(holes.generator_input(data[0], data[1], spec), data[0], data[1], data[2])
    names = args.only if args.only is not None else ["paper", *VARIANTS]
    for name in names:
        changes = {} if name == "paper" else VARIANTS[name]
        base = "paper" if name == "paper" else args.base
        loop.seed_everything(params.base.seed)
        result = run_variant(variant_params(params, base, changes, epochs), args.photos, args.out / "live" / name, data)
        results[name] = {**result, "steps": args.steps, "changes": changes, "base": base}
        log.info("%s: %s", name, result["all"])
        write_text_atomic(metrics_path, json.dumps(results, indent=2, sort_keys=True) + "\n")
    if args.curve_steps:
        curve: list = []
        loop.seed_everything(params.base.seed)
        epochs = args.curve_steps // params.train.steps_per_epoch
        run_variant(variant_params(params, args.base, {}, epochs), args.photos, args.out / "live" / "curve", data, curve)
        write_text_atomic(args.out / "curve.json", json.dumps({"recipe": args.base, "points": curve}, indent=2) + "\n")


if __name__ == "__main__":
    run_main(main, "ablation")
