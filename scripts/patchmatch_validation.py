"""Does PatchMatch earn a row in the classical bar (issue 15, item 1)? Scored on the validation crops only.

    pip install pypatchmatch     # not a dependency of the repository: this check decides whether it becomes one
    python scripts/patchmatch_validation.py --params params.yaml --photos data/photos --masks data/eval_masks \
        [--out reports/diagnosis/patchmatch_validation.json]

Scores PatchMatch (``pypatchmatch``, seeded) alone at patch sizes 3, 5 and 7, and as a blend partner of
biharmonic (and of the chosen blend's biharmonic + FSR-fast), on one validation crop per evaluation mask:
the crops, masks and scoring of the ablation's ``ablation_baselines`` stage, so its rows compare with
``reports/ablation/baselines/metrics.json`` (the chosen blend 0.75 biharmonic + 0.25 FSR-fast is
rescored here as a check). The test photos are not read.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
from patchmatch import patch_match

from image_completion.config import load_stage_params
from image_completion.core import baselines, holes
from image_completion.evaluation.validation import score, validation_set
from image_completion.images import write_text_atomic


def patchmatch_fills(images: np.ndarray, masks: np.ndarray, patch_size: int) -> np.ndarray:
    """PatchMatch fills of float (N, S, S, 3) crops where masks (N, S, S) is set; known pixels kept exactly."""

    def inpaint(image_u8, hole_u8):
        return patch_match.inpaint(image_u8, hole_u8, patch_size=patch_size)

    return np.stack([baselines.fill_8bit(image, mask, inpaint) for image, mask in zip(images, masks)])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--params", type=Path, required=True)
    parser.add_argument("--photos", type=Path, required=True)
    parser.add_argument("--masks", type=Path, required=True)
    parser.add_argument("--out", type=Path, default=Path("reports/diagnosis/patchmatch_validation.json"))
    args = parser.parse_args()
    params = load_stage_params(args.params, "patchmatch_validation")
    images, masks, buckets = validation_set(params, args.photos, args.masks)
    patch_match.set_random_seed(params.base.seed)

    results, patchmatch = {}, {}
    for size in (3, 5, 7):
        start = time.perf_counter()
        patchmatch[size] = patchmatch_fills(images, masks, size)
        seconds = time.perf_counter() - start
        results[f"patchmatch_{size}"] = {**score(patchmatch[size], images, masks, buckets)["all"], "seconds": seconds}

    def classical(name: str) -> np.ndarray:
        spec = holes.InputSpec(prefill=name, inpaint_radius=params.evaluate.inpaint_radius)
        return holes.generator_input(images, masks, spec)

    bih, fsr, pm = classical("biharmonic"), classical("fsr_fast"), patchmatch[3]
    blends = {
        "the chosen blend (baselines.BLEND_WEIGHTS: 0.75 biharmonic + 0.25 fsr_fast)": classical("blend"),
        "0.75 biharmonic + 0.25 patchmatch_3": 0.75 * bih + 0.25 * pm,
        "0.5 biharmonic + 0.5 patchmatch_3": 0.5 * bih + 0.5 * pm,
        "0.6 biharmonic + 0.2 fsr_fast + 0.2 patchmatch_3": 0.6 * bih + 0.2 * fsr + 0.2 * pm,
    }
    for name, filled in blends.items():
        results[name] = score(filled, images, masks, buckets)["all"]
    for name, scores in results.items():
        print(name, {k: round(v, 4) for k, v in scores.items()})
    write_text_atomic(args.out, json.dumps(results, indent=2, sort_keys=True) + "\n")


if __name__ == "__main__":
    main()
