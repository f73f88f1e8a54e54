"""Photo sources of the ``download`` stage.

Each source module has a ``collect(...)`` function that fetches and verifies its inputs inside
a work directory and returns a ``SourceResult``: the usable originals (``Photo``: a file to decode,
or an already decoded array), the inputs it had to drop (``Skipped``) and the attribution text.
Decoding, resizing, splitting and writing the output are done once, by ``download.py``.
"""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path

import numpy as np

from image_completion.errors import InputError


class DownloadError(InputError, RuntimeError):
    """A source that cannot deliver its photos (network, checksum, missing files...)."""


@dataclasses.dataclass
class Photo:
    """One original photo. ``name`` is the output file stem (unique within a run)."""

    name: str
    source: str
    sha256: str  # of the original downloaded file (or archive, see each source)
    origin: str  # where it comes from, for ATTRIBUTION.md (markdown)
    licence: str  # its licence, for ATTRIBUTION.md
    path: Path | None = None  # original file to decode ...
    array: np.ndarray | None = None  # ... or uint8 (H, W, 3) pixels already decoded (CIFAR-10)
    group: str = ""  # photos of one group always share a split (stereo pairs)
    fixed_split: str | None = None  # e.g. "test" for the Debian sea/water photos
    note: str = ""

    def __post_init__(self):
        if (self.path is None) == (self.array is None):
            raise ValueError(f"{self.name}: a Photo needs exactly one of path or array")
        if not self.group:
            self.group = self.name


@dataclasses.dataclass
class Skipped:
    """An input that was dropped; recorded in the manifest with split ``skipped``."""

    name: str
    source: str
    sha256: str
    note: str


@dataclasses.dataclass
class SourceResult:
    photos: list[Photo]
    skipped: list[Skipped]
    attribution: str  # markdown paragraph(s) describing the source as a whole
    licence_files: dict[str, Path] = dataclasses.field(default_factory=dict)  # name -> file to ship


def safe_stem(text: str) -> str:
    """A file-name-safe stem: letters, digits, '-', '_' and '.' only (no path separators)."""
    stem = re.sub(r"[^A-Za-z0-9._-]+", "_", text).strip("._")
    return stem or "photo"
