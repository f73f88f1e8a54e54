"""Hole masks: the training-mask generators and the fixed evaluation masks (stage ``masks``).

    python -m image_completion.stages.masks --params params.yaml --out data/eval_masks

Argument checks and the params, then one call into ``image_completion.data.masks`` (what it does and writes).
"""

from __future__ import annotations

import argparse

from image_completion.config import load_stage_params
from image_completion.data.masks import (
    make_eval_masks,
    write_eval_masks,
)
from image_completion.errors import run_main


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m image_completion.stages.masks", description=__doc__.split("\n")[0])
    parser.add_argument("--params", required=True, help="params.yaml (reads base.seed, base.image_size, masks.eval)")
    parser.add_argument("--out", required=True, help="output directory, e.g. data/eval_masks")
    args = parser.parse_args(argv)
    params = load_stage_params(args.params, "masks")
    masks, ratios, buckets = make_eval_masks(params.masks.eval, params.base.image_size, params.base.seed)
    write_eval_masks(args.out, masks, ratios, buckets)
    counts = {b: buckets.count(b) for b in dict.fromkeys(buckets)}
    print(f"wrote {len(masks)} masks of {params.base.image_size}x{params.base.image_size} to {args.out}: {counts}")


if __name__ == "__main__":
    run_main(main, "masks")
