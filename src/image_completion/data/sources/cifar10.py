"""CIFAR-10 (python version): 32x32 colour images, downloaded once, checksummed, resumable.

The archive is kept in a cache directory (``<cache>/cifar-10-python.tar.gz``, with a ``.part``
file while downloading) so a dropped or killed download resumes with HTTP Range and a rerun
does not download it again. Images are taken in file order (data_batch_1..5, test_batch).
The batches are pickles: they are read by an unpickler that admits only numpy arrays and the
plain types, so even an archive matching its pinned sha256 cannot run code.
"""

from __future__ import annotations

import logging
import pickle
import posixpath
import tarfile
from pathlib import Path

import numpy as np

from image_completion.data.sources import DownloadError, Photo, SourceResult
from image_completion.data.sources.archives import check_member
from image_completion.data.sources.http import check_url, download_file

LOG = logging.getLogger(__name__)
SOURCE = "cifar10"
BATCHES = ("data_batch_1", "data_batch_2", "data_batch_3", "data_batch_4", "data_batch_5", "test_batch")


# The only globals a CIFAR-10 batch refers to: numpy's array reconstruction (old and numpy 2 module
# paths; _frombuffer for pickle protocol 5), and _codecs.encode, which protocols <= 2 use for
# bytes pickled by Python 3.
ALLOWED_GLOBALS = frozenset(
    {
        ("numpy.core.multiarray", "_reconstruct"),
        ("numpy._core.multiarray", "_reconstruct"),
        ("numpy.core.numeric", "_frombuffer"),
        ("numpy._core.numeric", "_frombuffer"),
        ("numpy", "ndarray"),
        ("numpy", "dtype"),
        ("_codecs", "encode"),
    }
)


class _BatchUnpickler(pickle.Unpickler):
    """An unpickler that refuses every global outside ``ALLOWED_GLOBALS`` (so no code can run)."""

    def find_class(self, module: str, name: str):
        if (module, name) not in ALLOWED_GLOBALS:
            raise pickle.UnpicklingError(
                f"refusing to load {module}.{name}: a CIFAR-10 batch holds only numpy arrays, lists, numbers and strings"
            )
        return super().find_class(module, name)


def _load_pickle(tar: tarfile.TarFile, member: tarfile.TarInfo, archive: str) -> dict:
    try:
        content = _BatchUnpickler(tar.extractfile(member), encoding="bytes").load()
    except Exception as err:  # noqa: BLE001 - any unpickling failure means a malformed archive
        raise DownloadError(f"{archive}: cannot read {member.name}: {err}") from None
    if not isinstance(content, dict):
        raise DownloadError(f"{archive}: {member.name} holds a {type(content).__name__}, not a dict")
    return content


def read_images(archive: Path, max_images: int) -> tuple[list[tuple[str, int, np.ndarray, str]], list[str]]:
    """First ``max_images`` images of a CIFAR-10 python archive -> [(batch, index, uint8 (32,32,3), label)]."""
    with tarfile.open(archive, "r:gz") as tar:
        members = tar.getmembers()
        for member in members:
            check_member(member, str(archive))
        by_name = {posixpath.basename(m.name): m for m in members if m.isfile()}
        missing = [b for b in BATCHES if b not in by_name]
        if missing or "batches.meta" not in by_name:
            raise DownloadError(f"{archive}: not a CIFAR-10 python archive, missing {missing or ['batches.meta']}")
        meta = _load_pickle(tar, by_name["batches.meta"], str(archive))
        label_names = [n.decode() if isinstance(n, bytes) else str(n) for n in meta.get(b"label_names", [])]
        images = []
        for batch in BATCHES:
            if len(images) >= max_images:
                break
            content = _load_pickle(tar, by_name[batch], str(archive))
            data = np.asarray(content.get(b"data"))
            labels = list(content.get(b"labels", []))
            if data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != 3072 or len(labels) != len(data):
                raise DownloadError(
                    f"{archive}: {batch} holds data of shape {data.shape} / {data.dtype}, expected (N, 3072) uint8 with N labels"
                )
            # rows are channel-major: (N, 3072) -> (N, 3, 32, 32) -> (N, 32, 32, 3)
            pixels = data.reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1)
            for i in range(min(len(pixels), max_images - len(images))):
                label = label_names[labels[i]] if labels[i] < len(label_names) else str(labels[i])
                images.append((batch, i, np.ascontiguousarray(pixels[i]), label))
    return images, label_names


def collect(
    url: str, sha256: str, max_images: int, cache_dir: Path, *, retries: int = 5, timeout: float = 60.0, backoff: float = 1.0
) -> SourceResult:
    """Downloads (or reuses) the verified archive and returns its first ``max_images`` images."""
    assert max_images >= 1, max_images  # config.Cifar10Params
    file_name = check_url(url, "data.cifar10.url")  # checked by the params; here for the file name
    archive = download_file(url, cache_dir / file_name, sha256, retries=retries, timeout=timeout, backoff=backoff)
    images, _ = read_images(archive, max_images)
    photos = [
        Photo(
            name=f"cifar10_{batch}_{i:05d}",
            source=SOURCE,
            sha256=sha256,
            origin=f"CIFAR-10 `{batch}`[{i}]",
            licence="CIFAR-10 (no explicit licence; cite the technical report)",
            array=pixels,
            note=label,
        )
        for batch, i, pixels, label in images
    ]
    attribution = (
        f"CIFAR-10 (python version) from `{url}` (archive sha256 {sha256}); the `sha256` column of the manifest "
        'is that of the archive. A. Krizhevsky: "Learning Multiple Layers of Features from Tiny Images", '
        "technical report, University of Toronto, 2009. The images are a labelled subset of the 80 Million "
        "Tiny Images collection, gathered from the web."
    )
    return SourceResult(photos, [], attribution)
