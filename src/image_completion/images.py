"""Reading any photo as 8-bit RGB; writing PNGs, text files and output folders atomically.

Every stage that reads a user's or a source's image goes through ``load_rgb`` /
``load_image_and_alpha`` so that orientation (EXIF) and pixel formats (greyscale, palette,
RGBA, 16-bit, CMYK...) are handled in one place. Errors are ``ImageError`` whose message starts
with the file's path, so a warning or a failure always names the file.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
import warnings
from pathlib import Path
from typing import BinaryIO, Callable

import numpy as np
from PIL import Image, ImageOps

# Modes holding one channel of more than 8 bits: Pillow's own convert("RGB") clips them to 255
# instead of scaling, so they are rescaled from the 16-bit range by hand.
_WIDE_GREY_MODES = ("I;16", "I;16L", "I;16B", "I;16N", "I")


class ImageError(ValueError):
    """An image file that cannot be read or written; the message starts with its path."""


def _open_oriented(path: str | Path) -> Image.Image:
    """Opens, fully decodes and EXIF-transposes ``path`` (any decoding problem -> ImageError)."""
    path = Path(path)
    try:
        with warnings.catch_warnings():
            # A decompression-bomb *warning* (not error) is fine for big photos: they are downscaled.
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(path) as im:
                im.load()  # decode now: truncated/corrupt data fails here, not later
                oriented = ImageOps.exif_transpose(im)
                # exif_transpose returns a copy only when it rotated; copy so the file can close.
                return oriented.copy() if oriented is im else oriented
    except FileNotFoundError:
        raise ImageError(f"{path}: file not found") from None
    except IsADirectoryError:
        raise ImageError(f"{path}: is a directory, not an image") from None
    except Image.UnidentifiedImageError:
        raise ImageError(f"{path}: not a readable image (unknown or corrupt format)") from None
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError, EOFError) as err:
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
    if max_side < 1:
        raise ValueError(f"max_side must be positive, got {max_side}")
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


def _write_atomic(path: Path, write: Callable[[BinaryIO], None]) -> None:
    """Calls ``write(binary file)`` on a temp file next to ``path``, then renames it to ``path``.

    A crash mid-write leaves either the old file or none, never a truncated one; the file gets
    the permissions a plain open() would give (mkstemp's are 0600).
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            write(fh)
        os.chmod(tmp, file_mode())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_text_atomic(path: str | Path, text: str) -> None:
    """Writes ``text`` (UTF-8, line endings as given) to ``path`` via a temp file + rename."""
    data = text.encode("utf-8")
    _write_atomic(Path(path), lambda fh: fh.write(data))


def save_png_atomic(path: str | Path, array: np.ndarray) -> None:
    """Writes uint8 (H, W), (H, W, 3) or (H, W, 4) as a PNG via a temp file + rename.

    A crash mid-write leaves either the old file or none, never a truncated PNG.
    """
    path = Path(path)
    array = np.asarray(array)
    if array.dtype != np.uint8:
        raise ImageError(f"{path}: expected a uint8 array, got {array.dtype}")
    if not (array.ndim == 2 or (array.ndim == 3 and array.shape[2] in (3, 4))):
        raise ImageError(f"{path}: expected shape (H, W), (H, W, 3) or (H, W, 4), got {array.shape}")
    if array.shape[0] < 1 or array.shape[1] < 1:
        raise ImageError(f"{path}: empty image of shape {array.shape}")
    image = Image.fromarray(np.ascontiguousarray(array))
    _write_atomic(path, lambda fh: image.save(fh, format="PNG"))


def replace_dir(new: str | Path, out: str | Path) -> None:
    """Puts the finished folder ``new`` (a sibling of ``out``) in place of ``out`` by renames.

    An existing ``out`` is moved aside first and deleted afterwards; if the final rename fails
    it is put back. ``new`` gets a plain mkdir()'s permissions (``tempfile.mkdtemp`` makes 0700).
    """
    new, out = Path(new), Path(out)
    os.chmod(new, file_mode(directory=True))
    old = None
    if out.exists() or out.is_symlink():
        old = Path(tempfile.mkdtemp(prefix=f".{out.name}.old-", dir=out.parent)) / "old"
        os.rename(out, old)
    try:
        os.rename(new, out)
    except BaseException:
        if old is not None:
            os.rename(old, out)  # put the previous output back
        raise
    if old is not None:
        shutil.rmtree(old.parent, ignore_errors=True)


def sha256_file(path: str | Path, chunk: int = 1 << 20) -> str:
    """Hex sha256 of a file's bytes, read in chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(chunk):
            digest.update(block)
    return digest.hexdigest()
