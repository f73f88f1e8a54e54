"""The one place that turns (image, mask) into the generator's input.

``InputSpec`` says how: the hole is pre-filled (the paper: a constant ``hole_value``; or a
classical fill such as biharmonic; or several classical fills side by side, which the generator
weighs per pixel) and, optionally, the mask is appended as the last channel. Training (``dataset.py``), evaluation, the comparison and ``fill`` all call
``generator_input``, so a model always sees at inference exactly what it saw in training.
Masks: (H, W) or (N, H, W), 1 = hole.
"""

from __future__ import annotations

import dataclasses

import numpy as np
from pydantic.dataclasses import dataclass

from image_completion.config import Bool, Fraction, InpaintRadius, PrefillSpec
from image_completion.core.baselines import run_baseline


@dataclass(frozen=True)
class InputSpec:
    """How the generator input is made; stored in the model card (``as_card``/``from_card``).
    Typed like the params (pydantic): a card's values are checked when it is read."""

    prefill: PrefillSpec = "constant"  # "constant" = every hole pixel is ``hole_value`` (the paper)
    mask_channel: Bool = False
    hole_value: Fraction = 1.0
    inpaint_radius: InpaintRadius = 3

    @property
    def fills(self) -> tuple[str, ...]:
        """The methods whose fills the generator weighs (a list prefill), else ()."""
        return self.prefill if isinstance(self.prefill, tuple) else ()

    @property
    def channels(self) -> int:
        return 3 * max(1, len(self.fills)) + (1 if self.mask_channel else 0)

    def as_card(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_card(cls, card: dict) -> "InputSpec":
        """From a model card; cards written before recipes existed hold only ``hole_value``."""
        fields = {f.name for f in dataclasses.fields(cls)}
        raw = card["input"] if "input" in card else {"hole_value": card["hole_value"]}
        return cls(**{k: v for k, v in raw.items() if k in fields})


def _prefill(image: np.ndarray, hole: np.ndarray, spec: InputSpec) -> np.ndarray:
    """(H, W, 3 or 3 x len(spec.fills)): the pre-filled image, or each listed method's fill side by side."""
    methods = spec.fills or (spec.prefill,)
    if spec.prefill == "constant" or not hole.any() or hole.all():
        # The paper's constant; or nothing to fill, or nothing known to fill from (a classical
        # method needs a known pixel): every fill is the constant.
        return np.tile(np.where(hole[..., None], np.float32(spec.hole_value), image).astype(np.float32), len(methods))
    mask = hole.astype(np.float32)
    return np.concatenate([run_baseline(m, image, mask, inpaint_radius=spec.inpaint_radius) for m in methods], axis=-1)


def generator_input(image: np.ndarray, mask: np.ndarray, spec: InputSpec) -> np.ndarray:
    """image float32 (H, W, 3) or (N, H, W, 3) in [0, 1], mask (H, W) or (N, H, W) ->
    float32 (..., H, W, spec.channels): the pre-filled image [+ the mask channel]."""
    image = np.asarray(image, np.float32)
    mask = np.asarray(mask, np.float32)
    if image.ndim == 4:
        return np.stack([generator_input(i, m, spec) for i, m in zip(image, mask)])
    assert image.ndim == 3 and mask.shape == image.shape[:2], (image.shape, mask.shape)
    hole = mask > 0.5
    filled = _prefill(image, hole, spec)
    if spec.mask_channel:
        return np.concatenate([filled, hole[..., None].astype(np.float32)], axis=-1)
    return filled
