"""Whole-photo scoring: every method filled through ``app.fill`` (what ``image-completion fill``
runs) on the test photos at a user's resolution, not on 64x64 crops.

A case is one test photo, centre-cropped to a square and resized to ``size`` px, with one
evaluation-style mask drawn at that size (``data.masks.make_eval_masks``: the same shapes and
hole-ratio buckets as the crops' masks, seeded). Photos are used in turn, so each bucket spreads
over the photos. Models fill through their hole windows (``fill_with_generator``: a large hole's
window is shrunk to the model's input and enlarged back); classical methods work at full size.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from image_completion.config import ALL_BUCKETS, Params
from image_completion.core.cards import GENERATOR_FILE
from image_completion.data.manifest import photo_paths
from image_completion.data.masks import make_eval_masks
from image_completion.evaluation import scoring
from image_completion.images import load_rgb

SCORED = ("l1_hole", "psnr_hole", "ssim", "ssim_hole")


@dataclass(frozen=True)
class Case:
    photo: str  # file name of the test photo
    image: np.ndarray  # uint8 (size, size, 3)
    hole: np.ndarray  # bool (size, size), True = hole
    bucket: str
    hole_ratio: float


def square(image: np.ndarray, size: int) -> np.ndarray:
    """The centre square of uint8 (H, W, 3), resized to (size, size, 3) (Lanczos)."""
    h, w = image.shape[:2]
    side = min(h, w)
    top, left = (h - side) // 2, (w - side) // 2
    crop = Image.fromarray(image[top : top + side, left : left + side])
    return np.asarray(crop.resize((size, size), Image.Resampling.LANCZOS))


def make_cases(params: Params, photos: Path, size: int) -> list[Case]:
    """The seeded cases at ``size``: ``fullsize.per_bucket`` masks per hole-ratio bucket."""
    shapes = dataclasses.replace(params.masks.eval, per_bucket=params.fullsize.per_bucket)
    masks, ratios, buckets = make_eval_masks(shapes, size, params.base.seed + size)
    paths = photo_paths(photos / "manifest.csv", "test")
    images = [square(load_rgb(p), size) for p in paths]
    return [
        Case(Path(paths[i % len(paths)]).name, images[i % len(paths)], mask > 0.5, bucket, float(ratio))
        for i, (mask, ratio, bucket) in enumerate(zip(masks, ratios, buckets))
    ]


def score_cases(cases: list[Case], fillers: dict[str, Callable[[np.ndarray, np.ndarray], np.ndarray]]) -> list[dict]:
    """One row per case and method: the scores of ``SCORED`` on [0, 1] images, and the fill's seconds."""
    rows = []
    for index, case in enumerate(cases):
        target = case.image.astype(np.float32) / 255.0
        for method, fill in fillers.items():
            start = time.perf_counter()
            filled = fill(case.image, case.hole)
            seconds = time.perf_counter() - start
            assert np.array_equal(filled[~case.hole], case.image[~case.hole]), f"{method} changed known pixels"
            scores = scoring.score_image(filled.astype(np.float32) / 255.0, target, case.hole.astype(np.float32))
            rows.append(
                {
                    "index": index,
                    "photo": case.photo,
                    "bucket": case.bucket,
                    "hole_ratio": case.hole_ratio,
                    "method": method,
                    **{k: scores[k] for k in SCORED},
                    "seconds": seconds,
                }
            )
    return rows


def summarize(rows: list[dict]) -> dict:
    """{method: {bucket or "all": {metric: mean}}} of ``score_cases`` rows."""
    out: dict = {}
    for method in dict.fromkeys(r["method"] for r in rows):
        mine = [r for r in rows if r["method"] == method]
        groups = {ALL_BUCKETS: mine} | {
            b: [r for r in mine if r["bucket"] == b] for b in dict.fromkeys(r["bucket"] for r in mine)
        }
        out[method] = {
            name: {k: float(np.mean([r[k] for r in group])) for k in (*SCORED, "seconds")} for name, group in groups.items()
        }
    return out


def fillers(baselines: list[str], models: dict[str, Path], inpaint_radius: int) -> dict[str, Callable]:
    """name -> fill(image uint8 (H, W, 3), hole bool (H, W)) -> uint8 (H, W, 3): each classical
    method of ``baselines`` that ``fill --method`` offers, then each recipe's saved generator."""
    from image_completion.app import fill  # noqa: PLC0415 - TensorFlow loads with the models

    out: dict[str, Callable] = {
        name: (lambda image, hole, m=name: fill.fill_with_baseline(image, hole, m, inpaint_radius))
        for name in baselines
        if name in fill.BASELINE_NAMES.values()
    }
    for recipe, folder in models.items():
        generator = fill.load_generator(folder / GENERATOR_FILE)
        out[recipe] = lambda image, hole, g=generator: fill.fill_with_generator(image, hole, g)
    return out
