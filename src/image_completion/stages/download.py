"""Stage ``download``: fetch, verify, normalise and split the photos.

    python -m image_completion.stages.download --params params.yaml --out data/photos

Argument checks and the params, then one call into ``image_completion.data.download`` (what it does and writes).
"""

from __future__ import annotations

import argparse
import logging
import time
from collections import Counter

from image_completion.config import load_stage_params
from image_completion.data.download import LOG, make_photos
from image_completion.data.manifest import SKIPPED, ManifestRow
from image_completion.errors import run_main


def summarise(rows: list[ManifestRow]) -> str:
    """One line for the log: photos per split and source, and how many inputs were skipped."""
    counts = Counter(r.split for r in rows)
    sources = Counter(r.source for r in rows if r.split != SKIPPED)
    return (
        f"{sum(counts[s] for s in ('train', 'validation', 'test'))} photos "
        f"(train {counts['train']}, validation {counts['validation']}, test {counts['test']}), "
        f"skipped {counts[SKIPPED]}; sources {dict(sources)}"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m image_completion.stages.download", description=__doc__.split("\n")[0])
    parser.add_argument("--params", required=True, help="params.yaml (reads base.seed and data)")
    parser.add_argument("--out", required=True, help="output directory, e.g. data/photos")
    parser.add_argument(
        "--cache", default=None, help="where downloaded archives are kept between runs (default: <out>/../.download-cache)"
    )
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    start = time.monotonic()
    params = load_stage_params(args.params, "download")  # a bad params file (URLs included): one line, exit 2
    rows = make_photos(params.data, params.base.seed, args.out, cache_dir=args.cache)  # errors: run_main
    LOG.info("wrote %s: %s in %.1f s", args.out, summarise(rows), time.monotonic() - start)
    return 0


if __name__ == "__main__":
    run_main(main, "download")
