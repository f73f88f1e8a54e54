"""Stage ``download``: fetch, verify, normalise and split the photos.

Outputs, the atomic swap of ``--out`` and the split rule: ``docs/architecture.md``, "Download".

The command line is ``image_completion.stages.download``.
"""

from __future__ import annotations

import concurrent.futures
import logging
import os
import shutil
from collections import Counter
from pathlib import Path

import numpy as np

from image_completion.config import SOURCES, DataParams
from image_completion.data.manifest import SKIPPED, ManifestRow, write_manifest
from image_completion.data.sources import (
    DownloadError,
    Photo,
    Skipped,
    SourceResult,
    cifar10,
    debian,
    folder,
    places365,
    skimage_photos,
)
from image_completion.images import (
    ImageError,
    atomic_dir,
    downscale_max_side,
    load_rgb,
    make_temp_dir,
    save_png_atomic,
)

LOG = logging.getLogger("image_completion.data.download")


def collect_source(
    data: DataParams,
    work: Path,
    cache_dir: Path,
    *,
    fetch_debs=None,
    debian_table=None,
    retries: int = 5,
    timeout: float = 60.0,
    backoff: float = 1.0,
) -> SourceResult:
    """Fetches and verifies the originals of ``data.source`` inside ``work``."""
    if data.source == "debian":
        return debian.collect(
            work,
            test_mode=data.debian_test,
            allow_missing=data.allow_missing,
            table=debian_table,
            fetch=fetch_debs or debian.apt_fetch_debs,
        )
    if data.source == "skimage":
        return skimage_photos.collect()
    if data.source == "places365":
        p = data.places365
        if p.sha256 is None:  # allowed in the params (configs/paper.yaml), refused for a download
            raise DownloadError(
                "data.places365.sha256 is null: the stage refuses to download Places365 without a pinned checksum. "
                "Compute it once from a trusted copy (`sha256sum places365standard_easyformat.tar`) and set it in "
                "params.yaml under data.places365.sha256."
            )
        return places365.collect(
            p.url, p.sha256, p.categories, p.max_images_per_category, work, retries=retries, timeout=timeout, backoff=backoff
        )
    if data.source == "cifar10":
        c = data.cifar10
        return cifar10.collect(c.url, c.sha256, c.max_images, cache_dir, retries=retries, timeout=timeout, backoff=backoff)
    if data.source == "folder":
        return folder.collect(data.folder)
    raise DownloadError(f"data.source: {data.source!r} is not allowed; allowed: {list(SOURCES)}")


def split_groups(
    groups: list[str], fixed: dict[str, str], test_fraction: float, val_fraction: float, seed: int
) -> dict[str, str]:
    """Assigns every group (a photo, or photos of one scene) to train / validation / test.

    Groups in ``fixed`` keep their split. If none is fixed to ``test``, ``test_fraction`` of the
    groups (at least 1) is drawn for test; ``val_fraction`` of the remaining free groups (at
    least 1) for validation; the rest (at least 1) is train. The draw depends only on ``seed``
    and the set of group names, not on their order.
    """
    groups = sorted(set(groups))
    free = [g for g in groups if g not in fixed]
    has_fixed_test = any(s == "test" for s in fixed.values())
    n_test = 0 if has_fixed_test else max(1, round(len(groups) * test_fraction))
    n_val = max(1, round((len(free) - n_test) * val_fraction))
    if len(free) - n_test - n_val < 1:
        raise DownloadError(
            f"too few usable photos to split: {len(groups)} photo group(s), {len(free)} not fixed to a split; "
            f"need at least {n_test + n_val + 1} for {n_test} test, {n_val} validation and 1 training"
        )
    order = np.random.default_rng(seed).permutation(len(free))
    shuffled = [free[i] for i in order]
    splits = dict(fixed)
    for i, group in enumerate(shuffled):
        splits[group] = "test" if i < n_test else "validation" if i < n_test + n_val else "train"
    return splits


def _normalise(photo: Photo, images_dir: Path, max_side: int) -> tuple[str, int, int]:
    """Decodes (or takes) the photo, downscales it and writes ``images/<name>.png``."""
    rgb = load_rgb(photo.path) if photo.path is not None else np.asarray(photo.array, dtype=np.uint8)
    if rgb.ndim != 3 or rgb.shape[2] != 3:
        raise ImageError(f"{photo.name}: expected (H, W, 3) pixels, got {rgb.shape}")
    rgb = downscale_max_side(rgb, max_side)
    save_png_atomic(images_dir / f"{photo.name}.png", rgb)
    return f"images/{photo.name}.png", rgb.shape[1], rgb.shape[0]


