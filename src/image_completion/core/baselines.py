"""Classical inpainting baselines the generators are compared against (``evaluate``, ``fill``).

Each is ``(image float32 (H, W, 3) in [0, 1], mask (H, W), 1 = hole) -> filled float32 (H, W, 3)``,
a composite: known pixels exactly as given. The methods: ``docs/architecture.md``, "Baselines".
Inputs are checked where they enter (params, ``fill``'s photo and mask); here only assertions.
"""

from __future__ import annotations

from typing import Callable

import cv2
import numpy as np
from skimage.restoration import inpaint_biharmonic

from image_completion.config import BASELINES


def _check_inputs(image: np.ndarray, mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(float32 image, bool hole mask); callers pass checked inputs (module docstring)."""
    image = np.asarray(image)
    assert image.ndim == 3 and image.shape[-1] == 3 and np.asarray(mask).shape == image.shape[:2], (image.shape, mask.shape)
    assert np.issubdtype(image.dtype, np.floating), image.dtype
    hole = np.asarray(mask) > 0.5
    assert not hole.all(), "a baseline needs at least one known pixel"
    return image.astype(np.float32), hole


def _composite(filled: np.ndarray, image: np.ndarray, hole: np.ndarray) -> np.ndarray:
    """Known pixels from ``image``, hole pixels from ``filled``; float32, clipped to [0, 1]."""
    out = np.where(hole[..., None], np.clip(filled, 0.0, 1.0), image)
    return out.astype(np.float32)


def fill_biharmonic(image: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """scikit-image biharmonic inpainting of each channel."""
    image, hole = _check_inputs(image, mask)
    if not hole.any():
        return image.copy()
    filled = inpaint_biharmonic(image, hole, channel_axis=-1)
    return _composite(filled, image, hole)


def fill_8bit(image: np.ndarray, mask: np.ndarray, inpaint: Callable[[np.ndarray, np.ndarray], np.ndarray]) -> np.ndarray:
    """A fill by an 8-bit inpainter, composited: ``inpaint(rgb uint8 (H, W, 3), hole uint8 (H, W),
    255 = hole) -> filled uint8 (H, W, 3)``; the known pixels stay exactly as given (float32)."""
    image, hole = _check_inputs(image, mask)
    if not hole.any():
        return image.copy()
    assert 0.0 <= image.min() and image.max() <= 1.0, (image.min(), image.max())  # uint8 would wrap
    filled_u8 = inpaint(np.round(image * 255.0).astype(np.uint8), hole.astype(np.uint8) * 255)
    return _composite(filled_u8.astype(np.float32) / 255.0, image, hole)


def _inpaint_opencv(radius: int, flag: int):
    """``cv2.inpaint`` (8-bit 3-channel image, 8-bit mask, non-zero = inpaint) for ``fill_8bit``."""
    assert radius >= 1, radius
    return lambda image_u8, hole_u8: cv2.inpaint(image_u8, hole_u8, float(radius), flag)


def _inpaint_fsr_fast(image_u8: np.ndarray, hole_u8: np.ndarray) -> np.ndarray:
    """``cv2.xphoto.inpaint``, fast profile, for ``fill_8bit``. xphoto's conventions differ from
    ``cv2.inpaint``: the mask marks the KNOWN pixels (non-zero), and the image is 8-bit BGR (the
    method works in a luminance-chrominance space)."""
    bgr = np.ascontiguousarray(image_u8[..., ::-1])
    out = np.zeros_like(bgr)
    cv2.xphoto.inpaint(bgr, 255 - hole_u8, out, cv2.xphoto.INPAINT_FSR_FAST)
    return out[..., ::-1]


def fill_telea(image: np.ndarray, mask: np.ndarray, inpaint_radius: int) -> np.ndarray:
    """OpenCV Telea (fast marching) inpainting with neighbourhood radius ``inpaint_radius`` pixels."""
    return fill_8bit(image, mask, _inpaint_opencv(inpaint_radius, cv2.INPAINT_TELEA))


def fill_navier_stokes(image: np.ndarray, mask: np.ndarray, inpaint_radius: int) -> np.ndarray:
    """OpenCV Navier-Stokes inpainting with neighbourhood radius ``inpaint_radius`` pixels."""
    return fill_8bit(image, mask, _inpaint_opencv(inpaint_radius, cv2.INPAINT_NS))


def fill_mean(image: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Fills the hole with the per-channel mean of the known pixels."""
    image, hole = _check_inputs(image, mask)
    mean = image[~hole].mean(axis=0)  # (3,)
    filled = np.broadcast_to(mean, image.shape)
    return _composite(filled, image, hole)


def fill_fsr_fast(image: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """OpenCV-contrib frequency-selective reconstruction (``cv2.xphoto.inpaint``, fast profile)."""
    return fill_8bit(image, mask, _inpaint_fsr_fast)


# The blend's weights, chosen on the validation photos (never the test photos) by
# `python -m image_completion.stages.blend` (reports/baselines/blend_selection.json; the test
# tests/core/test_baselines.py keeps these equal to that file's choice).
BLEND_WEIGHTS: dict[str, float] = {"biharmonic": 0.75, "fsr_fast": 0.25}


def fill_blend(image: np.ndarray, mask: np.ndarray, inpaint_radius: int, weights: dict[str, float] | None = None) -> np.ndarray:
    """Pixel-weighted mean of classical fills (``weights``: method -> weight, summing to 1;
    default ``BLEND_WEIGHTS``); known pixels exactly as given."""
    weights = BLEND_WEIGHTS if weights is None else weights
    assert weights and abs(sum(weights.values()) - 1.0) < 1e-9 and "blend" not in weights, weights
    image, hole = _check_inputs(image, mask)
    if not hole.any():
        return image.copy()
    mixed = sum(w * run_baseline(name, image, mask, inpaint_radius=inpaint_radius) for name, w in weights.items())
    return _composite(mixed, image, hole)


# name -> (function, whether it takes inpaint_radius)
_BASELINE_FUNCTIONS: dict[str, tuple[Callable[..., np.ndarray], bool]] = {
    "biharmonic": (fill_biharmonic, False),
    "telea": (fill_telea, True),
    "navier_stokes": (fill_navier_stokes, True),
    "mean_fill": (fill_mean, False),
    "fsr_fast": (fill_fsr_fast, False),
    "blend": (fill_blend, True),
}
assert tuple(_BASELINE_FUNCTIONS) == BASELINES, "the config validates names against BASELINES"


def run_baseline(name: str, image: np.ndarray, mask: np.ndarray, *, inpaint_radius: int) -> np.ndarray:
    """Fills ``image`` where ``mask`` is 1 with the baseline ``name`` (see module docstring)."""
    function, takes_radius = _BASELINE_FUNCTIONS[name]
    if takes_radius:
        return function(image, mask, inpaint_radius)
    return function(image, mask)


def run_baseline_batch(name: str, images: np.ndarray, masks: np.ndarray, *, inpaint_radius: int) -> np.ndarray:
    """``run_baseline`` over a batch: images (N, H, W, 3), masks (N, H, W) -> (N, H, W, 3) float32."""
    images = np.asarray(images)
    masks = np.asarray(masks)
    assert images.ndim == 4 and masks.ndim == 3 and len(images) == len(masks), (images.shape, masks.shape)
    out = np.empty(images.shape, np.float32)
    for i in range(len(images)):
        out[i] = run_baseline(name, images[i], masks[i], inpaint_radius=inpaint_radius)
    return out
