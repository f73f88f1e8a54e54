"""Recipe ablation on the validation photos: one change at a time, same steps, same seed.

The test photos are never read. Variants, outputs and how the report uses them:
``docs/architecture.md``, "The ablation".

The command line is ``image_completion.stages.ablation``.
"""

from __future__ import annotations

import dataclasses
import logging
import tempfile
from pathlib import Path

import numpy as np

from image_completion.config import Params
from image_completion.evaluation import scoring

log = logging.getLogger("image_completion.training.ablation")

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
    from image_completion.data.dataset import load_crop, make_eval_crops  # noqa: PLC0415
    from image_completion.data.manifest import photo_paths  # noqa: PLC0415
    from image_completion.data.masks import read_eval_masks  # noqa: PLC0415

    masks, rows = read_eval_masks(masks_dir)
    crops = make_eval_crops(
        photo_paths(photos / "manifest.csv", "validation"), len(masks), params.base.image_size, params.base.seed
    )
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
    from image_completion.evaluation.predictions import predict_fill  # noqa: PLC0415
    from image_completion.training import runner  # noqa: PLC0415

    images, masks, buckets = data
    spec = runner.input_spec(params, "variant")

    def scores(generator):
        return score(predict_fill(generator, images, masks, spec, params.evaluate.batch_size)[2], images, masks, buckets)

    def hook(record, generator):
        curve.append({"step": (record["epoch"] + 1) * params.train.steps_per_epoch, **scores(generator)[scoring.ALL_BUCKETS]})

    with tempfile.TemporaryDirectory() as tmp:
        history = runner.run_stage(
            params, recipe="variant", stage=1, photos=photos, out=Path(tmp) / "model",
            live_dir=live, checkpoints=Path(tmp) / "ckpt", epoch_hook=hook if curve is not None else None,
        )  # fmt: skip
        import keras  # noqa: PLC0415

        generator = keras.saving.load_model(Path(tmp) / "model/generator.keras", compile=False)
    return {**scores(generator), "seconds": sum(r["seconds"] for r in history)}
