"""Filling a user's own photo of any size with a trained generator or a classical method.

Each hole region is filled in a square context window at the model's resolution (shrunk by
averaging known pixels only, the generator's input made by ``holes.generator_input`` as the model
card says, enlarged back), and only hole pixels are pasted: known pixels stay bit-exact. The
window rules are in the README ("How a photo of any size is filled") and `app.windows`; the files a fill
reads and writes are checked by `app.files`. Errors about a file start
with its path (``FillError`` or ``images.ImageError``).
"""

from __future__ import annotations

import dataclasses
import logging
import math
import zipfile
from pathlib import Path
from typing import Callable, Iterable

import cv2
import numpy as np

from image_completion.app.files import (
    FillError,
    check_output_file,
    load_pair,
    make_dirs,
    naming,
    refuse_overwriting_inputs,
    remove_empty,
)
from image_completion.app.windows import enlarged_box, hole_windows, paste, window_input
from image_completion.config import load_params
from image_completion.core.cards import CARD_FILE, GENERATOR_FILE, CardError, read_card
from image_completion.core.holes import InputSpec
from image_completion.errors import ConfigError
from image_completion.images import PngBatch, remove_stale_temp_files, save_png_atomic

# Methods a user can pick; the command line's short ``ns`` and ``fsr`` are baselines.py's ``navier_stokes``
# and ``fsr_fast``; ``blend`` is ``baselines.BLEND_WEIGHTS`` (chosen on the validation photos).
METHODS = ("model", "telea", "ns", "biharmonic", "fsr", "blend")
BASELINE_NAMES = {"telea": "telea", "ns": "navier_stokes", "biharmonic": "biharmonic", "fsr": "fsr_fast", "blend": "blend"}
PARAMS_FILE = Path("params.yaml")  # the repository's params: train.default_recipe names the default model
PREDICT_BATCH = 16  # windows per generator call
# The biharmonic solve (scikit-image: one sparse system per hole region) takes 2.6 to 4 KB per hole
# pixel, more for larger regions (README, "Memory of a fill": python -m image_completion.bench.fill_memory).
SOLVED_METHODS = ("biharmonic", "blend")
# Peak memory of one fill per pixel of its photo, measured on 4-megapixel photos: a Telea or
# Navier-Stokes fill about 94 bytes, biharmonic 109, the model (64-px generator) 20, decode 12.
# The budget of `fill --max-pixels` and of the server (app/web/guard.py).
BYTES_PER_PIXEL = 128
SOLVE_BYTES_PER_HOLE_PIXEL = 4096
SOLVE_SLACK = 32 * 2**20  # bytes: holes up to 8192 pixels are always solved at full resolution
SOLVE_MAX_HOLE_PIXELS = 250_000  # 3.3 KB per hole pixel and 7 s on a 2-core AMD EPYC
LOG = logging.getLogger(__name__)


# --------------------------------------------------------------------------------------------
# The generator and its card
# --------------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Generator:
    """A loaded generator: ``predict`` maps float32 (N, S, S, C) -> (N, S, S, 3) in [0, 1]; its
    input is made by ``holes.generator_input`` with ``spec`` (from the model card)."""

    predict: Callable[[np.ndarray], np.ndarray]
    image_size: int
    spec: InputSpec
    path: Path
    # A generator that weighs classical fills (``spec.fills``): float32 (N, S, S, C) -> its per-pixel
    # weights (N, S, S, K), which ``fill_with_generator`` applies to the fills made at full resolution.
    weigh: Callable[[np.ndarray], np.ndarray] | None = None


def model_path_of(recipe: str) -> Path:
    """Where ``dvc repro`` writes a recipe's final generator."""
    return Path("models") / recipe / "stage2" / GENERATOR_FILE


def default_model(params_file: Path) -> Path:
    """The generator of ``train.default_recipe`` in the repository's params file (fill's and serve's default)."""
    try:
        return model_path_of(load_params(params_file).train.default_recipe)
    except ConfigError as err:
        raise FillError(f"{err} (train.default_recipe there names the default model; or pass --recipe or --model)") from None


def missing_model_message(path: str | Path) -> str:
    return (
        f"{path}: model file not found; run `dvc repro` in the repository to train the recipes' "
        "generators, or pass --model PATH to a saved generator (.keras)"
    )


