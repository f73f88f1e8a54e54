"""Stage ``compare``: the paper's architecture comparison, one generator kind and one seed per run.

    python -m image_completion.stages.compare --params params.yaml --kind KIND --seed SEED \
        --photos data/photos --out reports/compare/KIND-SEED

Argument checks and the params, then one call into ``image_completion.training.compare`` (what it does and writes).
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from image_completion.config import GENERATOR_KINDS, load_stage_params
from image_completion.errors import run_main, usage_error
from image_completion.training import loop
from image_completion.training.compare import run_comparison


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Architecture comparison: train one generator kind from one seed.")
    parser.add_argument("--params", required=True, help="params.yaml")
    parser.add_argument("--kind", required=True, choices=GENERATOR_KINDS)
    parser.add_argument("--seed", required=True, type=int, help="one of compare.seeds")
    parser.add_argument("--photos", required=True, type=Path, help="download stage output (holds manifest.csv)")
    parser.add_argument("--out", required=True, type=Path, help="dvclive folder, e.g. reports/compare/KIND-SEED")
    args = parser.parse_args(argv)
    params = load_stage_params(args.params, "compare")
    for flag, value, key in (("--kind", args.kind, "kinds"), ("--seed", args.seed, "seeds")):
        if value not in getattr(params.compare, key):
            usage_error("compare", f"{flag} {value} is not in compare.{key} {getattr(params.compare, key)} of {args.params}")

    precision = loop.resolve_precision(params.train.precision)
    loop.set_precision(precision)
    started = time.perf_counter()
    final = run_comparison(params, args.kind, args.seed, args.photos, args.out)
    print(f"[compare {args.kind}-{args.seed}] {precision}, {time.perf_counter() - started:.1f} s; final "
          + ", ".join(f"{k} {v:.4g}" for k, v in final.items()))  # fmt: skip


if __name__ == "__main__":
    run_main(main, "compare")
