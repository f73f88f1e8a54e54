"""Scoring on the validation photos (never the test photos): one validation crop per evaluation
mask, scored overall and per hole-ratio bucket. Used to choose recipes (the ablation) and the
classical blend (``evaluation.blends``) before the test crops score the final comparison once."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from image_completion.config import Params
from image_completion.evaluation import scoring

SCORED = ("l1_hole", "psnr_hole", "ssim")


def validation_set(params: Params, photos: Path, masks_dir: Path):
    """(crops (N, S, S, 3), masks (N, S, S), bucket labels): one validation crop per evaluation mask."""
    from image_completion.data.dataset import load_crop, make_eval_crops  # noqa: PLC0415 - TensorFlow loads on use
    from image_completion.data.manifest import photo_paths  # noqa: PLC0415
    from image_completion.data.masks import read_eval_masks  # noqa: PLC0415

    masks, rows = read_eval_masks(masks_dir)
    crops = make_eval_crops(
        photo_paths(photos / "manifest.csv", "validation"), len(masks), params.base.image_size, params.base.seed
    )
    images = np.stack([load_crop(p, top, left, params.base.image_size) for p, top, left in crops])
    return images.astype(np.float32), masks, [r.bucket for r in rows]


def score(outputs: np.ndarray, images: np.ndarray, masks: np.ndarray, buckets: list[str]) -> dict:
    """Means of ``SCORED`` overall and per bucket."""
    rows = [scoring.score_image(o, t, m) for o, t, m in zip(outputs, images, masks)]
    result = {scoring.ALL_BUCKETS: {k: float(np.mean([r[k] for r in rows])) for k in SCORED}}
    for b in dict.fromkeys(buckets):
        result[b] = {k: float(np.mean([r[k] for r, rb in zip(rows, buckets) if rb == b])) for k in SCORED}
    return result
