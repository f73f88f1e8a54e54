"""Filling a user's own photo of any size with a trained generator or a classical method.

Each hole region is filled in a square context window at the model's resolution (shrunk by
averaging known pixels only, the generator's input made by ``holes.generator_input`` as the model
card says, enlarged back), and only hole pixels are pasted: known pixels stay bit-exact. The
window rules are in the README ("How a photo of any size is filled"). Errors about a file start
with its path (``FillError`` or ``images.ImageError``).
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import math
import os
import zipfile
from pathlib import Path
from typing import Callable, Iterable, Iterator

import cv2
import numpy as np
from scipy import ndimage, sparse

from image_completion.app.web.guard import BYTES_PER_PIXEL
from image_completion.config import load_params
from image_completion.core.cards import CARD_FILE, GENERATOR_FILE, CardError, read_card
from image_completion.core.holes import InputSpec, generator_input
from image_completion.errors import ConfigError, InputError
from image_completion.images import ImageError, PngBatch, load_image_and_alpha, opened, remove_stale_temp_files, save_png_atomic

# Methods a user can pick; the command line's short ``ns`` and ``fsr`` are baselines.py's ``navier_stokes``
# and ``fsr_fast``; ``blend`` is ``baselines.BLEND_WEIGHTS`` (chosen on the validation photos).
METHODS = ("model", "telea", "ns", "biharmonic", "fsr", "blend")
BASELINE_NAMES = {"telea": "telea", "ns": "navier_stokes", "biharmonic": "biharmonic", "fsr": "fsr_fast", "blend": "blend"}
PARAMS_FILE = Path("params.yaml")  # the repository's params: train.default_recipe names the default model
# Mask files: luminance >= 128 is a hole (JPEG masks are not exactly 0/255); photo alpha: < 128 is a hole.
MASK_THRESHOLD = 128
PREDICT_BATCH = 16  # windows per generator call
# The biharmonic solve (scikit-image: one sparse system per hole region) takes 2.6 to 4 KB per hole
# pixel, more for larger regions (README, "Memory of a fill": python -m image_completion.bench.fill_memory).
SOLVED_METHODS = ("biharmonic", "blend")
SOLVE_BYTES_PER_HOLE_PIXEL = 4096
SOLVE_SLACK = 32 * 2**20  # bytes: holes up to 8192 pixels are always solved at full resolution
SOLVE_MAX_HOLE_PIXELS = 250_000  # 3.3 KB per hole pixel and 7 s on a 2-core AMD EPYC
LOG = logging.getLogger(__name__)


class FillError(InputError, ValueError):
    """A bad input for filling (mask, model, folder...); the message starts with the file's path."""


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
    if shape is None or len(shape) != 4 or shape[-1] not in (3, 4):
        raise FillError(f"{model_path}: expected a generator with one (B, S, S, 3 or 4) input, got {model.input_shape}")
    if shape[1] is not None and shape[1] != shape[2]:
        raise FillError(f"{model_path}: expected a square input, got {shape}")
    size, spec = resolve_model_settings(model_path, shape, hole_value)

    def predict(batch: np.ndarray) -> np.ndarray:
        out = model(np.asarray(batch, np.float32), training=False)
        return np.asarray(keras.ops.convert_to_numpy(out), np.float32)

    return Generator(predict=predict, image_size=size, spec=spec, path=model_path)


# --------------------------------------------------------------------------------------------
# Photos and masks
# --------------------------------------------------------------------------------------------


def mask_from_file(path: str | Path) -> np.ndarray:
    """Reads a mask image as bool (H, W), True = hole (white).

    Luminance >= 128 is a hole, so JPEG masks (never exactly 0/255) work. A transparent pixel of
    a mask with alpha counts as black (composited on black): it is not a hole.
    """
    rgb, alpha = load_image_and_alpha(path)
    # ITU-R 601 luma, the same weights as Pillow's convert("L"); (H, W) float
    luma = rgb[..., 0] * 0.299 + rgb[..., 1] * 0.587 + rgb[..., 2] * 0.114
    if alpha is not None:
        luma = luma * (alpha / 255.0)
    return luma >= MASK_THRESHOLD - 0.5