def resolve_model_settings(model_path: str | Path, input_shape: tuple, hole_value: float | None) -> tuple[int, InputSpec]:
    """(image_size, input spec) of a generator from its card, its input shape and ``--hole-value``.

    With a card (``cards.read_card``): the card's values; ``hole_value`` may be given only if it
    equals the card's. Without a card: a paper-style generator (3 channels, constant hole) whose
    size comes from its fixed input shape, and ``hole_value`` must be given (no silent default).
    """
    model_path = Path(model_path)
    card_path = model_path.parent / CARD_FILE
    input_size, channels = input_shape[1], input_shape[-1]
    if not card_path.exists():
        if hole_value is None:
            raise FillError(
                f"{model_path}: no {CARD_FILE} beside the model, so its hole value is unknown; "
                "pass --hole-value (the constant that replaced hole pixels in training, e.g. 1.0)"
            )
        if input_size is None or channels != 3:
            raise FillError(f"{model_path}: without a {CARD_FILE} beside it the model needs a fixed (S, S, 3) input")
        return int(input_size), InputSpec(hole_value=float(hole_value))
    try:
        card = read_card(model_path.parent)
    except CardError as err:
        raise FillError(str(err)) from None
    size, spec = card["image_size"], InputSpec.from_card(card)
    if hole_value is not None and not math.isclose(hole_value, spec.hole_value):
        raise FillError(f"{card_path}: --hole-value {hole_value} conflicts with the card's hole_value {spec.hole_value}")
    if (input_size is not None and input_size != size) or channels != spec.channels:
        raise FillError(
            f"{card_path}: image_size {size} and {spec.channels} input channels differ from the model's input {input_shape}"
        )
    return size, spec


def load_generator(model_path: str | Path, hole_value: float | None = None) -> Generator:
    """Loads a saved generator (.keras) and its settings (see ``resolve_model_settings``)."""
    model_path = Path(model_path)
    if not model_path.exists():
        raise FillError(missing_model_message(model_path))
    if model_path.is_dir():
        raise FillError(f"{model_path}: is a directory, not a saved model (.keras)")
    if not model_path.is_file():  # a named pipe would block the zip check below
        raise FillError(f"{model_path}: not a regular file (a named pipe, device or socket); give a saved model (.keras)")
    if not zipfile.is_zipfile(model_path):  # a .keras file is a zip archive
        raise FillError(f"{model_path}: not a saved Keras model (.keras files are zip archives)")
    import keras  # noqa: PLC0415 - TensorFlow and scikit-image load on use (fill with a classical method needs neither)

    from image_completion.core.models import ModelFileError, load_model_float32  # also registers the custom layers  # noqa: PLC0415 - TensorFlow and scikit-image load on use (fill with a classical method needs neither)

    try:
        # float32 whatever precision it was trained in: a mixed_float16 (GPU) model would
        # otherwise compute in float16 on a CPU.
        model = load_model_float32(model_path)
    except ModelFileError as err:  # wraps Keras' many error types for a bad file
        cause = err.__cause__ or err
        first_line = str(cause).strip().splitlines()[0] if str(cause).strip() else type(cause).__name__
        raise FillError(f"{model_path}: cannot load the model: {first_line}") from None
    shape = tuple(model.input_shape) if not isinstance(model.input_shape, list) else None
    if shape is None or len(shape) != 4 or shape[-1] is None or shape[-1] < 3:
        raise FillError(f"{model_path}: expected a generator with one (B, S, S, C >= 3) input, got {model.input_shape}")
    if shape[1] is not None and shape[1] != shape[2]:
        raise FillError(f"{model_path}: expected a square input, got {shape}")
    size, spec = resolve_model_settings(model_path, shape, hole_value)

    def predict(batch: np.ndarray, network=model) -> np.ndarray:
        out = network(np.asarray(batch, np.float32), training=False)
        return np.asarray(keras.ops.convert_to_numpy(out), np.float32)

    weigh = None
    if spec.fills:
        try:
            logits = keras.Model(model.input, model.get_layer("fill_logits").output)
        except ValueError:
            raise FillError(
                f"{model_path}: its card lists fills to weigh {spec.fills}, but the model has no fill_logits layer"
            ) from None

        def weigh(batch: np.ndarray) -> np.ndarray:
            return np.asarray(keras.ops.convert_to_numpy(keras.ops.softmax(predict(batch, logits), axis=-1)), np.float32)

    return Generator(predict=predict, image_size=size, spec=spec, path=model_path, weigh=weigh)


