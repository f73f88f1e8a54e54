"""Recipe ablation on the validation photos: one change at a time, same steps, same seed.

The test photos are never read. Variants, outputs and how the report uses them:
``docs/architecture.md``, "The ablation".

The command line is ``image_completion.stages.ablation``.
"""

from __future__ import annotations

import dataclasses
import tempfile
from pathlib import Path

import numpy as np

from image_completion.config import Params
from image_completion.evaluation import scoring
from image_completion.evaluation.validation import score

# name -> changes to the base recipe ("refine"); "paper" is the paper's recipe as it stands.
VARIANTS: dict[str, dict] = {
    "refine": {},
    # The recipe before issue 15: one biharmonic pre-fill plus a zero-started residual correction.
    "residual_biharmonic": {"prefill": "biharmonic", "residual_gate": 1.0, "crop_pool": 0},
    "without_fsr": {"prefill": ["biharmonic", "telea", "navier_stokes"]},
    "blend_pair": {"prefill": ["biharmonic", "fsr_fast"]},  # only the fixed blend's two methods
    "l1_loss": {"hole_loss": "l1"},
    "slower_lr": {"g_learning_rate": 1.0e-4},
    "transpose_upsampling": {"upsampling": "transpose"},
    "constant_lr": {"lr_schedule": "constant"},
    "adversarial": {"adversarial_weight": 0.1, "d_learning_rate": 1.0e-4},
}


def variant_params(params: Params, base: str, changes: dict, epochs: int) -> Params:
    recipe = dataclasses.replace(params.recipe(base), **changes, stage1_epochs=epochs, stage2_epochs=0)
    return dataclasses.replace(params, recipes={**params.recipes, "variant": recipe})


def correction(output: np.ndarray, start: np.ndarray, masks: np.ndarray) -> float:
    """How far training moved the fill: the mean over crops of mean |output - start| over the hole
    (all channels), ``start`` the untrained network's composite; (N, S, S, 3) x2, (N, S, S) -> float.
    A residual recipe starts at its pre-fill, a weighing one at its fixed blend (0 = it learned nothing)."""
    hole = np.asarray(masks, np.float32)[..., None]
    per_crop = (np.abs(output - start) * hole).sum(axis=(1, 2, 3)) / np.maximum(3 * hole.sum(axis=(1, 2, 3)), 1)
    return float(per_crop.mean())


def run_variant(params: Params, photos: Path, live: Path, data, curve: list | None = None) -> dict:
    """Trains the recipe "variant" of ``params`` (stage 1 only) and scores it on ``data``, with its
    ``correction`` from the untrained network; with ``curve``, also after every epoch (appending
    {step, all-bucket scores})."""
    from image_completion.evaluation.predictions import predict_fill  # noqa: PLC0415
    from image_completion.training import runner  # noqa: PLC0415

    images, masks, buckets = data
    spec = runner.input_spec(params, "variant")

    def fill(generator):
        return predict_fill(generator, images, masks, spec, params.evaluate.batch_size)[2]

    def scores(generator):
        return score(fill(generator), images, masks, buckets)

    start = fill(runner.build_networks(params, "variant", backbone_weights="none")[0])

    def hook(record, generator):
        curve.append({"step": (record["epoch"] + 1) * params.train.steps_per_epoch, **scores(generator)[scoring.ALL_BUCKETS]})

    with tempfile.TemporaryDirectory() as tmp:
        history = runner.run_stage(
            params, recipe="variant", stage=1, photos=photos, out=Path(tmp) / "model",
            live_dir=live, checkpoints=Path(tmp) / "ckpt", epoch_hook=hook if curve is not None else None,
        )  # fmt: skip
        import keras  # noqa: PLC0415

        generator = keras.saving.load_model(Path(tmp) / "model/generator.keras", compile=False)
    output = fill(generator)
    return {
        **score(output, images, masks, buckets),
        "correction": correction(output, start, masks),
        "seconds": sum(r["seconds"] for r in history),
    }
