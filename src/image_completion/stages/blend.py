"""Chooses the classical blend on the validation photos (a command, not a DVC stage).

    python -m image_completion.stages.blend --params params.yaml --photos data/photos \
        --masks data/eval_masks --out reports/baselines/blend_selection.json

Argument checks and the params, then one call into ``image_completion.evaluation.blends``; the
chosen weights go into ``core.baselines.BLEND_WEIGHTS`` by hand (a test keeps them equal).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from image_completion.config import load_stage_params
from image_completion.errors import run_main
from image_completion.evaluation.blends import choose, score_candidates
from image_completion.evaluation.validation import validation_set
from image_completion.images import write_text_atomic


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(prog="python -m image_completion.stages.blend", description=__doc__.split("\n")[0])
    parser.add_argument("--params", required=True, type=Path)
    parser.add_argument("--photos", required=True, type=Path)
    parser.add_argument("--masks", required=True, type=Path)
    parser.add_argument("--out", required=True, type=Path)
    args = parser.parse_args(argv)
    params = load_stage_params(args.params, "python -m image_completion.stages.blend")
    images, masks, buckets = validation_set(params, args.photos, args.masks)
    rows = score_candidates(images, masks, buckets, params.evaluate.inpaint_radius)
    best = choose(rows)
    result = {"chosen": best["weights"], "rule": "smallest rank sum by mean hole L1 and mean hole PSNR", "candidates": rows}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    write_text_atomic(args.out, json.dumps(result, indent=2) + "\n")
    for r in sorted(rows, key=lambda r: -r["scores"]["all"]["psnr_hole"])[:8]:
        print(f"{r['name']:45s} hole PSNR {r['scores']['all']['psnr_hole']:.3f}  hole L1 {r['scores']['all']['l1_hole']:.4f}")
    print(f"chosen: {best['name']}")


if __name__ == "__main__":
    run_main(main, "blend")
