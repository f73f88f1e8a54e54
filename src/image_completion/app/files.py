"""The files a fill reads and writes: a photo and its mask (or alpha) checked and loaded, output
files and folders checked before any work (free for a PNG, writable, never an input by any path),
folders of photos paired with their masks by file stem. Errors start with the file's path
(``FillError`` or ``images.ImageError``); what a fill does with them is ``app.fill``.
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path
from typing import Iterable, Iterator

import numpy as np

from image_completion.errors import InputError
from image_completion.images import ImageError, load_image_and_alpha, opened

# Mask files: luminance >= 128 is a hole (JPEG masks are not exactly 0/255); photo alpha: < 128 is a hole.
MASK_THRESHOLD = 128


class FillError(InputError, ValueError):
    """A bad input for filling (mask, model, folder...); the message starts with the file's path."""


def mask_from_file(path: str | Path) -> np.ndarray:
    """Reads a mask image as bool (H, W), True = hole (white).

    Luminance >= 128 is a hole, so JPEG masks (never exactly 0/255) work. A transparent pixel of
    a mask with alpha counts as black (composited on black): it is not a hole.
    """
    rgb, alpha = load_image_and_alpha(path)
    # ITU-R 601 luma, the same weights as Pillow's convert("L"); (H, W) float
    luma = rgb[..., 0] * 0.299 + rgb[..., 1] * 0.587 + rgb[..., 2] * 0.114
    if alpha is not None:
        luma = luma * (alpha / 255.0)
    return luma >= MASK_THRESHOLD - 0.5


def check_hole(hole: np.ndarray, mask_name: str, from_alpha: bool = False) -> None:
    """Refuses an empty mask and a mask with no known pixel (nothing to fill / nothing to go on)."""
    if not hole.any():
        if from_alpha:
            raise FillError(
                f"{mask_name}: no transparent pixel, so no hole; make the area to fill transparent "
                f"or give a MASK file (white = hole)"
            )
        raise FillError(f"{mask_name}: the mask has no hole (no white pixel); paint the area to fill in white")
    if hole.all():
        raise FillError(f"{mask_name}: the mask covers the whole photo; at least some pixels must stay known")


def check_pixels(path: str | Path, max_pixels: int | None) -> None:
    """Refuses an image that declares more than ``max_pixels`` pixels (the pixel budget; read from
    its header, before anything is decoded)."""
    if max_pixels is None:
        return
    try:
        with opened(path) as im:
            width, height = im.size
    except ImageError:
        return  # missing or not an image: load_image_and_alpha says which, in its words
    if width * height > max_pixels:
        raise FillError(f"{path}: {width}x{height} is {width * height} pixels; the limit is {max_pixels} pixels (--max-pixels)")