def fill_with_generator(image: np.ndarray, hole: np.ndarray, generator: Generator, batch_size: int = PREDICT_BATCH) -> np.ndarray:
    """Fills uint8 (H, W, 3) where ``hole`` (H, W) is True; returns uint8 (H, W, 3), known pixels bit-exact."""
    image = np.asarray(image)
    hole = np.asarray(hole, bool)
    _check_image_and_hole(image, hole)
    size = generator.image_size
    labels, windows = hole_windows(hole, size)
    if generator.spec.fills:
        return _fill_weighed(image, hole, generator, labels, windows, batch_size)
    photo = image.astype(np.float32) / 255.0
    out = image.copy()
    for start in range(0, len(windows), batch_size):
        chunk = windows[start : start + batch_size]
        prepared = [window_input(photo, hole, w, size, generator.spec) for w in chunk]
        batch = np.stack([p[0] for p in prepared])  # (N, S, S, C)
        predicted = generator.predict(batch)
        if predicted.shape != (*batch.shape[:3], 3):
            raise FillError(f"{generator.path}: generator output shape {predicted.shape} != input {batch.shape}")
        for window, (_, small_known, small_hole), pred in zip(chunk, prepared, predicted):
            composite = np.where(small_hole[..., None], np.clip(pred, 0.0, 1.0), small_known)  # (S, S, 3)
            paste(out, labels, window, enlarged_box(composite, window))
    return out


def _fill_weighed(image, hole, generator: Generator, labels, windows, batch_size: int) -> np.ndarray:
    """A generator that weighs classical fills, at full resolution: each listed method fills the
    photo (``fill_with_baseline``), the generator's weights for each window (computed at its
    resolution from the shrunk window's fills) are enlarged to the window and mix those fills."""
    spec, size = generator.spec, generator.image_size
    fills = [fill_with_baseline(image, hole, name, spec.inpaint_radius) for name in spec.fills]  # uint8 (H, W, 3) each
    photo = image.astype(np.float32) / 255.0
    out = image.copy()
    for start in range(0, len(windows), batch_size):
        chunk = windows[start : start + batch_size]
        weights = generator.weigh(np.stack([window_input(photo, hole, w, size, spec)[0] for w in chunk]))  # (N, S, S, K)
        assert weights.shape == (len(chunk), size, size, len(fills)), weights.shape
        for window, weight in zip(chunk, weights):
            box = enlarged_box(weight, window)  # (h, w, K): the region's bounding box at full resolution
            box /= np.maximum(box.sum(axis=-1, keepdims=True), 1e-6)  # bicubic enlarging need not keep the sum
            rows, cols = window.slices
            mixed = sum(box[..., k : k + 1] * (fill[rows, cols].astype(np.float32) / 255.0) for k, fill in enumerate(fills))
            paste(out, labels, window, mixed)
    return out


