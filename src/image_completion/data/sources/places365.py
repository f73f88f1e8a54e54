"""Places365-Standard (256x256 "easy format") images of chosen scene categories, streamed.

The archive (about 24 GB) is never stored: it is read once over HTTP as a tar stream
(``tarfile`` mode ``r|*``), only images under ``<split>/<category>/`` of the chosen categories
are written to a staging directory, and the rest is hashed and thrown away. The whole stream
is hashed (a dropped connection resumes with HTTP Range, continuing the same hash); if the final
sha256 differs from ``data.places365.sha256`` the staged images are deleted.
"""

from __future__ import annotations

import gzip
import hashlib
import logging
import lzma
import posixpath
import shutil
import tarfile
import zlib
from pathlib import Path

from image_completion.data.sources import DownloadError, Photo, SourceResult, safe_stem
from image_completion.data.sources.archives import check_member
from image_completion.data.sources.http import ChecksumError, ResumableReader

LOG = logging.getLogger(__name__)
SOURCE = "places365"
SPLIT_DIRS = ("train", "val")
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png")


def _category(member_name: str) -> tuple[str, str] | None:
    """``.../train/<category...>/<file>`` -> (category, "train"); None for other paths."""
    parts = member_name.split("/")
    for i, part in enumerate(parts[:-2]):
        if part in SPLIT_DIRS:
            return "/".join(parts[i + 1 : -1]), part
    return None


def _write_image(
    tar: tarfile.TarFile, member: tarfile.TarInfo, category: str, split_dir: str, staging: Path
) -> tuple[str, str, str, str, Path]:
    """Writes one image member to ``staging`` -> (category, split dir, member, sha256, file)."""
    data = tar.extractfile(member).read()
    stem = posixpath.splitext(posixpath.basename(member.name))[0]
    name = f"places365_{safe_stem(category)}_{split_dir}_{safe_stem(stem)}"
    target = staging / (name + posixpath.splitext(member.name)[1].lower())
    target.write_bytes(data)
    return category, split_dir, member.name, hashlib.sha256(data).hexdigest(), target


def _stream_images(
    reader: ResumableReader, url: str, categories: list[str], max_per_category: int, staging: Path
) -> tuple[list[tuple[str, str, str, str, Path]], dict[str, int], set[str]]:
    """Reads the whole tar stream, writing up to ``max_per_category`` images of each category to ``staging``.

    Returns the kept images (see ``_write_image``), the count per category and every category seen.
    """
    wanted = set(categories)
    counts = {c: 0 for c in categories}
    seen_categories: set[str] = set()
    kept = []
    try:
        with tarfile.open(fileobj=reader, mode="r|*") as tar:
            for member in tar:
                check_member(member, url)
                found = _category(member.name) if member.isfile() else None
                if found is None:
                    continue
                category, split_dir = found
                seen_categories.add(category)
                if (
                    category not in wanted
                    or counts[category] >= max_per_category
                    or not member.name.lower().endswith(IMAGE_SUFFIXES)
                ):
                    continue
                kept.append(_write_image(tar, member, category, split_dir, staging))
                counts[category] += 1
        reader.drain()  # tar's end-of-archive blocks and padding count towards the sha256 too
    except (tarfile.TarError, EOFError, zlib.error, gzip.BadGzipFile, lzma.LZMAError) as err:
        raise DownloadError(f"{url}: archive is truncated or corrupt ({err}); nothing was kept") from None
    return kept, counts, seen_categories


def _check_digest(reader: ResumableReader, url: str, sha256: str) -> None:
    """Raises ``ChecksumError`` when the sha256 of the whole stream differs from the pinned one."""
    got = reader.digest.hexdigest()
    if got != sha256:
        raise ChecksumError(
            f"{url}: sha256 mismatch: expected {sha256}, got {got} ({reader.position} bytes); "
            "the images read from it were discarded"
        )


def _photos(kept: list[tuple[str, str, str, str, Path]], verified: Path) -> list[Photo]:
    """The kept images, now in the ``verified`` directory, as ``Photo``s."""
    return [
        Photo(
            name=path.stem,
            source=SOURCE,
            sha256=digest,
            origin=f"Places365-Standard `{member}`",
            licence="Places365 terms of use (non-commercial research and education)",
            path=verified / path.name,
            note=category,
        )
        for category, split_dir, member, digest, path in kept
    ]


def _attribution(url: str, sha256: str, categories: list[str]) -> str:
    """The source's paragraph for ATTRIBUTION.md: what was taken, from where, and the terms of use."""
    return (
        f"Places365-Standard, 256x256 images of the categories {', '.join(categories)}, from `{url}` "
        f"(archive sha256 {sha256}). B. Zhou, A. Lapedriza, A. Khosla, A. Oliva, A. Torralba: "
        '"Places: A 10 million Image Database for Scene Recognition", IEEE TPAMI 2017. The images were '
        "collected from the web; their copyright stays with their owners, and the data set may be used for "
        "non-commercial research and educational purposes only (see http://places2.csail.mit.edu/)."
    )


def collect(
    url: str,
    sha256: str,
    categories: list[str],
    max_per_category: int,
    work: Path,
    *,
    retries: int = 5,
    timeout: float = 60.0,
    backoff: float = 1.0,
) -> SourceResult:
    """Streams the archive at ``url`` and keeps up to ``max_per_category`` images of each category.
    The arguments come from ``config.Places365Params`` (URL, pinned sha256 and limits checked there)."""
    assert sha256 is not None and categories and max_per_category >= 1, (sha256, categories, max_per_category)
    staging = work / "places365-staging"
    if staging.exists():
        shutil.rmtree(staging)
    staging.mkdir(parents=True)
    reader = ResumableReader(url, retries=retries, timeout=timeout, backoff=backoff)
    LOG.info("streaming %s (only categories %s are kept)", url, sorted(set(categories)))
    try:
        kept, counts, seen_categories = _stream_images(reader, url, categories, max_per_category, staging)
        _check_digest(reader, url, sha256)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    finally:
        reader.close()
    empty = [c for c in categories if counts[c] == 0]
    if empty:
        shutil.rmtree(staging, ignore_errors=True)
        raise DownloadError(
            f"{url}: no images of categories {empty}; categories in the archive include {sorted(seen_categories)[:20]}"
        )
    verified = work / "places365"
    staging.rename(verified)
    photos = _photos(kept, verified)
    LOG.info("kept %s images per category from %d bytes", counts, reader.position)
    return SourceResult(photos, [], _attribution(url, sha256, categories))
