"""Recipe ablation on the validation photos: one change at a time, same steps, same seed.

    python -m image_completion.ablation --params params.yaml --photos data/photos \
        --masks data/eval_masks --out reports/ablation [--steps 960] [--curve-steps 4800] [--only NAME ...]

The test photos are never read. Variants, outputs and how the report uses them:
``docs/architecture.md``, "The ablation".
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import sys
import tempfile
from pathlib import Path

import numpy as np

from image_completion import scoring
from image_completion.config import Params, load_stage_params
from image_completion.images import write_text_atomic

log = logging.getLogger("image_completion.ablation")

# name -> changes to the base recipe ("refine"); "paper" is the paper's recipe as it stands.
VARIANTS: dict[str, dict] = {
    "refine": {},
    "prefill_telea": {"prefill": "telea"},
    "prefill_constant": {"prefill": "constant", "residual_gate": None},
    "no_residual": {"residual_gate": None},
    "no_mask_channel": {"mask_channel": False, "residual_gate": None},
    "transpose_upsampling": {"upsampling": "transpose"},
    "constant_lr": {"lr_schedule": "constant"},
    "adversarial": {"adversarial_weight": 0.1, "d_learning_rate": 1.0e-4},
}
SCORED = ("l1_hole", "psnr_hole", "ssim")


def variant_params(params: Params, base: str, changes: dict, epochs: int) -> Params:
    recipe = dataclasses.replace(params.recipe(base), **changes, stage1_epochs=epochs, stage2_epochs=0)
    return dataclasses.replace(params, recipes={**params.recipes, "variant": recipe})


def validation_set(params: Params, photos: Path, masks_dir: Path):
    """(crops (N, S, S, 3), masks (N, S, S), bucket labels): one validation crop per evaluation mask."""
    from image_completion.dataset import load_crop, make_eval_crops  # noqa: PLC0415
    from image_completion.manifest import photo_paths  # noqa: PLC0415
    from image_completion.masks import read_eval_masks  # noqa: PLC0415

    masks, rows = read_eval_masks(masks_dir)
    crops = make_eval_crops(photo_paths(photos / "manifest.csv", "validation"), len(masks), params.base.image_size, params.base.seed)
    images = np.stack([load_crop(p, top, left, params.base.image_size) for p, top, left in crops])
    return images.astype(np.float32), masks, [r.bucket for r in rows]


def score(outputs: np.ndarray, images: np.ndarray, masks: np.ndarray, buckets: list[str]) -> dict:
    """Means of ``SCORED`` overall and per bucket."""
    rows = [scoring.score_image(o, t, m) for o, t, m in zip(outputs, images, masks)]
    result = {scoring.ALL_BUCKETS: {k: float(np.mean([r[k] for r in rows])) for k in SCORED}}
    for b in dict.fromkeys(buckets):
        result[b] = {k: float(np.mean([r[k] for r, rb in zip(rows, buckets) if rb == b])) for k in SCORED}
    return result


def run_variant(params: Params, photos: Path, live: Path, data, curve: list | None = None) -> dict:
    """Trains the recipe "variant" of ``params`` (stage 1 only) and scores it on ``data``; with
    ``curve``, also after every epoch (appending {step, all-bucket scores})."""
    from image_completion import train  # noqa: PLC0415
    from image_completion.evaluate import predict_fill  # noqa: PLC0415

    images, masks, buckets = data
    spec = train.input_spec(params, "variant")

    def scores(generator):
        return score(predict_fill(generator, images, masks, spec, params.evaluate.batch_size)[2], images, masks, buckets)

    def hook(record, generator):
        curve.append({"step": (record["epoch"] + 1) * params.train.steps_per_epoch, **scores(generator)["all"]})

    with tempfile.TemporaryDirectory() as tmp:
        history = train.run_stage(
            params, recipe="variant", stage=1, photos=photos, out=Path(tmp) / "model",
            live_dir=live, checkpoints=Path(tmp) / "ckpt", epoch_hook=hook if curve is not None else None,
        )  # fmt: skip
        import keras  # noqa: PLC0415

        generator = keras.saving.load_model(Path(tmp) / "model/generator.keras", compile=False)
    return {**scores(generator), "seconds": sum(r["seconds"] for r in history)}


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(prog="python -m image_completion.ablation", description=__doc__.split("\n")[0])
    parser.add_argument("--params", required=True, type=Path)
    parser.add_argument("--photos", required=True, type=Path)
    parser.add_argument("--masks", required=True, type=Path)
    parser.add_argument("--out", required=True, type=Path)
    parser.add_argument("--base", default="refine", help="the recipe the variants change (default: refine)")
    parser.add_argument("--steps", type=int, default=960, help="training steps per variant (a multiple of the steps per epoch)")
    parser.add_argument("--only", nargs="*", default=None, help=f"variants to run (default: all of {list(VARIANTS)} and paper)")
    parser.add_argument("--curve-steps", type=int, default=0,
                        help="also train --base for this many steps, scored after every epoch (the learning curve)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s", stream=sys.stderr)
    params = load_stage_params(args.params, "ablation")
    epochs, rest = divmod(args.steps, params.train.steps_per_epoch)
    if args.steps < 1 or rest or args.base not in params.recipes:
        parser.error(f"--steps must be a positive multiple of {params.train.steps_per_epoch} and --base one of {sorted(params.recipes)}")
    from image_completion import baselines, holes, training  # noqa: PLC0415

    training.set_precision(training.resolve_precision(params.train.precision))
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
        training.seed_everything(params.base.seed)
        result = run_variant(variant_params(params, base, changes, epochs), args.photos, args.out / "live" / name, data)
        results[name] = {**result, "steps": args.steps, "changes": changes, "base": base}
        log.info("%s: %s", name, result["all"])
        write_text_atomic(metrics_path, json.dumps(results, indent=2, sort_keys=True) + "\n")
    if args.curve_steps:
        curve: list = []
        training.seed_everything(params.base.seed)
        epochs = args.curve_steps // params.train.steps_per_epoch
        run_variant(variant_params(params, args.base, {}, epochs), args.photos, args.out / "live" / "curve", data, curve)
        write_text_atomic(args.out / "curve.json", json.dumps({"recipe": args.base, "points": curve}, indent=2) + "\n")


if __name__ == "__main__":
    main()