def _attribution(source: str, result: SourceResult, rows: list[ManifestRow], by_file: dict[str, Photo]) -> str:
    lines = [
        "# Photos: origin and licence",
        "",
        f"Source: `{source}`. {result.attribution}",
        "",
        "| file | origin | licence |",
        "|---|---|---|",
    ]
    for row in rows:
        if row.split != SKIPPED:
            photo = by_file[row.file]
            cells = [row.file, photo.origin, photo.licence]
            lines.append("| " + " | ".join(c.replace("|", "\\|").replace("\n", " ") for c in cells) + " |")
    skipped = [r for r in rows if r.split == SKIPPED]
    if skipped:
        lines += ["", "Inputs that were dropped (see `note` in manifest.csv):", ""]
        lines += [f"- {r.file}: {r.note}" for r in skipped]
    return "\n".join(lines) + "\n"


def make_photos(
    data: DataParams,
    seed: int,
    out: str | Path,
    *,
    cache_dir: str | Path | None = None,
    fetch_debs=None,
    debian_table=None,
    retries: int = 5,
    timeout: float = 60.0,
    backoff: float = 1.0,
    workers: int | None = None,
) -> list[ManifestRow]:
    """Builds ``out`` (images, manifest.csv, ATTRIBUTION.md, licenses/) atomically; returns the manifest rows.

    ``fetch_debs`` and ``debian_table`` replace the apt fetch and the shipped photo table (tests);
    ``cache_dir`` keeps downloaded archives between runs (default ``<out's parent>/.download-cache``).
    """
    out = Path(out)
    cache_dir = Path(cache_dir) if cache_dir is not None else out.parent / ".download-cache"
    with atomic_dir(out) as new:
        work = make_temp_dir(out, "work")
        try:
            result = collect_source(
                data,
                work,
                cache_dir,
                fetch_debs=fetch_debs,
                debian_table=debian_table,
                retries=retries,
                timeout=timeout,
                backoff=backoff,
            )
            usable, dropped = _normalise_all(data, result, new / "images", workers or min(4, os.cpu_count() or 1))
            fixed = {p.group: p.fixed_split for p, _ in usable if p.fixed_split}
            splits = split_groups([p.group for p, _ in usable], fixed, data.test_fraction, data.val_fraction, seed)
            rows = sorted(
                (ManifestRow(file, p.source, p.sha256, w, h, splits[p.group], p.note) for p, (file, w, h) in usable),
                key=lambda r: r.file,
            )
            rows += [ManifestRow(s.name, s.source, s.sha256, 0, 0, SKIPPED, s.note) for s in dropped]
            write_manifest(new / "manifest.csv", rows)
            _write_credits(new, data.source, result, rows, usable)
        finally:
            shutil.rmtree(work, ignore_errors=True)
    return rows


def _normalise_all(data: DataParams, result: SourceResult, images_dir: Path, workers: int):
    """Normalises every photo into ``images_dir``; returns (usable [(photo, (file, w, h))], dropped inputs)."""
    names = [p.name for p in result.photos]
    if len(set(names)) != len(names):
        raise DownloadError(
            f"source {data.source}: duplicate photo names {sorted(n for n, c in Counter(names).items() if c > 1)[:5]}"
        )
    images_dir.mkdir()
    # Pillow releases the GIL while decoding, resizing and encoding: threads use all cores.
    with concurrent.futures.ThreadPoolExecutor(max_workers=workers) as pool:
        futures = [pool.submit(_normalise, p, images_dir, data.max_side) for p in result.photos]
        outcomes = []
        for photo, future in zip(result.photos, futures):
            try:
                outcomes.append((photo, future.result(), None))
            except ImageError as err:
                LOG.warning("skipping unreadable image: %s", err)
                outcomes.append((photo, None, str(err)))
    usable = [(p, o) for p, o, e in outcomes if e is None]
    dropped = list(result.skipped) + [Skipped(p.name, p.source, p.sha256, e) for p, o, e in outcomes if e]
    if not usable:
        raise DownloadError(
            f"source {data.source}: no usable image at all "
            f"({len(dropped)} input(s) dropped, e.g. {dropped[0].note if dropped else 'none'})"
        )
    return usable, dropped


def _write_credits(new: Path, source: str, result: SourceResult, rows: list[ManifestRow], usable) -> None:
    """ATTRIBUTION.md and the sources' licence files (``licenses/``)."""
    by_file = {f"images/{p.name}.png": p for p, _ in usable}
    (new / "ATTRIBUTION.md").write_text(_attribution(source, result, rows, by_file))
    if result.licence_files:
        (new / "licenses").mkdir()
        for name, path in sorted(result.licence_files.items()):
            shutil.copyfile(path, new / "licenses" / name)
