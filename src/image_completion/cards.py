"""The model card: ``model_card.json`` beside a training stage's ``.keras`` files.

One reader and one file name for every consumer (evaluate, fill, serve). The card says how
the generator's input is made (``holes.InputSpec``), its crop size and the recipe it was
trained with; the full format is in ``docs/architecture.md``.
"""

from __future__ import annotations

import json
from pathlib import Path

from image_completion.config import PREFILLS
from image_completion.holes import InputSpec

CARD_FILE = "model_card.json"


class CardError(ValueError):
    """A missing or malformed model card; the message starts with its path."""


def card_text(card: dict) -> str:
    return json.dumps(card, indent=2, sort_keys=True) + "\n"


def read_card(model_dir: str | Path) -> dict:
    """The card of a model folder, checked: ``image_size`` a positive int, the input spec valid."""
    path = Path(model_dir) / CARD_FILE
    try:
        card = json.loads(path.read_text())
    except FileNotFoundError:
        raise CardError(f"{path}: model card not found") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise CardError(f"{path}: cannot read the model card: {err}") from None
    if not isinstance(card, dict):
        raise CardError(f"{path}: expected a JSON object, got {type(card).__name__}")
    size = card.get("image_size")
    if isinstance(size, bool) or not isinstance(size, int) or size < 16 or size % 16:
        raise CardError(f"{path}: image_size must be a positive multiple of 16, got {size!r}")
    try:
        spec = InputSpec.from_card(card)
    except (KeyError, TypeError) as err:
        raise CardError(f"{path}: no valid input description ('input' or 'hole_value'): {err}") from None
    hole = spec.hole_value
    if isinstance(hole, bool) or not isinstance(hole, (int, float)) or not 0.0 <= hole <= 1.0:
        raise CardError(f"{path}: hole_value must be a number in [0, 1], got {hole!r}")
    if spec.prefill not in PREFILLS or not isinstance(spec.mask_channel, bool):
        raise CardError(f"{path}: input.prefill must be one of {list(PREFILLS)} and input.mask_channel a boolean")
    return card


def input_spec(card: dict) -> InputSpec:
    return InputSpec.from_card(card)