def load_pair(photo: str | Path, mask: str | Path | None, max_pixels: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Reads and checks a photo and its mask: (uint8 (H, W, 3), bool (H, W) hole).

    Without ``mask`` the photo's alpha channel is the mask (alpha < 128 = hole). Either declaring
    more than ``max_pixels`` (None: no limit) is refused before it is decoded.
    """
    for path in (photo, mask):
        if path is not None:
            check_pixels(path, max_pixels)
    image, alpha = load_image_and_alpha(photo)
    if mask is None:
        if alpha is None:
            raise FillError(f"{photo}: the photo has no alpha channel; give a MASK file (white = hole)")
        hole = alpha < MASK_THRESHOLD
        check_hole(hole, f"{photo} (alpha channel)", from_alpha=True)
        return image, hole
    hole = mask_from_file(mask)
    if hole.shape != image.shape[:2]:
        raise FillError(
            f"{mask}: mask size {hole.shape[1]}x{hole.shape[0]} differs from the photo's "
            f"{image.shape[1]}x{image.shape[0]} ({photo}); the mask must have the photo's width x height"
        )
    check_hole(hole, str(mask))
    return image, hole


# images._write_temp first writes ".<name>.<pid>-<8 characters>.tmp" beside the output (PngBatch
# adds ".bak" for a backup): 19 bytes and a pid of up to 7 digits more than the name, within 255.
NAME_MAX = 255
LONGEST_OUTPUT_NAME = NAME_MAX - len("..-12345678.tmp.bak") - 7


def _check_output_slot(out: Path) -> None:
    """Refuses an output path taken by a folder or anything else that is not a regular file, and a
    name too long for the temp file written beside it first."""
    length = len(os.fsencode(out.name))
    if length > LONGEST_OUTPUT_NAME:
        raise FillError(
            f"{out}: the file name is {length} bytes long, at most {LONGEST_OUTPUT_NAME} are allowed "
            "(a hidden temp file named after it is written first); choose a shorter name"
        )
    if out.is_dir():
        raise FillError(f"{out}: is a directory; remove it or choose another output name")
    if os.path.lexists(out) and not out.is_file():
        raise FillError(f"{out}: exists and is not a regular file; remove it or choose another output name")


def _check_writable(folder: Path, out: Path) -> None:
    if not os.access(folder, os.W_OK | os.X_OK):
        raise FillError(f"{out}: no permission to write in {folder}")


def check_output_file(out: str | Path) -> Path:
    out = Path(out)
    if out.suffix.lower() != ".png":
        raise FillError(f"{out}: the output is written as PNG; give a file name ending in .png")
    _check_output_slot(out)
    if not out.parent.is_dir():
        raise FillError(f"{out}: the output's folder {out.parent} does not exist")
    _check_writable(out.parent, out)
    return out


def check_output_folder(out_dir: str | Path) -> Path:
    """Checks that ``out_dir`` is a folder, or can be made as one, that this process may write in."""
    out_dir = Path(out_dir)
    if os.path.lexists(out_dir) and not out_dir.is_dir():
        raise FillError(f"{out_dir}: with a folder of photos the output must be a folder, and this is a file")
    existing = out_dir
    while not existing.exists():
        existing = existing.parent
    if not existing.is_dir():
        raise FillError(f"{out_dir}: cannot make the output folder: {existing} is a file")
    _check_writable(existing, out_dir)
    return out_dir


def _same_file(a: Path, b: Path) -> bool:
    """True when ``a`` and ``b`` are one file (device and inode): by a link, a bind mount or a
    case-insensitive file system too. A path that does not exist (yet) is no other file."""
    try:
        return os.path.samefile(a, b)
    except OSError:
        return False


def refuse_overwriting_inputs(out: Path, inputs: Iterable[Path | None]) -> None:
    """An output that is one of the inputs would destroy the user's photo or mask: refuse."""
    for path in inputs:
        if path is not None and _same_file(out, path):
            raise FillError(f"{out}: the output would overwrite an input file ({path}); choose another output name")


@contextlib.contextmanager
def naming(out: Path) -> Iterator[None]:
    """An ``OSError`` in writing names the output (a full disk names no file, a failed rename the
    hidden temp file), so the one-line error says which output could not be written."""
    try:
        yield
    except OSError as err:
        target = err.filename2 or out
        raise OSError(err.errno, err.strerror or str(err), str(target)) from err


def _image_files(directory: Path) -> dict[str, Path]:
    """stem -> file for the files of ``directory``; two files with one stem is an error.

    Names starting with "." (.DS_Store, editor swap files) and sub-folders are skipped.
    """
    files: dict[str, Path] = {}
    for path in sorted(directory.iterdir()):
        if path.name.startswith(".") or path.is_dir():
            continue
        if path.stem in files:
            raise FillError(f"{path}: two files share the stem {path.stem!r} ({files[path.stem].name}); rename one")
        files[path.stem] = path
    return files


def _raise_problems(problems: list[str]) -> None:
    """Raises ``FillError`` for the first problem, saying how many more there are."""
    if problems:
        extra = len(problems) - 1
        more = f" (and {extra} more bad file{'s' * (extra > 1)}; nothing was written)" if extra else ""
        raise FillError(problems[0] + more)


def _folder_masks(photos: dict[str, Path], photo_dir: Path, mask_dir: str | Path | None) -> dict[str, Path]:
    """stem -> mask file of ``mask_dir`` ({} without one); a mask without a photo is an error."""
    if mask_dir is None:
        return {}
    mask_dir = Path(mask_dir)
    if not mask_dir.is_dir():
        raise FillError(f"{mask_dir}: with a folder of photos, MASK must be a folder of masks too")
    masks = _image_files(mask_dir)
    unmatched = sorted(set(masks) - set(photos))
    if unmatched:
        raise FillError(f"{masks[unmatched[0]]}: no photo with the stem {unmatched[0]!r} in {photo_dir}")
    return masks


def _output_problems(outputs: dict[str, Path], inputs: list[Path]) -> list[str]:
    problems = []
    for out in outputs.values():
        try:
            _check_output_slot(out)
            refuse_overwriting_inputs(out, inputs)
        except FillError as err:
            problems.append(str(err))
    return problems


def plan_folder(
    photo_dir: str | Path, mask_dir: str | Path | None, out_dir: str | Path, max_pixels: int | None = None
) -> list[tuple[Path, Path | None, Path]]:
    """Pairs photos and masks by file stem and checks every output and every pair before any work.

    Returns [(photo, mask or None for the photo's alpha, output PNG)]. Every output path must be
    free for a PNG (checked first, before any photo is read). Every non-hidden file of the folders
    must be an image; every photo needs a mask of the same stem (when ``mask_dir`` is given) and
    every mask a photo. Raises ``FillError``/``ImageError`` for the first bad file, saying how
    many more were bad.
    """
    photo_dir, out_dir = Path(photo_dir), check_output_folder(out_dir)
    photos = _image_files(photo_dir)
    if not photos:
        raise FillError(f"{photo_dir}: the folder holds no photos")
    masks = _folder_masks(photos, photo_dir, mask_dir)
    outputs = {stem: out_dir / f"{stem}.png" for stem in photos}
    _raise_problems(_output_problems(outputs, [*photos.values(), *masks.values()]))
    plan, problems = [], []
    for stem, photo in photos.items():
        mask = masks.get(stem)
        if mask_dir is not None and mask is None:
            problems.append(f"{photo}: no mask with the stem {stem!r} in {mask_dir}")
            continue
        try:
            load_pair(photo, mask, max_pixels)
        except (FillError, ImageError) as err:
            problems.append(str(err))
            continue
        plan.append((photo, mask, outputs[stem]))
    _raise_problems(problems)
    return plan


def make_dirs(folder: Path) -> list[Path]:
    """Creates ``folder`` and its missing parents; returns the folders it created, deepest first."""
    missing = []
    while not folder.exists():
        missing.append(folder)
        folder = folder.parent
    for made, path in enumerate(reversed(missing)):
        try:
            path.mkdir()
        except BaseException:
            remove_empty(missing[len(missing) - made :])
            raise
    return missing


def remove_empty(folders: list[Path]) -> None:
    for folder in folders:
        with contextlib.suppress(OSError):
            folder.rmdir()  # only empty ones: never anything of the user's
