"""The photo manifest written by the ``download`` stage and read by every later stage.

``data/photos/manifest.csv`` has the columns ``file,source,sha256,width,height,split,note``:
``file`` is relative to the manifest's directory, ``sha256`` is that of the original downloaded
file, ``split`` is train / validation / test, or ``skipped`` for an input that could not be used
(``note`` says why; ``width``/``height`` are 0 and ``file`` names the input).
"""

from __future__ import annotations

import csv
import dataclasses
import io
import os
from pathlib import Path, PurePosixPath

from image_completion.errors import InputError, clip, open_regular
from image_completion.images import write_text_atomic

COLUMNS = ("file", "source", "sha256", "width", "height", "split", "note")
SPLITS = ("train", "validation", "test")
SKIPPED = "skipped"


class ManifestError(InputError, ValueError):
    """A manifest that is missing or malformed; the message names the file."""


@dataclasses.dataclass(frozen=True)
class ManifestRow:
    file: str
    source: str
    sha256: str
    width: int
    height: int
    split: str
    note: str = ""

    def __post_init__(self):
        if self.split not in SPLITS + (SKIPPED,):
            raise ManifestError(f"split {self.split!r} is not allowed; allowed: {list(SPLITS + (SKIPPED,))}")
        # A photo is a file under the manifest's folder (the folder DVC tracks), named without
        # '..' or a root: nothing outside it can become a training or test photo.
        parts = PurePosixPath(self.file).parts
        if self.split != SKIPPED and (not parts or parts[0] == "/" or ".." in parts or "\\" in self.file):
            raise ManifestError(
                f"file {clip(repr(self.file))}: must be a relative path inside the manifest's folder (no '..', not absolute)"
            )


def write_manifest(path: str | Path, rows: list[ManifestRow]) -> None:
    """Writes ``rows`` as CSV (header ``COLUMNS``) through a temp file + rename."""
    path = Path(path)
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(COLUMNS)
    for row in rows:
        writer.writerow([getattr(row, c) for c in COLUMNS])
    write_text_atomic(path, buf.getvalue())


def read_manifest(path: str | Path) -> list[ManifestRow]:
    """Reads and checks a manifest; any problem raises ``ManifestError`` naming the file (and line)."""
    path = Path(path)
    try:
        with open_regular(path, ManifestError) as fh:
            text = fh.read().decode("utf-8")
    except FileNotFoundError:
        raise ManifestError(f"{path}: manifest not found (run the download stage first)") from None
    except UnicodeDecodeError as err:
        raise ManifestError(f"{path}: not a manifest: not UTF-8 text (byte {err.start})") from None
    reader = csv.reader(io.StringIO(text))
    header = next(reader, None)
    if header is None or tuple(header) != COLUMNS:
        raise ManifestError(f"{path}: bad columns {header}; expected {list(COLUMNS)}")
    rows = []
    for line_no, fields in enumerate(reader, start=2):
        if not fields:
            continue
        if len(fields) != len(COLUMNS):
            raise ManifestError(f"{path}, line {line_no}: expected {len(COLUMNS)} fields, got {len(fields)}")
        values = dict(zip(COLUMNS, fields))
        try:
            values["width"] = int(values["width"])
            values["height"] = int(values["height"])
            rows.append(ManifestRow(**values))
        except (ValueError, ManifestError) as err:
            raise ManifestError(f"{path}, line {line_no}: {err}") from None
    return rows


def photo_paths(manifest_path: str | Path, split: str) -> list[str]:
    """Absolute paths of the photos of one split, in manifest order.

    Raises ``ManifestError`` for an unknown split, a split with no photos, or a listed file
    that does not exist (a manifest out of step with its images).
    """
    if split not in SPLITS:
        raise ManifestError(f"unknown split {split!r}; allowed: {list(SPLITS)}")
    manifest_path = Path(manifest_path)
    root = manifest_path.parent.resolve()
    paths = [str(root / row.file) for row in read_manifest(manifest_path) if row.split == split]
    if not paths:
        raise ManifestError(f"{manifest_path}: no photos in split {split!r}")
    missing = [p for p in paths if not os.path.isfile(p)]
    if missing:
        raise ManifestError(f"{manifest_path}: {len(missing)} listed photo(s) missing, e.g. {missing[0]}")
    return paths
