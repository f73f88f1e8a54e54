"""Reading any photo as 8-bit RGB; writing PNGs, text files and output folders atomically.

Every stage that reads a user's or a source's image goes through ``load_rgb`` /
``load_image_and_alpha`` so that orientation (EXIF), pixel formats (greyscale, palette, RGBA,
16-bit, CMYK...) and corrupt files (failed PNG checksums, truncated data, decoder warnings) are
handled in one place. Errors are ``ImageError`` whose message starts with the file's path.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import re
import shutil
import struct
import tempfile
import threading
import warnings
from pathlib import Path
from typing import BinaryIO, Callable, Iterable, Iterator

import numpy as np
from PIL import Image, ImageFile, ImageOps

from image_completion.errors import InputError, open_regular

# Modes holding one channel of more than 8 bits: Pillow's own convert("RGB") clips them to 255
# instead of scaling, so they are rescaled from the 16-bit range by hand.
_WIDE_GREY_MODES = ("I;16", "I;16L", "I;16B", "I;16N", "I")


class ImageError(InputError, ValueError):
    """An image file that cannot be read or written; the message starts with its path."""


# ``warnings.catch_warnings`` changes process-wide state and is not thread-safe, and the download
# stage decodes in threads: the first decoding thread enters one shared context, the last leaves it.
_STRICT_LOCK = threading.Lock()
_strict: dict = {"users": 0, "context": None}
LOG = logging.getLogger("image_completion.images")
_PIL_MODULES = r"PIL(\.|$)"
# What Pillow raises for a corrupt, truncated or hostile file, in opening, verifying or decoding.
_PILLOW_ERRORS = (OSError, SyntaxError, ValueError, EOFError, IndexError, struct.error, Image.DecompressionBombError)


@contextlib.contextmanager
def _pillow_warnings_as_errors() -> Iterator[None]:
    """While active, a warning issued by Pillow (truncated tag, corrupt EXIF...) is raised instead."""
    with _STRICT_LOCK:
        if _strict["users"] == 0:
            context = warnings.catch_warnings()
            context.__enter__()
            warnings.filterwarnings("error", module=_PIL_MODULES)
            warnings.filterwarnings("default", category=DeprecationWarning, module=_PIL_MODULES)
            # A decompression-bomb *warning* (not error) is fine for big photos: they are downscaled.
            warnings.filterwarnings("ignore", category=Image.DecompressionBombWarning)
            _strict["context"] = context
        _strict["users"] += 1
    try:
        yield
    finally:
        with _STRICT_LOCK:
            _strict["users"] -= 1
            if _strict["users"] == 0:
                context, _strict["context"] = _strict["context"], None
                context.__exit__(None, None, None)


@contextlib.contextmanager
def opened(path: str | Path, error: type[Exception] = ImageError, what: str = "image") -> Iterator[Image.Image]:
    """``Image.open(path)`` for reading a header or pixels in the body: a missing or undecodable
    file, in opening or in the body, becomes one ``error`` naming the file (``what`` names it)."""
    try:
        with open_regular(path, error) as fh, Image.open(fh) as im:
            yield im
    except error:
        raise
    except FileNotFoundError:
        raise error(f"{path}: {what} not found") from None
    except IsADirectoryError:
        raise error(f"{path}: is a directory, not a file") from None
    except _PILLOW_ERRORS as err:
        raise error(f"{path}: cannot decode {what}: {err}") from None


def _verify(path: Path, fh: BinaryIO) -> None:
    """Pillow's integrity check (for PNG: every chunk's CRC), which decoding alone skips."""
    with Image.open(fh) as im:
        try:
            im.verify()
        except _PILLOW_ERRORS as err:
            raise ImageError(
                f"{path}: cannot decode image: corrupt or truncated file, it fails its integrity check ({err})"
            ) from None


def _open_oriented(path: str | Path) -> Image.Image:
    """Checks, fully decodes and EXIF-transposes ``path`` (any problem or warning -> ImageError)."""
    path = Path(path)
    try:
        ImageFile.LOAD_TRUNCATED_IMAGES = False  # a truncated file is an error, never grey-padded
        with _pillow_warnings_as_errors(), open_regular(path, ImageError) as fh:
            _verify(path, fh)
            fh.seek(0)
            with Image.open(fh) as im:  # verify() leaves its image unusable: open again to decode
                im.load()  # decode now: truncated/corrupt data fails here, not later
                oriented = ImageOps.exif_transpose(im)
                # exif_transpose returns a copy only when it rotated; copy so the file can close.
                return oriented.copy() if oriented is im else oriented
    except ImageError:
        raise
    except FileNotFoundError:
        raise ImageError(f"{path}: file not found") from None
    except IsADirectoryError:
        raise ImageError(f"{path}: is a directory, not an image") from None
    except Image.UnidentifiedImageError:
        raise ImageError(f"{path}: not a readable image (unknown or corrupt format)") from None
    except (*_PILLOW_ERRORS, Warning) as err:
        raise ImageError(f"{path}: cannot decode image: {err}") from None


def _wide_grey_to_uint8(im: Image.Image, path: Path) -> np.ndarray:
    """16-bit (or 32-bit integer) greyscale -> uint8 (H, W), scaling 0..65535 to 0..255."""
    grey = np.asarray(im)
    if grey.dtype.byteorder == ">":
        grey = grey.astype(grey.dtype.newbyteorder("="))
    if np.issubdtype(grey.dtype, np.integer) and grey.dtype.itemsize > 2 and grey.max(initial=0) > 65535:
        raise ImageError(f"{path}: {im.mode} image with values above 65535 is not supported")
    grey = np.clip(grey.astype(np.float64), 0, 65535)
    return np.round(grey / 257.0).astype(np.uint8)


def _to_rgb_and_alpha(im: Image.Image, path: Path) -> tuple[np.ndarray, np.ndarray | None]:
    """Any Pillow mode -> (uint8 (H, W, 3), uint8 (H, W) alpha or None)."""
    mode = im.mode
    if mode in _WIDE_GREY_MODES:
        grey = _wide_grey_to_uint8(im, path)
        return np.repeat(grey[:, :, None], 3, axis=2), None
    if mode == "F":
        raise ImageError(f"{path}: floating-point (mode F) images are not supported; save it as 8- or 16-bit")
    has_alpha = mode in ("RGBA", "LA", "PA", "La", "RGBa") or (mode == "P" and "transparency" in im.info)
    if has_alpha:
        rgba = np.asarray(im.convert("RGBA"))
        return np.ascontiguousarray(rgba[:, :, :3]), np.ascontiguousarray(rgba[:, :, 3])
    try:
        rgb = np.asarray(im.convert("RGB"))  # L, 1, P, CMYK, YCbCr, LAB, HSV...
    except (ValueError, OSError) as err:
        raise ImageError(f"{path}: cannot convert mode {mode} to RGB: {err}") from None
    return rgb, None


def load_image_and_alpha(path: str | Path) -> tuple[np.ndarray, np.ndarray | None]:
    """Reads ``path`` as (uint8 (H, W, 3) RGB, uint8 (H, W) alpha or None), EXIF orientation applied."""
    im = _open_oriented(path)
    rgb, alpha = _to_rgb_and_alpha(im, Path(path))
    return np.ascontiguousarray(rgb, dtype=np.uint8), alpha


def load_rgb(path: str | Path) -> np.ndarray:
    """Reads ``path`` as uint8 (H, W, 3) RGB, EXIF orientation applied; an alpha channel is dropped."""
    rgb, _ = load_image_and_alpha(path)
    return rgb


def downscale_max_side(image: np.ndarray, max_side: int) -> np.ndarray:
    """Shrinks uint8 (H, W, 3) so its longer side is <= ``max_side`` (Lanczos); never enlarges."""
    assert max_side >= 1, max_side
    h, w = image.shape[:2]
    longer = max(h, w)
    if longer <= max_side:
        return image
    scale = max_side / longer
    size = (max(1, round(w * scale)), max(1, round(h * scale)))  # PIL wants (W, H)
    return np.asarray(Image.fromarray(image).resize(size, Image.Resampling.LANCZOS))


def file_mode(directory: bool = False) -> int:
    """Permissions a plain open()/mkdir() would give under the current umask (mkstemp uses 0600)."""
    mask = os.umask(0)
    os.umask(mask)
    return (0o777 if directory else 0o666) & ~mask


def _write_temp(path: Path, write: Callable[[BinaryIO], None]) -> Path:
    """Calls ``write(binary file)`` on a new hidden temp file next to ``path``; returns the temp file.

    The temp file gets the permissions a plain open() would give (mkstemp's are 0600); it is
    removed if ``write`` fails.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.{os.getpid()}-", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            write(fh)
        os.chmod(tmp, file_mode())
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return Path(tmp)


def _write_atomic(path: Path, write: Callable[[BinaryIO], None]) -> None:
    """Calls ``write(binary file)`` on a temp file next to ``path``, then renames it to ``path``.

    A crash mid-write leaves either the old file or none, never a truncated one.
    """
    tmp = _write_temp(path, write)
    try:
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def write_text_atomic(path: str | Path, text: str) -> None:
    """Writes ``text`` (UTF-8, line endings as given) to ``path`` via a temp file + rename."""
    data = text.encode("utf-8")
    _write_atomic(Path(path), lambda fh: fh.write(data))


def _png_writer(path: Path, array: np.ndarray) -> Callable[[BinaryIO], None]:
    """Checks uint8 (H, W), (H, W, 3) or (H, W, 4) pixels; returns a function writing them as PNG."""
    array = np.asarray(array)
    assert array.dtype == np.uint8, (path, array.dtype)
    assert array.ndim == 2 or (array.ndim == 3 and array.shape[2] in (3, 4)), (path, array.shape)
    assert array.shape[0] >= 1 and array.shape[1] >= 1, (path, array.shape)
    image = Image.fromarray(np.ascontiguousarray(array))
    return lambda fh: image.save(fh, format="PNG")


def save_png_atomic(path: str | Path, array: np.ndarray) -> None:
    """Writes uint8 (H, W), (H, W, 3) or (H, W, 4) as a PNG via a temp file + rename.

    A crash mid-write leaves either the old file or none, never a truncated PNG.
    """
    path = Path(path)
    _write_atomic(path, _png_writer(path, array))


class PngBatch:
    """PNG files that appear together or not at all (``with PngBatch() as batch: ...``).

    ``add`` writes each PNG to a hidden temp file next to its target; ``commit`` renames them all
    into place. Leaving the ``with`` block without ``commit`` removes every temp file; a rename
    that fails inside ``commit`` undoes the renames already done, putting back the files they
    replaced. (A killed process can still leave hidden ``.<name>.<pid>-*.tmp`` files behind:
    ``remove_stale_temp_files`` removes them.)
    """

    def __init__(self) -> None:
        self._pending: list[tuple[Path, Path]] = []  # (temp file, target)

    def __enter__(self) -> "PngBatch":
        return self

    def __exit__(self, *exc) -> None:
        self.discard()

    def add(self, path: str | Path, array: np.ndarray) -> None:
        path = Path(path)
        self._pending.append((_write_temp(path, _png_writer(path, array)), path))

    def discard(self) -> None:
        """Removes the temp files not yet committed."""
        for tmp, _ in self._pending:
            tmp.unlink(missing_ok=True)
        self._pending = []

    def commit(self) -> list[Path]:
        """Renames every temp file to its target (all or none, see the class); returns the targets."""
        done: list[tuple[Path, Path | None]] = []  # (target, backup of the file it replaced)
        try:
            for tmp, target in self._pending:
                backup = _backup(target, tmp)
                try:
                    os.replace(tmp, target)
                except BaseException:
                    if backup is not None:
                        backup.unlink(missing_ok=True)
                    raise
                done.append((target, backup))
        except BaseException:
            _undo_replaces(done)
            raise
        for _, backup in done:
            if backup is not None:
                backup.unlink(missing_ok=True)
        targets = [target for _, target in self._pending]
        self._pending = []
        return targets


def _backup(target: Path, tmp: Path) -> Path | None:
    """A second name (hard link, else a copy) for an existing file ``target``; None if there is none."""
    if not os.path.lexists(target) or (target.is_dir() and not target.is_symlink()):
        return None
    backup = tmp.with_name(tmp.name + ".bak")
    try:
        os.link(target, backup, follow_symlinks=False)
    except OSError:  # a file system without hard links
        shutil.copy2(target, backup, follow_symlinks=False)
    return backup


def _undo_replaces(done: list[tuple[Path, Path | None]]) -> None:
    """Puts back the files that renames replaced, and removes the files they created."""
    for target, backup in reversed(done):
        with contextlib.suppress(OSError):
            if backup is not None:
                os.replace(backup, target)
            else:
                target.unlink()


# Temporary folders beside an output: ``.<output name>.<kind>-<pid>-<8 random characters>``;
# folders of the same kind without a pid were made by an earlier version of this code.
_TEMP_DIR_KINDS = ("work", "new", "old")


def make_temp_dir(out: Path, kind: str) -> Path:
    """A new empty folder ``.<out name>.<kind>-<pid>-<random>`` beside ``out`` (see ``remove_stale_temp_dirs``)."""
    if kind not in _TEMP_DIR_KINDS:
        raise ValueError(f"temporary folder kind must be one of {_TEMP_DIR_KINDS}, got {kind!r}")
    return Path(tempfile.mkdtemp(prefix=f".{out.name}.{kind}-{os.getpid()}-", dir=out.parent))


def _process_alive(pid: int) -> bool:
    """True if process ``pid`` exists (another user's too); a number no process can have is not."""
    try:
        os.kill(pid, 0)
    except (ProcessLookupError, OverflowError):
        return False
    except PermissionError:
        return True
    return True


# Temp files beside an output: ``.<name>.<pid>-<8 random characters>.tmp`` (``_write_temp``), and
# ``.bak`` backups of PngBatch.commit; without a pid they were made by an earlier version.
_TEMP_FILE = re.compile(r"\.(?P<name>.+)\.(?:(?P<pid>\d+)-)?[a-z0-9_]{8}\.tmp(?:\.bak)?")


def remove_stale_temp_files(targets: Iterable[Path]) -> list[Path]:
    """Removes the hidden temp files that a killed run left beside any of ``targets``; returns them.

    Only files named by ``_write_temp`` for one of these targets, and only when the process that
    made them is gone (a concurrent run keeps its files).
    """
    names: dict[Path, set[str]] = {}
    for target in targets:
        names.setdefault(target.parent, set()).add(target.name)
    removed = []
    for folder, wanted in names.items():
        if not folder.is_dir():
            continue
        for path in sorted(folder.iterdir()):
            match = _TEMP_FILE.fullmatch(path.name)
            if not match or match["name"] not in wanted or not path.is_file() or path.is_symlink():
                continue
            if match["pid"] is not None and _process_alive(int(match["pid"])):
                continue
            path.unlink(missing_ok=True)
            removed.append(path)
    return removed


def remove_stale_temp_dirs(out: str | Path) -> list[Path]:
    """Removes the temporary folders beside ``out`` that a killed run left behind; returns them.

    Only folders named by ``make_temp_dir`` (or ``replace_dir``) for this ``out`` are touched, and
    only when the process that made them is gone: a concurrent run keeps its folders. A run killed
    inside ``replace_dir`` may have moved ``out`` aside without putting the new one in place: then
    the previous ``out`` is put back.
    """
    out = Path(out)
    pattern = re.compile(rf"\.{re.escape(out.name)}\.(?:{'|'.join(_TEMP_DIR_KINDS)})-(?:(\d+)-)?[a-z0-9_]{{8}}")
    removed = []
    if not out.parent.is_dir():
        return removed
    for path in sorted(out.parent.iterdir()):
        match = pattern.fullmatch(path.name)
        if not match or path.is_symlink() or not path.is_dir():
            continue
        if match.group(1) is not None and _process_alive(int(match.group(1))):
            continue
        if path.name.startswith(f".{out.name}.old-") and (path / "old").is_dir() and not os.path.lexists(out):
            os.rename(path / "old", out)
        shutil.rmtree(path, ignore_errors=True)
        removed.append(path)
    return removed


def replace_dir(new: str | Path, out: str | Path) -> None:
    """Puts the finished folder ``new`` (a sibling of ``out``) in place of ``out`` by renames.

    An existing ``out`` is moved aside first and deleted afterwards; if the final rename fails
    it is put back. ``new`` gets a plain mkdir()'s permissions (``tempfile.mkdtemp`` makes 0700).
    """
    new, out = Path(new), Path(out)
    os.chmod(new, file_mode(directory=True))
    old = None
    if out.exists() or out.is_symlink():
        old = make_temp_dir(out, "old") / "old"
        os.rename(out, old)
    try:
        os.rename(new, out)
    except BaseException:
        if old is not None:
            os.rename(old, out)  # put the previous output back
        raise
    if old is not None:
        shutil.rmtree(old.parent, ignore_errors=True)


@contextlib.contextmanager
def atomic_dir(out: str | Path) -> Iterator[Path]:
    """``with atomic_dir(out) as tmp:`` write the folder's files into ``tmp``; on success ``tmp``
    replaces ``out`` (``replace_dir``), on any error it is removed and ``out`` stays as it was.
    The one way every stage writes a whole output folder; a killed run's ``tmp`` is removed by the
    next ``remove_stale_temp_dirs(out)``."""
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    for stale in remove_stale_temp_dirs(out):
        LOG.info("removed %s, left behind by a run that was killed", stale)
    tmp = make_temp_dir(out, "new")
    try:
        yield tmp
        replace_dir(tmp, out)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)


def sha256_file(path: str | Path, chunk: int = 1 << 20) -> str:
    """Hex sha256 of a file's bytes, read in chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(chunk):
            digest.update(block)
    return digest.hexdigest()
