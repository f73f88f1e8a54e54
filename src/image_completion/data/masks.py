"""Hole masks: the training-mask generators and the fixed evaluation masks (stage ``masks``).

Every generator is pure numpy, seeded by the ``np.random.Generator`` it is given, and returns
float32 ``(size, size)``, 1 = hole. Shapes, buckets and files: ``docs/architecture.md``, "Masks".

The command line is ``image_completion.stages.masks``.
"""

from __future__ import annotations

import csv
import dataclasses
import io
import math
from pathlib import Path

import cv2
import numpy as np
from PIL import Image

from image_completion.config import ALL_BUCKETS, MASK_KINDS, EvalMaskShapes, MaskShapes
from image_completion.errors import InputError, open_regular
from image_completion.images import atomic_dir, opened

CSV_COLUMNS = ("file", "hole_ratio", "bucket")
CSV_NAME = "masks.csv"

# DeepFill v2's stroke turning angles: a mean of 2*pi/5 with a spread of up to 2*pi/15.
_MEAN_ANGLE = 2.0 * math.pi / 5.0
_ANGLE_RANGE = 2.0 * math.pi / 15.0

# Bounds of the evaluation-mask search (per mask): shape proposals per attempt, fresh attempts.
_MAX_PROPOSALS = 2000
_MAX_ATTEMPTS = 20


class MaskError(InputError, ValueError):
    """A mask set that cannot be made, read or written; the message names the file or bucket."""


# --------------------------------------------------------------------------- single shapes


def _draw_box(canvas: np.ndarray, rng: np.random.Generator, p: MaskShapes) -> None:
    """Sets one random axis-aligned rectangle of ``canvas`` (uint8 (S, S)) to 1, in place."""
    size = canvas.shape[0]
    # Height and width independently in [box_min, box_max] of the side, at least one pixel.
    h = max(1, min(size, int(round(rng.uniform(p.box_min, p.box_max) * size))))
    w = max(1, min(size, int(round(rng.uniform(p.box_min, p.box_max) * size))))
    top = int(rng.integers(0, size - h + 1))
    left = int(rng.integers(0, size - w + 1))
    canvas[top : top + h, left : left + w] = 1


