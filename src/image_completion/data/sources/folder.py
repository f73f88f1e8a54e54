"""A directory of the user's own photos (``data.folder``), searched recursively."""

from __future__ import annotations

import logging
from pathlib import Path

from image_completion.data.sources import DownloadError, Photo, SourceResult, safe_stem
from image_completion.images import sha256_file

LOG = logging.getLogger(__name__)
SOURCE = "folder"
EXTENSIONS = {".jpg", ".jpeg", ".png", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".ppm", ".pgm", ".pnm"}


def collect(folder: str | Path) -> SourceResult:
    """Every file with an image extension under ``folder`` (hidden files and folders excluded).

    Files are decoded later: a corrupt one becomes a ``skipped`` manifest row, not an error.
    """
    folder = Path(folder).expanduser()
    if not folder.is_dir():
        raise DownloadError(f"{folder}: data.folder is not a directory")
    photos, ignored = [], []
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        rel = path.relative_to(folder)
        if any(part.startswith(".") for part in rel.parts):
            continue
        if path.suffix.lower() not in EXTENSIONS:
            ignored.append(str(rel))
            continue
        name = "folder_" + safe_stem("__".join(rel.parts))
        photos.append(
            Photo(
                name=name,
                source=SOURCE,
                sha256=sha256_file(path),
                origin=f"`{rel.as_posix()}`",
                licence="the owner's (user-provided)",
                path=path,
            )
        )
    if ignored:
        LOG.warning("%s: ignoring %d file(s) without an image extension, e.g. %s", folder, len(ignored), ignored[0])
    names = [p.name for p in photos]
    clashes = sorted({n for n in names if names.count(n) > 1})
    if clashes:
        raise DownloadError(f"{folder}: several files map to the same output name {clashes}; rename them")
    if not photos:
        raise DownloadError(f"{folder}: no image files found (extensions: {sorted(EXTENSIONS)})")
    return SourceResult(photos, [], f"The user's own photos from `{folder}`; their owner holds the rights.")