def check_hole(hole: np.ndarray, mask_name: str, from_alpha: bool = False) -> None:
    """Refuses an empty mask and a mask with no known pixel (nothing to fill / nothing to go on)."""
    if not hole.any():
        if from_alpha:
            raise FillError(
                f"{mask_name}: no transparent pixel, so no hole; make the area to fill transparent "
                f"or give a MASK file (white = hole)"
            )
        raise FillError(f"{mask_name}: the mask has no hole (no white pixel); paint the area to fill in white")
    if hole.all():
        raise FillError(f"{mask_name}: the mask covers the whole photo; at least some pixels must stay known")


def check_pixels(path: str | Path, max_pixels: int | None) -> None:
    """Refuses an image that declares more than ``max_pixels`` pixels (the pixel budget; read from
    its header, before anything is decoded)."""
    if max_pixels is None:
        return
    try:
        with opened(path) as im:
            width, height = im.size
    except ImageError:
        return  # missing or not an image: load_image_and_alpha says which, in its words
    if width * height > max_pixels:
        raise FillError(f"{path}: {width}x{height} is {width * height} pixels; the limit is {max_pixels} pixels (--max-pixels)")


def load_pair(photo: str | Path, mask: str | Path | None, max_pixels: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Reads and checks a photo and its mask: (uint8 (H, W, 3), bool (H, W) hole).

    Without ``mask`` the photo's alpha channel is the mask (alpha < 128 = hole). Either declaring
    more than ``max_pixels`` (None: no limit) is refused before it is decoded.
    """
    for path in (photo, mask):
        if path is not None:
            check_pixels(path, max_pixels)
    image, alpha = load_image_and_alpha(photo)
    if mask is None:
        if alpha is None:
            raise FillError(f"{photo}: the photo has no alpha channel; give a MASK file (white = hole)")
        hole = alpha < MASK_THRESHOLD
        check_hole(hole, f"{photo} (alpha channel)", from_alpha=True)
        return image, hole
    hole = mask_from_file(mask)
    if hole.shape != image.shape[:2]:
        raise FillError(
            f"{mask}: mask size {hole.shape[1]}x{hole.shape[0]} differs from the photo's "
            f"{image.shape[1]}x{image.shape[0]} ({photo}); the mask must have the photo's width x height"
        )
    check_hole(hole, str(mask))
    return image, hole


# --------------------------------------------------------------------------------------------
# Hole regions and context windows (pure)
# --------------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Window:
    """A square context window in photo coordinates (may extend beyond the photo: mirror padded)."""

    top: int
    left: int
    side: int
    label: int  # the region whose hole pixels this window fills
    slices: tuple[slice, slice]  # bounding box of that region's hole pixels


def _place(center: float, side: int, length: int) -> int:
    """Start of a window of ``side`` on an axis of ``length``: inside when it fits, else centred."""
    if length >= side:
        return int(min(max(round(center - side / 2), 0), length - side))
    return -((side - length) // 2)


def hole_windows(hole: np.ndarray, image_size: int, context: float = 2.0) -> tuple[np.ndarray, list[Window]]:
    """Groups the hole into regions and gives each a context window (see module docstring).

    Returns (labels int32 (H, W): region number of every hole pixel, 0 elsewhere; windows).
    """
    hole = np.asarray(hole, bool)
    height, width = hole.shape
    merge = max(1, image_size // 8)
    kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * merge + 1, 2 * merge + 1))
    grouped = cv2.dilate(hole.astype(np.uint8), kernel)
    _, labels = cv2.connectedComponents(grouped, connectivity=8)
    labels = np.where(hole, labels, 0).astype(np.int32)
    windows = []
    for index, box in enumerate(ndimage.find_objects(labels), start=1):
        if box is None:  # a dilated group always holds hole pixels, but be safe
            continue
        box_h = box[0].stop - box[0].start
        box_w = box[1].stop - box[1].start
        side = max(image_size, math.ceil(context * max(box_h, box_w)))
        side = min(side, max(image_size, height, width))
        top = _place((box[0].start + box[0].stop) / 2, side, height)
        left = _place((box[1].start + box[1].stop) / 2, side, width)
        windows.append(Window(top=top, left=left, side=side, label=index, slices=box))
    return labels, windows


def extract_window(array: np.ndarray, top: int, left: int, side: int) -> np.ndarray:
    """``array[top:top+side, left:left+side]``, mirror padded where the window leaves the array."""
    height, width = array.shape[:2]
    t0, l0 = max(top, 0), max(left, 0)
    t1, l1 = min(top + side, height), min(left + side, width)
    crop = array[t0:t1, l0:l1]
    pad = [(t0 - top, top + side - t1), (l0 - left, left + side - l1)] + [(0, 0)] * (array.ndim - 2)
    if any(before or after for before, after in pad):
        crop = np.pad(crop, pad, mode="reflect")  # numpy reflects repeatedly for pads > size
    return crop


def _mirror_index(start: int, side: int, length: int) -> np.ndarray:
    """Index into an axis of ``length`` of each position of ``[start, start + side)``, mirrored
    outside the axis exactly as ``extract_window`` pads."""
    t0, t1 = max(start, 0), min(start + side, length)
    return np.pad(np.arange(t0, t1), (t0 - start, start + side - t1), mode="reflect")


def _shrink_map(start: int, side: int, length: int, size: int) -> tuple[sparse.csr_matrix, int]:
    """(map (size, n), first index): averages the mirrored window ``[start, start + side)`` of an axis
    into ``size`` cells like ``cv2.INTER_AREA``, as a sparse matrix over the axis' indices
    ``first .. first + n - 1``; it never holds the window itself (whose side may far exceed the photo)."""
    index = _mirror_index(start, side, length)
    first = int(index.min())
    scale = side / size
    position = np.arange(side, dtype=np.float64)
    cell = np.minimum(np.floor(position / scale).astype(np.int64), size - 1)
    in_first = np.minimum(position + 1.0, (cell + 1) * scale) - position  # overlap with ``cell``
    rows = np.concatenate([cell, np.minimum(cell + 1, size - 1)])
    weights = np.concatenate([in_first, 1.0 - in_first]) / scale
    columns = np.concatenate([index, index]) - first
    shape = (size, int(index.max()) - first + 1)
    # float32 like the photo: a float64 map would make scipy copy the photo's crop to float64
    return sparse.csr_matrix((weights.astype(np.float32), (rows, columns)), shape=shape), first


def _enlarge_map(size: int, side: int, start: int, stop: int) -> sparse.csr_matrix:
    """(stop - start, size) sparse matrix: rows ``start .. stop - 1`` of ``size`` cells enlarged to
    ``side`` like ``cv2.INTER_CUBIC`` (A = -0.75, edges replicated), without the other rows; in
    float64, so a constant comes back exactly (as float32)."""
    a = -0.75
    x = (np.arange(start, stop, dtype=np.float64) + 0.5) * (size / side) - 0.5
    base = np.floor(x)
    t = x - base
    w0 = ((a * (t + 1) - 5 * a) * (t + 1) + 8 * a) * (t + 1) - 4 * a
    w1 = ((a + 2) * t - (a + 3)) * t * t + 1
    w2 = ((a + 2) * (1 - t) - (a + 3)) * (1 - t) * (1 - t) + 1
    weights = np.stack([w0, w1, w2, 1.0 - w0 - w1 - w2], axis=1)
    columns = np.clip(base[:, None].astype(np.int64) + np.arange(-1, 3), 0, size - 1)
    rows = np.repeat(np.arange(stop - start), 4)
    return sparse.csr_matrix((weights.ravel(), (rows, columns.ravel())), shape=(stop - start, size))


def _apply(row_map: sparse.csr_matrix, array: np.ndarray, column_map: sparse.csr_matrix) -> np.ndarray:
    """``row_map @ array @ column_map.T`` for (H, W) or (H, W, C) ``array``, in the maps' precision,
    returned as float32; the axis whose map leaves the smaller intermediate goes first (a 1 x N
    strip: the columns)."""
    height, width = array.shape[:2]
    if height * column_map.shape[0] < row_map.shape[0] * width:
        return _apply(column_map, array.swapaxes(0, 1), row_map).swapaxes(0, 1)
    rows = row_map @ array.reshape(height, -1)  # (R, W * C)
    rows = np.asarray(rows).reshape(rows.shape[0], width, -1).transpose(1, 0, 2)  # (W, R, C)
    both = column_map @ rows.reshape(width, -1)  # (K, R * C)
    both = np.asarray(both).reshape(column_map.shape[0], rows.shape[1], -1).transpose(1, 0, 2)  # (R, K, C)
    return both.reshape(both.shape[:2] + array.shape[2:]).astype(np.float32)


def _window_input(
    image: np.ndarray, hole: np.ndarray, window: Window, size: int, spec: InputSpec
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(generator input (S, S, C), known low-res pixels (S, S, 3), low-res hole bool (S, S))."""
    if window.side == size:
        crop = extract_window(image, window.top, window.left, size)  # (S, S, 3) float32
        small_hole = extract_window(hole, window.top, window.left, size)  # (S, S) bool
        small_known = crop * (~small_hole)[..., None]
    else:
        # Normalised convolution: average only the known pixels of each (side/S)^2 block, by linear
        # maps over the photo's own pixels (memory follows the photo, not the window's side).
        row_map, top = _shrink_map(window.top, window.side, hole.shape[0], size)
        column_map, left = _shrink_map(window.left, window.side, hole.shape[1], size)
        rows, columns = slice(top, top + row_map.shape[1]), slice(left, left + column_map.shape[1])
        known = (~hole[rows, columns]).astype(np.float32)
        weight = _apply(row_map, known, column_map)  # (S, S)
        summed = _apply(row_map, image[rows, columns] * known[..., None], column_map)
        small_hole = weight < 0.999  # any hole pixel in the block -> the generator redraws it
        small_known = np.where(small_hole[..., None], 0.0, summed / np.maximum(weight, 1e-6)[..., None])
    small_known = np.clip(small_known, 0.0, 1.0).astype(np.float32)
    model_input = generator_input(small_known, small_hole.astype(np.float32), spec)
    return model_input, small_known, small_hole


def fill_with_generator(image: np.ndarray, hole: np.ndarray, generator: Generator, batch_size: int = PREDICT_BATCH) -> np.ndarray:
    """Fills uint8 (H, W, 3) where ``hole`` (H, W) is True; returns uint8 (H, W, 3), known pixels bit-exact."""
    image = np.asarray(image)
    hole = np.asarray(hole, bool)
    _check_image_and_hole(image, hole)
    size = generator.image_size
    photo = image.astype(np.float32) / 255.0
    labels, windows = hole_windows(hole, size)
    out = image.copy()
    for start in range(0, len(windows), batch_size):
        chunk = windows[start : start + batch_size]
        prepared = [_window_input(photo, hole, w, size, generator.spec) for w in chunk]
        batch = np.stack([p[0] for p in prepared])  # (N, S, S, C)
        predicted = generator.predict(batch)
        if predicted.shape != (*batch.shape[:3], 3):
            raise FillError(f"{generator.path}: generator output shape {predicted.shape} != input {batch.shape}")
        for window, (_, small_known, small_hole), pred in zip(chunk, prepared, predicted):
            composite = np.where(small_hole[..., None], np.clip(pred, 0.0, 1.0), small_known)  # (S, S, 3)
            _paste(out, labels, window, _enlarged_box(composite, window))
    return out


def _enlarged_box(composite: np.ndarray, window: Window) -> np.ndarray:
    """The region's bounding box of ``composite`` (S, S, 3) enlarged to the window's side (bicubic),
    in [0, 1]; only the box is computed, never the whole window."""
    rows, cols = window.slices
    size = composite.shape[0]
    if window.side == size:
        box = composite[rows.start - window.top : rows.stop - window.top, cols.start - window.left : cols.stop - window.left]
    else:
        row_map = _enlarge_map(size, window.side, rows.start - window.top, rows.stop - window.top)
        column_map = _enlarge_map(size, window.side, cols.start - window.left, cols.stop - window.left)
        box = _apply(row_map, composite, column_map)
    return np.clip(box, 0.0, 1.0)


def _paste(out: np.ndarray, labels: np.ndarray, window: Window, box: np.ndarray) -> None:
    """Writes ``box`` (the region's bounding box, in [0, 1]) into ``out`` at the region's hole pixels."""
    rows, cols = window.slices
    region = labels[rows, cols] == window.label
    target = out[rows, cols]
    target[region] = np.round(box[region] * 255.0).astype(np.uint8)


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
    """Fills uint8 (H, W, 3) with a classical method of ``baselines.py``; known pixels bit-exact.
    A hole too large for a biharmonic solve within the pixel budget is solved at a reduced
    resolution (``solve_scale``) and enlarged; a note on the log says so."""
    from image_completion.core.baselines import run_baseline  # noqa: PLC0415 - TensorFlow and scikit-image load on use (fill with a classical method needs neither)

    image = np.asarray(image)
    hole = np.asarray(hole, bool)
    _check_image_and_hole(image, hole)

    def solve(photo: np.ndarray, small_hole: np.ndarray) -> np.ndarray:
        return run_baseline(BASELINE_NAMES[method], photo, small_hole.astype(np.float32), inpaint_radius=inpaint_radius)

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
        return fill_with_baseline(image, hole, method, self.inpaint_radius)


# --------------------------------------------------------------------------------------------
# Files and folders
# --------------------------------------------------------------------------------------------


# images._write_temp first writes ".<name>.<pid>-<8 characters>.tmp" beside the output (PngBatch
# adds ".bak" for a backup): 19 bytes and a pid of up to 7 digits more than the name, within 255.
NAME_MAX = 255
LONGEST_OUTPUT_NAME = NAME_MAX - len("..-12345678.tmp.bak") - 7


def _check_output_slot(out: Path) -> None:
    """Refuses an output path taken by a folder or anything else that is not a regular file, and a
    name too long for the temp file written beside it first."""
    length = len(os.fsencode(out.name))
    if length > LONGEST_OUTPUT_NAME:
        raise FillError(
            f"{out}: the file name is {length} bytes long, at most {LONGEST_OUTPUT_NAME} are allowed "
            "(a hidden temp file named after it is written first); choose a shorter name"
        )
    if out.is_dir():
        raise FillError(f"{out}: is a directory; remove it or choose another output name")
    if os.path.lexists(out) and not out.is_file():
        raise FillError(f"{out}: exists and is not a regular file; remove it or choose another output name")


def _check_writable(folder: Path, out: Path) -> None:
    if not os.access(folder, os.W_OK | os.X_OK):
        raise FillError(f"{out}: no permission to write in {folder}")


def check_output_file(out: str | Path) -> Path:
    out = Path(out)
    if out.suffix.lower() != ".png":
        raise FillError(f"{out}: the output is written as PNG; give a file name ending in .png")
    _check_output_slot(out)
    if not out.parent.is_dir():
        raise FillError(f"{out}: the output's folder {out.parent} does not exist")
    _check_writable(out.parent, out)
    return out


def check_output_folder(out_dir: str | Path) -> Path:
    """Checks that ``out_dir`` is a folder, or can be made as one, that this process may write in."""
    out_dir = Path(out_dir)
    if os.path.lexists(out_dir) and not out_dir.is_dir():
        raise FillError(f"{out_dir}: with a folder of photos the output must be a folder, and this is a file")
    existing = out_dir
    while not existing.exists():
        existing = existing.parent
    if not existing.is_dir():
        raise FillError(f"{out_dir}: cannot make the output folder: {existing} is a file")
    _check_writable(existing, out_dir)
    return out_dir


def _same_file(a: Path, b: Path) -> bool:
    """True when ``a`` and ``b`` are one file (device and inode): by a link, a bind mount or a
    case-insensitive file system too. A path that does not exist (yet) is no other file."""
    try:
        return os.path.samefile(a, b)
    except OSError:
        return False


def _refuse_overwriting_inputs(out: Path, inputs: Iterable[Path | None]) -> None:
    """An output that is one of the inputs would destroy the user's photo or mask: refuse."""
    for path in inputs:
        if path is not None and _same_file(out, path):
            raise FillError(f"{out}: the output would overwrite an input file ({path}); choose another output name")


@contextlib.contextmanager
def _naming(out: Path) -> Iterator[None]:
    """An ``OSError`` in writing names the output (a full disk names no file, a failed rename the
    hidden temp file), so the one-line error says which output could not be written."""
    try:
        yield
    except OSError as err:
        target = err.filename2 or out
        raise OSError(err.errno, err.strerror or str(err), str(target)) from err


def fill_file(
    photo: str | Path, mask: str | Path | None, out: str | Path, filler: Filler, method: str, max_pixels: int | None = None
) -> None:
    """Fills one photo and writes the PNG atomically (nothing is written on any error); see ``load_pair``."""
    out = check_output_file(out)
    _refuse_overwriting_inputs(out, [Path(photo), Path(mask) if mask is not None else None])
    image, hole = load_pair(photo, mask, max_pixels)
    remove_stale_temp_files([out])
    filled = filler.fill(image, hole, method)
    with _naming(out):
        save_png_atomic(out, filled)


def _image_files(directory: Path) -> dict[str, Path]:
    """stem -> file for the files of ``directory``; two files with one stem is an error.

    Names starting with "." (.DS_Store, editor swap files) and sub-folders are skipped.
    """
    files: dict[str, Path] = {}
    for path in sorted(directory.iterdir()):
        if path.name.startswith(".") or path.is_dir():
            continue
        if path.stem in files:
            raise FillError(f"{path}: two files share the stem {path.stem!r} ({files[path.stem].name}); rename one")
        files[path.stem] = path
    return files


def _raise_problems(problems: list[str]) -> None:
    """Raises ``FillError`` for the first problem, saying how many more there are."""
    if problems:
        extra = len(problems) - 1
        more = f" (and {extra} more bad file{'s' * (extra > 1)}; nothing was written)" if extra else ""
        raise FillError(problems[0] + more)


def _folder_masks(photos: dict[str, Path], photo_dir: Path, mask_dir: str | Path | None) -> dict[str, Path]:
    """stem -> mask file of ``mask_dir`` ({} without one); a mask without a photo is an error."""
    if mask_dir is None:
        return {}
    mask_dir = Path(mask_dir)
    if not mask_dir.is_dir():
        raise FillError(f"{mask_dir}: with a folder of photos, MASK must be a folder of masks too")
    masks = _image_files(mask_dir)
    unmatched = sorted(set(masks) - set(photos))
    if unmatched:
        raise FillError(f"{masks[unmatched[0]]}: no photo with the stem {unmatched[0]!r} in {photo_dir}")
    return masks


def _output_problems(outputs: dict[str, Path], inputs: list[Path]) -> list[str]:
    problems = []
    for out in outputs.values():
        try:
            _check_output_slot(out)
            _refuse_overwriting_inputs(out, inputs)
        except FillError as err:
            problems.append(str(err))
    return problems


def plan_folder(
    photo_dir: str | Path, mask_dir: str | Path | None, out_dir: str | Path, max_pixels: int | None = None
) -> list[tuple[Path, Path | None, Path]]:
    """Pairs photos and masks by file stem and checks every output and every pair before any work.

    Returns [(photo, mask or None for the photo's alpha, output PNG)]. Every output path must be
    free for a PNG (checked first, before any photo is read). Every non-hidden file of the folders
    must be an image; every photo needs a mask of the same stem (when ``mask_dir`` is given) and
    every mask a photo. Raises ``FillError``/``ImageError`` for the first bad file, saying how
    many more were bad.
    """
    photo_dir, out_dir = Path(photo_dir), check_output_folder(out_dir)
    photos = _image_files(photo_dir)
    if not photos:
        raise FillError(f"{photo_dir}: the folder holds no photos")
    masks = _folder_masks(photos, photo_dir, mask_dir)
    outputs = {stem: out_dir / f"{stem}.png" for stem in photos}
    _raise_problems(_output_problems(outputs, [*photos.values(), *masks.values()]))
    plan, problems = [], []
    for stem, photo in photos.items():
        mask = masks.get(stem)
        if mask_dir is not None and mask is None:
            problems.append(f"{photo}: no mask with the stem {stem!r} in {mask_dir}")
            continue
        try:
            load_pair(photo, mask, max_pixels)
        except (FillError, ImageError) as err:
            problems.append(str(err))
            continue
        plan.append((photo, mask, outputs[stem]))
    _raise_problems(problems)
    return plan


def _make_dirs(folder: Path) -> list[Path]:
    """Creates ``folder`` and its missing parents; returns the folders it created, deepest first."""
    missing = []
    while not folder.exists():
        missing.append(folder)
        folder = folder.parent
    for made, path in enumerate(reversed(missing)):
        try:
            path.mkdir()
        except BaseException:
            _remove_empty(missing[len(missing) - made :])
            raise
    return missing


def _remove_empty(folders: list[Path]) -> None:
    for folder in folders:
        with contextlib.suppress(OSError):
            folder.rmdir()  # only empty ones: never anything of the user's


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
            created += _make_dirs(folder)
        with PngBatch() as batch:
            for photo, mask, out in tqdm(plan, desc="filling", unit="photo", disable=not progress):
                image, hole = load_pair(photo, mask)
                filled = filler.fill(image, hole, method)
                with _naming(out):
                    batch.add(out, filled)
            with _naming(plan[0][2].parent if plan else Path(".")):
                return batch.commit()
    except BaseException:
        _remove_empty(created)
        raise