def _draw_stroke(canvas: np.ndarray, rng: np.random.Generator, p: MaskShapes) -> None:
    """Draws one DeepFill-v2-style brush stroke onto ``canvas`` (uint8 (S, S)), in place."""
    size = canvas.shape[0]
    n_vertices = int(rng.integers(2, p.stroke_vertices_max + 1))
    width = max(1, int(round(rng.uniform(p.stroke_width_min, p.stroke_width_max) * size)))
    max_length = p.stroke_length_max * size
    angle_min = _MEAN_ANGLE - rng.uniform(0.0, _ANGLE_RANGE)
    angle_max = _MEAN_ANGLE + rng.uniform(0.0, _ANGLE_RANGE)
    # A global rotation on top of DeepFill's zig-zag so strokes take every direction.
    rotation = rng.uniform(0.0, 2.0 * math.pi)
    x, y = rng.uniform(0, size), rng.uniform(0, size)
    points = [(x, y)]
    for i in range(n_vertices - 1):
        angle = rng.uniform(angle_min, angle_max)
        if i % 2 == 0:
            angle = 2.0 * math.pi - angle  # alternate turns: the brush zig-zags
        # Segment length ~ N(L/2, L/4) clipped to [1 px, L] (DeepFill: clipped normal radius).
        length = float(np.clip(rng.normal(max_length / 2, max_length / 4), 1.0, max(1.0, max_length)))
        x = float(np.clip(x + length * math.cos(angle + rotation), 0, size - 1))
        y = float(np.clip(y + length * math.sin(angle + rotation), 0, size - 1))
        points.append((x, y))
    pts = [(int(round(px)), int(round(py))) for px, py in points]
    for a, b in zip(pts, pts[1:]):
        cv2.line(canvas, a, b, color=1, thickness=width, lineType=cv2.LINE_8)
    for c in pts:  # round joints and caps
        cv2.circle(canvas, c, radius=width // 2, color=1, thickness=-1, lineType=cv2.LINE_8)


def _check_size(size: int) -> None:
    assert size >= 1, size


def make_box_mask(rng: np.random.Generator, size: int, p: MaskShapes) -> np.ndarray:
    """The paper's rectangular cut-out: float32 (size, size), 1 = hole."""
    _check_size(size)
    canvas = np.zeros((size, size), np.uint8)
    _draw_box(canvas, rng, p)
    return canvas.astype(np.float32)


def make_stroke_mask(rng: np.random.Generator, size: int, p: MaskShapes) -> np.ndarray:
    """Free-form brush strokes (1..strokes_max, DeepFill v2 style): float32 (size, size), 1 = hole."""
    _check_size(size)
    canvas = np.zeros((size, size), np.uint8)
    for _ in range(int(rng.integers(1, p.strokes_max + 1))):
        _draw_stroke(canvas, rng, p)
    # Random flips as in DeepFill v2 (the zig-zag otherwise favours one orientation).
    if rng.random() < 0.5:
        canvas = canvas[:, ::-1]
    if rng.random() < 0.5:
        canvas = canvas[::-1, :]
    return np.ascontiguousarray(canvas, dtype=np.float32)


def make_mask(kind: str, rng: np.random.Generator, size: int, p: MaskShapes) -> np.ndarray:
    """One training mask of ``kind`` (box | strokes | mixed): float32 (size, size), 1 = hole."""
    assert kind in MASK_KINDS, kind  # the params checked it
    if kind == "mixed":
        kind = "box" if rng.random() < p.mixed_box_probability else "strokes"
    return make_box_mask(rng, size, p) if kind == "box" else make_stroke_mask(rng, size, p)


# --------------------------------------------------------------------------- evaluation set


def bucket_label(lo: float, hi: float) -> str:
    """The label of the hole-ratio bucket [lo, hi), e.g. ``0.0-0.1``."""
    return f"{float(lo)}-{float(hi)}"


def _grow_mask(kind: str, rng: np.random.Generator, size: int, p: MaskShapes, lo: float, hi: float) -> np.ndarray | None:
    """Adds shapes of ``kind`` until the hole ratio reaches a target in [lo, hi); None if stuck."""
    n_pixels = size * size
    # The smallest ratio a mask can have is one pixel; a target of 0 would mean no hole at all.
    target = rng.uniform(max(lo, 1.0 / n_pixels), hi)
    canvas = np.zeros((size, size), np.uint8)
    holes = 0
    for _ in range(_MAX_PROPOSALS):
        if holes >= target * n_pixels:
            return canvas
        shape_kind = kind
        if kind == "mixed":
            shape_kind = "box" if rng.random() < p.mixed_box_probability else "strokes"
        proposal = canvas.copy()
        (_draw_box if shape_kind == "box" else _draw_stroke)(proposal, rng, p)
        proposed_holes = int(proposal.sum())
        if proposed_holes < hi * n_pixels:  # reject shapes that overshoot the bucket
            canvas, holes = proposal, proposed_holes
    return canvas if holes >= target * n_pixels else None


def make_eval_masks(p: EvalMaskShapes, size: int, seed: int) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """The fixed evaluation masks: ``per_bucket`` masks in each hole-ratio bucket.

    Shapes follow ``p.kind``. Mask k of bucket b depends only on (seed, b, k).
    Returns (masks float32 (N, size, size), hole ratios float64 (N,), bucket labels [N]).
    """
    _check_size(size)
    assert seed >= 0, seed  # the params checked it
    edges = p.buckets
    masks, ratios, labels = [], [], []
    for b, (lo, hi) in enumerate(zip(edges, edges[1:])):
        if hi * size * size <= 1:
            raise MaskError(
                f"bucket {bucket_label(lo, hi)} cannot be filled at size {size}: even one pixel is a hole ratio of "
                f"{1 / (size * size):.4g}"
            )
        for k in range(p.per_bucket):
            rng = np.random.default_rng([seed, b, k])
            for _ in range(_MAX_ATTEMPTS):
                mask = _grow_mask(p.kind, rng, size, p, lo, hi)
                if mask is not None:
                    break
            else:
                raise MaskError(
                    f"bucket {bucket_label(lo, hi)}: no {p.kind} mask reached a hole ratio in [{lo}, {hi}) "
                    f"after {_MAX_ATTEMPTS} attempts of {_MAX_PROPOSALS} shapes (size {size}); "
                    "the shape sizes in `masks` cannot reach this bucket"
                )
            masks.append(mask.astype(np.float32))
            ratios.append(float(mask.mean(dtype=np.float64)))
            labels.append(bucket_label(lo, hi))
    return np.stack(masks), np.asarray(ratios, np.float64), labels


# --------------------------------------------------------------------------- files


@dataclasses.dataclass(frozen=True)
class MaskRow:
    """One line of ``masks.csv``: ``file`` is relative to the masks directory."""

    file: str
    hole_ratio: float
    bucket: str


def _png_bytes(mask: np.ndarray) -> bytes:
    # 8-bit grayscale, 255 = hole. PIL writes no timestamp, so equal masks give equal bytes.
    buf = io.BytesIO()
    Image.fromarray((mask > 0.5).astype(np.uint8) * 255, mode="L").save(buf, format="PNG")
    return buf.getvalue()


def write_eval_masks(directory: str | Path, masks: np.ndarray, ratios, buckets) -> list[MaskRow]:
    """Writes the PNGs and ``masks.csv`` into a temporary sibling directory, then swaps it in.

    A failure leaves a previous ``directory`` untouched.
    """
    directory = Path(directory)
    assert len(masks) == len(ratios) == len(buckets), (len(masks), len(ratios), len(buckets))
    rows = []
    with atomic_dir(directory) as tmp:
        for i, (mask, ratio, bucket) in enumerate(zip(masks, ratios, buckets)):
            name = f"mask_{i:04d}.png"
            (tmp / name).write_bytes(_png_bytes(mask))
            rows.append(MaskRow(name, float(ratio), str(bucket)))
        with open(tmp / CSV_NAME, "w", newline="") as f:
            writer = csv.writer(f, lineterminator="\n")
            writer.writerow(CSV_COLUMNS)
            for row in rows:
                writer.writerow([row.file, repr(row.hole_ratio), row.bucket])
    return rows


def read_eval_masks(directory: str | Path) -> tuple[np.ndarray, list[MaskRow]]:
    """Reads a ``masks`` stage output: (masks float32 (N, H, W) in {0, 1}, rows of ``masks.csv``).

    Raises ``MaskError`` naming the file for a missing or malformed csv or PNG.
    """
    directory = Path(directory)
    csv_path = directory / CSV_NAME
    try:
        with io.TextIOWrapper(open_regular(csv_path, MaskError), encoding="utf-8", newline="") as f:
            reader = csv.reader(f)
            header = next(reader, None)
            lines = list(reader)
    except FileNotFoundError:
        raise MaskError(f"{csv_path}: mask list not found (run the `masks` stage)") from None
    except (OSError, UnicodeDecodeError, csv.Error) as err:
        raise MaskError(f"{csv_path}: cannot read: {err}") from None
    if header is None or tuple(header) != CSV_COLUMNS:
        raise MaskError(f"{csv_path}: header must be {','.join(CSV_COLUMNS)}, got {header}")
    if not lines:
        raise MaskError(f"{csv_path}: no masks listed")
    rows, masks = [], []
    for n, line in enumerate(lines, start=2):
        if len(line) != len(CSV_COLUMNS):
            raise MaskError(f"{csv_path}: line {n}: expected {len(CSV_COLUMNS)} fields, got {line}")
        name, ratio_text, bucket = line
        try:
            ratio = float(ratio_text)
        except ValueError:
            raise MaskError(f"{csv_path}: line {n}: hole_ratio {ratio_text!r} is not a number") from None
        if Path(name).name != name:
            raise MaskError(f"{csv_path}: line {n}: file {name!r} must be a plain file name inside {directory}")
        if bucket == ALL_BUCKETS:
            raise MaskError(f"{csv_path}: line {n}: bucket name {ALL_BUCKETS!r} is reserved for the overall scores")
        mask = _read_mask_png(directory / name)
        if masks and mask.shape != masks[0].shape:
            raise MaskError(f"{directory / name}: size {mask.shape} differs from the first mask's {masks[0].shape}")
        if abs(float(mask.mean(dtype=np.float64)) - ratio) > 1e-6:
            raise MaskError(f"{directory / name}: hole ratio {mask.mean():.6f} does not match {ratio:.6f} in {csv_path} line {n}")
        if mask.all() or not mask.any():  # the classical fills need a known pixel, the hole metrics a hole
            raise MaskError(f"{directory / name}: the mask needs a hole and a known pixel, its hole ratio is {ratio}")
        rows.append(MaskRow(name, ratio, bucket))
        masks.append(mask)
    return np.stack(masks), rows


def _read_mask_png(path: Path) -> np.ndarray:
    with opened(path, MaskError, "mask file") as im:
        if im.mode != "L":
            raise MaskError(f"{path}: mask must be an 8-bit grayscale PNG, got mode {im.mode}")
        array = np.asarray(im)
    if array.ndim != 2:
        raise MaskError(f"{path}: mask must be 2-D, got shape {array.shape}")
    if not np.isin(array, (0, 255)).all():
        raise MaskError(f"{path}: mask values must be 0 (known) or 255 (hole)")
    return (array == 255).astype(np.float32)


# --------------------------------------------------------------------------- stage