def solve_scale(method: str, photo_pixels: int, hole_pixels: int) -> int:
    """1, or the factor by which ``fill_with_baseline`` shrinks the photo before a biharmonic solve
    (``biharmonic``, ``blend``) so that it fits the pixel budget (``BYTES_PER_PIXEL`` per photo
    pixel): the solve may take half of it plus ``SOLVE_SLACK`` at ``SOLVE_BYTES_PER_HOLE_PIXEL``, and
    at most ``SOLVE_MAX_HOLE_PIXELS`` (the largest measured, a few seconds) on any machine."""
    if method not in SOLVED_METHODS:
        return 1
    allowed = (BYTES_PER_PIXEL * photo_pixels // 2 + SOLVE_SLACK) // SOLVE_BYTES_PER_HOLE_PIXEL
    allowed = min(allowed, SOLVE_MAX_HOLE_PIXELS)
    return 1 if hole_pixels <= allowed else math.ceil(math.sqrt(hole_pixels / allowed))


def fill_with_baseline(image: np.ndarray, hole: np.ndarray, method: str, inpaint_radius: int = 3) -> np.ndarray:
    """Fills uint8 (H, W, 3) with the classical method ``method`` (a ``baselines.py`` name, e.g.
    ``navier_stokes``); known pixels bit-exact.
    A hole too large for a biharmonic solve within the pixel budget is solved at a reduced
    resolution (``solve_scale``) and enlarged; a note on the log says so."""
    from image_completion.core.baselines import run_baseline  # noqa: PLC0415 - TensorFlow and scikit-image load on use (fill with a classical method needs neither)

    image = np.asarray(image)
    hole = np.asarray(hole, bool)
    _check_image_and_hole(image, hole)

    def solve(photo: np.ndarray, small_hole: np.ndarray) -> np.ndarray:
        return run_baseline(method, photo, small_hole.astype(np.float32), inpaint_radius=inpaint_radius)

    photo = image.astype(np.float32) / 255.0
    hole_pixels = int(np.count_nonzero(hole))
    scale = solve_scale(method, hole.size, hole_pixels)
    if scale == 1:
        filled = solve(photo, hole)
    else:
        LOG.info(
            "%s: the hole of %d pixels is more than the pixel budget allows a biharmonic solve at full "
            "resolution; solved at 1/%d resolution and enlarged",
            method, hole_pixels, scale,
        )  # fmt: skip
        filled = _solve_reduced(photo, hole, scale, solve)
    out = image.copy()
    out[hole] = np.round(np.clip(filled[hole], 0.0, 1.0) * 255.0).astype(np.uint8)
    return out


def _solve_reduced(photo: np.ndarray, hole: np.ndarray, scale: int, solve: Callable) -> np.ndarray:
    """``solve(small photo, small hole)`` on the photo shrunk ``scale`` times (each cell the average
    of its known pixels, a hole only where it has none), enlarged back to (H, W, 3) bicubically."""
    height, width = hole.shape
    size = (max(1, round(width / scale)), max(1, round(height / scale)))  # cv2 wants (W, H)
    known = (~hole).astype(np.float32)
    weight = cv2.resize(known, size, interpolation=cv2.INTER_AREA)
    summed = cv2.resize(photo * known[..., None], size, interpolation=cv2.INTER_AREA).reshape(size[1], size[0], 3)
    small_hole = weight.reshape(size[1], size[0]) <= 0.0
    small = summed / np.maximum(weight, 1e-12).reshape(size[1], size[0], 1)
    if small_hole.any():
        small = solve(np.where(small_hole[..., None], 0.0, small).astype(np.float32), small_hole)
    return cv2.resize(small.astype(np.float32), (width, height), interpolation=cv2.INTER_CUBIC).reshape(height, width, 3)


def _check_image_and_hole(image: np.ndarray, hole: np.ndarray) -> None:
    """``load_pair`` (the file boundary) made them: uint8 (H, W, 3) and a (H, W) hole."""
    assert image.dtype == np.uint8 and image.ndim == 3 and image.shape[2] == 3, (image.dtype, image.shape)
    assert hole.shape == image.shape[:2], (hole.shape, image.shape)


@dataclasses.dataclass
class Filler:
    """Fills images with one of ``METHODS``; ``generator`` is needed for ``model`` only."""

    generator: Generator | None = None
    inpaint_radius: int = 3

    def methods(self) -> list[str]:
        return [m for m in METHODS if m != "model" or self.generator is not None]

    def fill(self, image: np.ndarray, hole: np.ndarray, method: str) -> np.ndarray:
        # The CLI's choices and the server's request check keep ``method`` within methods().
        assert method in self.methods(), (method, self.methods())
        if method == "model":
            return fill_with_generator(image, hole, self.generator)
        return fill_with_baseline(image, hole, BASELINE_NAMES[method], self.inpaint_radius)


# --------------------------------------------------------------------------------------------
# Files and folders (their checks: app/files.py)
# --------------------------------------------------------------------------------------------


def fill_file(
    photo: str | Path, mask: str | Path | None, out: str | Path, filler: Filler, method: str, max_pixels: int | None = None
) -> None:
    """Fills one photo and writes the PNG atomically (nothing is written on any error); see ``load_pair``."""
    out = check_output_file(out)
    refuse_overwriting_inputs(out, [Path(photo), Path(mask) if mask is not None else None])
    image, hole = load_pair(photo, mask, max_pixels)
    remove_stale_temp_files([out])
    filled = filler.fill(image, hole, method)
    with naming(out):
        save_png_atomic(out, filled)


def fill_folder(plan: Iterable[tuple[Path, Path | None, Path]], filler: Filler, method: str, progress: bool = True) -> list[Path]:
    """Fills every planned pair (see ``plan_folder``) with a tqdm progress bar; returns the outputs.

    The outputs appear together at the end (``images.PngBatch``): on any error, none of them is
    written and the output folders this call made are removed again.
    """
    from tqdm import tqdm  # noqa: PLC0415 - TensorFlow and scikit-image load on use (fill with a classical method needs neither)

    plan = list(plan)
    created: list[Path] = []
    remove_stale_temp_files(out for _, _, out in plan)
    try:
        for folder in sorted({out.parent for _, _, out in plan}):
            created += make_dirs(folder)
        with PngBatch() as batch:
            for photo, mask, out in tqdm(plan, desc="filling", unit="photo", disable=not progress):
                image, hole = load_pair(photo, mask)
                filled = filler.fill(image, hole, method)
                with naming(out):
                    batch.add(out, filled)
            with naming(plan[0][2].parent if plan else Path(".")):
                return batch.commit()
    except BaseException:
        remove_empty(created)
        raise
