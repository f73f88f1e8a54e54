"""Hole regions and their context windows, in photo coordinates (pure numpy/scipy/OpenCV).

How a photo of any size meets a generator of input side S: the hole is grouped into regions
(``hole_windows``), each region gets a square window about twice its extent (mirror padded where it
leaves the photo), a window larger than S is shrunk to S x S by averaging the known pixels only
(``window_input``), and the generator's S x S result is enlarged back over the region's bounding
box only (``enlarged_box``) and pasted into its hole pixels (``paste``). Shrinking and enlarging are
sparse linear maps over the photo's own pixels, equal to OpenCV's INTER_AREA and INTER_CUBIC on the
mirrored window, so memory follows the photo's pixels, never the window's side (README, "How a
photo of any size is filled").
"""

from __future__ import annotations

import dataclasses
import math

import cv2
import numpy as np
from scipy import ndimage, sparse

from image_completion.core.holes import InputSpec, generator_input


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


def shrink_map(start: int, side: int, length: int, size: int) -> tuple[sparse.csr_matrix, int]:
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


def enlarge_map(size: int, side: int, start: int, stop: int) -> sparse.csr_matrix:
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


def apply_maps(row_map: sparse.csr_matrix, array: np.ndarray, column_map: sparse.csr_matrix) -> np.ndarray:
    """``row_map @ array @ column_map.T`` for (H, W) or (H, W, C) ``array``, in the maps' precision,
    returned as float32; the axis whose map leaves the smaller intermediate goes first (a 1 x N
    strip: the columns)."""
    height, width = array.shape[:2]
    if height * column_map.shape[0] < row_map.shape[0] * width:
        return apply_maps(column_map, array.swapaxes(0, 1), row_map).swapaxes(0, 1)
    rows = row_map @ array.reshape(height, -1)  # (R, W * C)
    rows = np.asarray(rows).reshape(rows.shape[0], width, -1).transpose(1, 0, 2)  # (W, R, C)
    both = column_map @ rows.reshape(width, -1)  # (K, R * C)
    both = np.asarray(both).reshape(column_map.shape[0], rows.shape[1], -1).transpose(1, 0, 2)  # (R, K, C)
    return both.reshape(both.shape[:2] + array.shape[2:]).astype(np.float32)


def window_input(
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
        row_map, top = shrink_map(window.top, window.side, hole.shape[0], size)
        column_map, left = shrink_map(window.left, window.side, hole.shape[1], size)
        rows, columns = slice(top, top + row_map.shape[1]), slice(left, left + column_map.shape[1])
        known = (~hole[rows, columns]).astype(np.float32)
        weight = apply_maps(row_map, known, column_map)  # (S, S)
        summed = apply_maps(row_map, image[rows, columns] * known[..., None], column_map)
        small_hole = weight < 0.999  # any hole pixel in the block -> the generator redraws it
        small_known = np.where(small_hole[..., None], 0.0, summed / np.maximum(weight, 1e-6)[..., None])
    small_known = np.clip(small_known, 0.0, 1.0).astype(np.float32)
    model_input = generator_input(small_known, small_hole.astype(np.float32), spec)
    return model_input, small_known, small_hole


def enlarged_box(composite: np.ndarray, window: Window) -> np.ndarray:
    """The region's bounding box of ``composite`` (S, S, 3) enlarged to the window's side (bicubic),
    in [0, 1]; only the box is computed, never the whole window."""
    rows, cols = window.slices
    size = composite.shape[0]
    if window.side == size:
        box = composite[rows.start - window.top : rows.stop - window.top, cols.start - window.left : cols.stop - window.left]
    else:
        row_map = enlarge_map(size, window.side, rows.start - window.top, rows.stop - window.top)
        column_map = enlarge_map(size, window.side, cols.start - window.left, cols.stop - window.left)
        box = apply_maps(row_map, composite, column_map)
    return np.clip(box, 0.0, 1.0)


def paste(out: np.ndarray, labels: np.ndarray, window: Window, box: np.ndarray) -> None:
    """Writes ``box`` (the region's bounding box, in [0, 1]) into ``out`` at the region's hole pixels."""
    rows, cols = window.slices
    region = labels[rows, cols] == window.label
    target = out[rows, cols]
    target[region] = np.round(box[region] * 255.0).astype(np.uint8)
