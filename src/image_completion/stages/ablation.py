"""Stages `ablation@<variant>`, `ablation_baselines` and `ablation_curve` of pipelines/ablation/dvc.yaml:
the recipe ablation on the validation photos, one entry per variant of ``ablation.variants``.

    python -m image_completion.stages.ablation --params params.yaml --photos data/photos \
        --masks data/eval_masks --out DIR (--variant NAME | --baselines | --curve)

``--variant NAME``: train one variant for ``ablation.steps`` (stage 1), score it -> DIR/metrics.json,
dvclive logs in DIR/live. ``--baselines``: the classical methods on the same crops -> DIR/metrics.json.
``--curve``: the default recipe for ``ablation.curve_steps``, scored after every epoch -> DIR/curve.json.
Argument checks and the params, then calls into ``image_completion.training.ablation``.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path

from image_completion.config import Params, load_stage_params
from image_completion.errors import run_main
from image_completion.evaluation.validation import score, validation_set
from image_completion.images import write_text_atomic
from image_completion.training.ablation import VARIANTS, run_variant, variant_params

PROG = "python -m image_completion.stages.ablation"


def _parse(argv) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog=PROG, description=__doc__.split("\n")[0])
    parser.add_argument("--params", required=True, type=Path)
    parser.add_argument("--photos", required=True, type=Path)
    parser.add_argument("--masks", required=True, type=Path)
    parser.add_argument("--out", required=True, type=Path, help="the entry's folder")
    job = parser.add_mutually_exclusive_group(required=True)
    job.add_argument("--variant", help=f"one of ablation.variants: paper or a name of {list(VARIANTS)}")
    job.add_argument("--baselines", action="store_true", help="score the classical methods")
    job.add_argument("--curve", action="store_true", help="the default recipe's learning curve")
    args = parser.parse_args(argv)
    args.parser = parser
    return args


def _write_json(path: Path, value) -> None:
    write_text_atomic(path, json.dumps(value, indent=2, sort_keys=True) + "\n")


def _train(params: Params, base: str, changes: dict, steps: int, args, data, curve: list | None = None) -> dict:
    """Seeds, then trains recipe ``base`` with ``changes`` for ``steps`` stage-1 steps and scores it
    (``run_variant``; with ``curve``, after every epoch too)."""
    from image_completion.training import loop  # noqa: PLC0415 - TensorFlow loads after argument checks

    loop.seed_everything(params.base.seed)
    variant = variant_params(params, base, changes, steps // params.train.steps_per_epoch)
    return run_variant(variant, args.photos, args.out / "live", data, curve)


def _variant(params: Params, args, data) -> None:
    name = args.variant
    base, changes = ("paper", {}) if name == "paper" else (params.train.default_recipe, VARIANTS[name])
    result = _train(params, base, changes, params.ablation.steps, args, data)
    logging.getLogger(PROG).info("%s: %s", name, result["all"])
    _write_json(args.out / "metrics.json", {**result, "steps": params.ablation.steps, "changes": changes, "base": base})


def _baselines(params: Params, args, data) -> None:
    from image_completion.core import baselines, holes  # noqa: PLC0415 - OpenCV/TensorFlow load after argument checks

    results = {}
    for name in baselines.BASELINES:
        spec = holes.InputSpec(prefill=name, inpaint_radius=params.evaluate.inpaint_radius)
        results[name] = score(holes.generator_input(data[0], data[1], spec), data[0], data[1], data[2])
    _write_json(args.out / "metrics.json", results)


def _curve(params: Params, args, data) -> None:
    curve: list = []
    recipe = params.train.default_recipe
    _train(params, recipe, {}, params.ablation.curve_steps, args, data, curve)
    _write_json(args.out / "curve.json", {"recipe": recipe, "points": curve})


def main(argv=None) -> None:
    args = _parse(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s", stream=sys.stderr)
    params = load_stage_params(args.params, PROG)
    if args.variant is not None and (args.variant not in params.ablation.variants or args.variant not in {"paper", *VARIANTS}):
        args.parser.error(
            f"--variant {args.variant!r} must be one of ablation.variants {params.ablation.variants} and paper or a "
            f"name of {list(VARIANTS)}"
        )
    from image_completion.training import loop  # noqa: PLC0415 - TensorFlow loads after argument checks

    loop.set_precision(loop.resolve_precision(params.train.precision))
    data = validation_set(params, args.photos, args.masks)
    job = _variant if args.variant is not None else _baselines if args.baselines else _curve
    job(params, args, data)


if __name__ == "__main__":
    run_main(main, PROG)
