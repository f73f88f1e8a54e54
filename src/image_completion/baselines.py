"""Classical inpainting baselines the generator is compared against in ``evaluate``.

Every baseline is a pure function ``(image float32 (H, W, 3) in [0, 1], mask (H, W), 1 = hole)
-> filled float32 (H, W, 3)``. The result is a composite by construction: known pixels are
returned exactly as given (the OpenCV methods work on 8-bit images, so their known pixels are
pasted back from the float input rather than taken from the quantised result).

- ``biharmonic``: scikit-image ``inpaint_biharmonic`` (smooth biharmonic extension, per channel);
- ``telea``: OpenCV ``cv2.inpaint`` with ``INPAINT_TELEA`` (fast marching, Telea 2004);
- ``navier_stokes``: OpenCV ``cv2.inpaint`` with ``INPAINT_NS`` (Bertalmio et al. 2001);
- ``mean_fill``: every hole pixel gets the mean colour of the image's known pixels.
"""

from __future__ import annotations

from typing import Callable

import cv2
import numpy as np
from skimage.restoration import inpaint_biharmonic

from image_completion.config import BASELINES


def _check_inputs(image: np.ndarray, mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Validates shapes/ranges; returns (float32 image, bool hole mask)."""
    image = np.asarray(image)
    mask = np.asarray(mask)
    if image.ndim != 3 or image.shape[-1] != 3:
        raise ValueError(f"image must have shape (H, W, 3), got {image.shape}")
    if mask.shape != image.shape[:2]:
        raise ValueError(f"mask must have shape {image.shape[:2]} (the image's H, W), got {mask.shape}")
    if not np.issubdtype(image.dtype, np.floating):
        raise ValueError(f"image must be float in [0, 1], got dtype {image.dtype}")
    if image.size and (image.min() < 0.0 or image.max() > 1.0 or not np.isfinite(image).all()):
        raise ValueError("image values must lie in [0, 1]")
    hole = mask > 0.5
    if hole.all():
        raise ValueError("mask covers the whole image: a baseline needs at least one known pixel")
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


def _fill_opencv(image: np.ndarray, mask: np.ndarray, radius: int, flag: int) -> np.ndarray:
    if isinstance(radius, bool) or not isinstance(radius, (int, np.integer)) or radius < 1:
        raise ValueError(f"inpaint_radius must be a positive integer, got {radius!r}")
    image, hole = _check_inputs(image, mask)
    if not hole.any():
        return image.copy()
    # cv2.inpaint takes 8-bit 3-channel images and an 8-bit mask (non-zero = inpaint).
    image_u8 = np.round(image * 255.0).astype(np.uint8)
    mask_u8 = hole.astype(np.uint8) * 255
    filled_u8 = cv2.inpaint(image_u8, mask_u8, float(radius), flag)
    return _composite(filled_u8.astype(np.float32) / 255.0, image, hole)


def fill_telea(image: np.ndarray, mask: np.ndarray, inpaint_radius: int) -> np.ndarray:
    """OpenCV Telea (fast marching) inpainting with neighbourhood radius ``inpaint_radius`` pixels."""
    return _fill_opencv(image, mask, inpaint_radius, cv2.INPAINT_TELEA)


def fill_navier_stokes(image: np.ndarray, mask: np.ndarray, inpaint_radius: int) -> np.ndarray:
    """OpenCV Navier-Stokes inpainting with neighbourhood radius ``inpaint_radius`` pixels."""
    return _fill_opencv(image, mask, inpaint_radius, cv2.INPAINT_NS)


def fill_mean(image: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Fills the hole with the per-channel mean of the known pixels."""
    image, hole = _check_inputs(image, mask)
    mean = image[~hole].mean(axis=0)  # (3,)
    filled = np.broadcast_to(mean, image.shape)
    return _composite(filled, image, hole)


# name -> (function, whether it takes inpaint_radius)
_BASELINE_FUNCTIONS: dict[str, tuple[Callable[..., np.ndarray], bool]] = {
    "biharmonic": (fill_biharmonic, False),
    "telea": (fill_telea, True),
    "navier_stokes": (fill_navier_stokes, True),
    "mean_fill": (fill_mean, False),
}
if tuple(_BASELINE_FUNCTIONS) != BASELINES:  # the config validates names against BASELINES
    raise ImportError(f"baselines.py defines {list(_BASELINE_FUNCTIONS)} but config.BASELINES is {list(BASELINES)}")


def run_baseline(name: str, image: np.ndarray, mask: np.ndarray, *, inpaint_radius: int) -> np.ndarray:
    """Fills ``image`` where ``mask`` is 1 with the baseline ``name`` (see module docstring)."""
    if name not in _BASELINE_FUNCTIONS:
        raise ValueError(f"unknown baseline {name!r}; allowed: {list(_BASELINE_FUNCTIONS)}")
    function, takes_radius = _BASELINE_FUNCTIONS[name]
    if takes_radius:
        return function(image, mask, inpaint_radius)
    return function(image, mask)


def run_baseline_batch(
    name: str, images: np.ndarray, masks: np.ndarray, *, inpaint_radius: int
) -> np.ndarray:
    """``run_baseline`` over a batch: images (N, H, W, 3), masks (N, H, W) -> (N, H, W, 3) float32."""
    images = np.asarray(images)
    masks = np.asarray(masks)
    if images.ndim != 4 or masks.ndim != 3 or len(images) != len(masks):
        raise ValueError(f"need images (N, H, W, 3) and masks (N, H, W), got {images.shape} and {masks.shape}")
    out = np.empty(images.shape, np.float32)
    for i in range(len(images)):
        out[i] = run_baseline(name, images[i], masks[i], inpaint_radius=inpaint_radius)
    return out
