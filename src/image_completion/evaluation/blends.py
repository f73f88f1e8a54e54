"""Choosing the classical blend on the validation photos.

A blend is a pixel-weighted mean of classical fills (``core.baselines.fill_blend``). Candidates:
each fill alone, every pair of them at weights 1/4, 1/2, 3/4, and the equal mean of all of
them. Each is scored on one validation crop per evaluation mask; the choice is the candidate with
the smallest sum of its ranks by mean hole L1 and by mean hole PSNR (both metrics of the target;
ties go to the higher PSNR). The test photos are never read.
"""

from __future__ import annotations

import itertools

import numpy as np

from image_completion.core.baselines import run_baseline_batch
from image_completion.evaluation.validation import score

METHODS = ("biharmonic", "telea", "navier_stokes", "fsr_fast")
PAIR_WEIGHTS = (0.25, 0.5, 0.75)


def candidates(methods=METHODS) -> list[dict[str, float]]:
    """Weights {method: weight} of every candidate blend (weights sum to 1)."""
    out = [{m: 1.0} for m in methods]
    for a, b in itertools.combinations(methods, 2):
        out.extend({a: w, b: 1.0 - w} for w in PAIR_WEIGHTS)
    out.append({m: 1.0 / len(methods) for m in methods})
    return out


def blend_name(weights: dict[str, float]) -> str:
    return " + ".join(f"{w:g} {m}" for m, w in weights.items())


def score_candidates(images: np.ndarray, masks: np.ndarray, buckets: list[str], inpaint_radius: int) -> list[dict]:
    """[{"weights", "name", "scores" (``validation.score``)}] for every candidate; each fill once."""
    fills = {m: run_baseline_batch(m, images, masks, inpaint_radius=inpaint_radius) for m in METHODS}
    hole = (np.asarray(masks) > 0.5)[..., None]
    rows = []
    for weights in candidates():
        mixed = sum(w * fills[m] for m, w in weights.items())
        outputs = np.where(hole, np.clip(mixed, 0.0, 1.0), images).astype(np.float32)
        rows.append({"weights": weights, "name": blend_name(weights), "scores": score(outputs, images, masks, buckets)})
    return rows


def choose(rows: list[dict]) -> dict:
    """The row with the smallest rank sum by hole L1 (lower better) and hole PSNR (higher better)."""
    assert rows
    overall = [r["scores"]["all"] for r in rows]
    by_l1 = sorted(range(len(rows)), key=lambda i: overall[i]["l1_hole"])
    by_psnr = sorted(range(len(rows)), key=lambda i: -overall[i]["psnr_hole"])
    rank = {i: by_l1.index(i) + by_psnr.index(i) for i in range(len(rows))}
    best = min(range(len(rows)), key=lambda i: (rank[i], -overall[i]["psnr_hole"]))
    return rows[best]
