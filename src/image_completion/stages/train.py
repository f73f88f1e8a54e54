"""Stages ``train_stage1@<recipe>`` and ``train_stage2@<recipe>``: training the inpainting GAN.

    python -m image_completion.stages.train --params params.yaml --recipe paper --stage 1|2 \
        [--init models/paper/stage1] --photos data/photos --out models/paper/stageN \
        --live reports/train/paper/stageN --checkpoints checkpoints/paper/stageN

Argument checks and the params, then one call into ``image_completion.training.runner`` (what it does and writes).
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from image_completion.config import load_stage_params
from image_completion.errors import run_main, usage_error
from image_completion.training import loop
from image_completion.training.runner import run_stage


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m image_completion.stages.train", description=__doc__.split("\n")[0])
    parser.add_argument("--params", required=True, type=Path, help="params.yaml (sections base, masks, model, train)")
    parser.add_argument("--recipe", required=True, help="a recipe named in params.yaml's train.recipes")
    parser.add_argument("--stage", required=True, type=int, choices=(1, 2))
    parser.add_argument("--init", type=Path, default=None, help="stage 2: the stage-1 model directory")
    parser.add_argument("--photos", required=True, type=Path, help="directory with manifest.csv and the images")
    parser.add_argument("--out", required=True, type=Path, help="model directory to write")
    parser.add_argument("--live", required=True, type=Path, help="dvclive directory for the per-epoch metrics")
    parser.add_argument("--checkpoints", required=True, type=Path, help="checkpoint directory (resume)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar even on a terminal")
    return parser.parse_args(argv)


def main(argv=None) -> None:
    args = parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s", stream=sys.stderr)
    params = load_stage_params(args.params, "train")
    if args.recipe not in params.recipes:
        usage_error("train", f"--recipe {args.recipe!r} is not defined under recipes in {args.params}: {sorted(params.recipes)}")
    if (args.stage == 2) != (args.init is not None):
        usage_error("train", "--init (the stage-1 model directory) is required for --stage 2 and refused for --stage 1")
    # MultiWorkerMirroredStrategy must exist before TensorFlow runs any op.
    strategy = loop.make_strategy(params.train.strategy)
    loop.set_precision(loop.resolve_precision(params.train.precision))
    loop.seed_everything(params.base.seed)
    run_stage(
        params,
        recipe=args.recipe,
        stage=args.stage,
        photos=args.photos,
        out=args.out,
        live_dir=args.live,
        checkpoints=args.checkpoints,
        init=args.init,
        strategy=strategy,
        progress=not args.no_progress,
    )


if __name__ == "__main__":
    run_main(main, "train")
