"""The model card: ``model_card.json`` beside a training stage's ``.keras`` files.

One reader and one file name for every consumer (evaluate, fill, serve). The card says how
the generator's input is made (``holes.InputSpec``), its crop size and the recipe it was
trained with; the full format is in ``docs/architecture.md``.
"""

from __future__ import annotations

import json
from pathlib import Path

from pydantic import ValidationError

from image_completion.config import describe_errors
from image_completion.core.holes import InputSpec
from image_completion.errors import InputError, open_regular

CARD_FILE = "model_card.json"
# The model folder's files (a training stage writes them; evaluate, fill and serve read them).
GENERATOR_FILE = "generator.keras"
DISCRIMINATOR_FILE = "discriminator.keras"
MODEL_FILES = (GENERATOR_FILE, DISCRIMINATOR_FILE)


def recipe_model_arg(value: str) -> tuple[str, Path]:
    """A command line's ``RECIPE=DIR`` (a recipe's model folder, e.g. ``refine=models/refine/stage2``);
    the argparse ``type`` of every stage that reads trained models."""
    import argparse  # noqa: PLC0415 - only the command lines need it

    recipe, sep, path = value.partition("=")
    if not sep or not recipe or not path:
        raise argparse.ArgumentTypeError(f"expected RECIPE=DIR (e.g. paper=models/paper/stage2), got {value!r}")
    return recipe, Path(path)


class CardError(InputError, ValueError):
    """A missing or malformed model card; the message starts with its path."""


def card_text(card: dict) -> str:
    return json.dumps(card, indent=2, sort_keys=True) + "\n"


def read_card(model_dir: str | Path) -> dict:
    """The card of a model folder, checked: ``image_size`` a positive int, the input spec valid."""
    path = Path(model_dir) / CARD_FILE
    try:
        with open_regular(path, CardError) as fh:
            card = json.loads(fh.read())
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
        InputSpec.from_card(card)
    except (KeyError, TypeError, AttributeError) as err:  # no input, or not an object
        raise CardError(f"{path}: no valid input description ('input' or 'hole_value'): {err}") from None
    except ValidationError as err:  # the types and ranges of holes.InputSpec (those of the params)
        raise CardError(describe_errors(err, str(path), prefix="input.")) from None
    return card
