"""One builder of mask shapes for the tests: the shipped params.yaml values, with changes."""

import dataclasses
from pathlib import Path

from image_completion.config import EvalMaskShapes, MaskShapes, load_params

ROOT = Path(__file__).resolve().parents[1]


def make_mask_params(**changes) -> MaskShapes:
    """The training masks' shapes (``masks.train``)."""
    return dataclasses.replace(load_params(ROOT / "params.yaml").masks.train, **changes)


def make_eval_mask_params(**changes) -> EvalMaskShapes:
    """The evaluation masks' shapes and buckets (``masks.eval``)."""
    return dataclasses.replace(load_params(ROOT / "params.yaml").masks.eval, **changes)
