"""One builder of MaskParams for the tests: the shipped params.yaml values, with changes."""

import dataclasses
from pathlib import Path

from image_completion.config import MaskParams, load_params

ROOT = Path(__file__).resolve().parents[1]


def make_mask_params(**changes) -> MaskParams:
    return dataclasses.replace(load_params(ROOT / "params.yaml").masks, **changes)
