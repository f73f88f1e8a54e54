"""Fixtures and helpers shared by the test modules."""

import numpy as np
from PIL import Image
from skimage import data

from http_fixture import http_server  # noqa: F401 - the loopback HTTP server fixture


def skimage_photo(name: str, height: int, width: int) -> np.ndarray:
    """A real photo bundled with scikit-image (not in the data set), resized: uint8 (H, W, 3)."""
    image = getattr(data, name)()
    return np.asarray(Image.fromarray(image).resize((width, height), Image.Resampling.BILINEAR))


def box_hole(height: int, width: int, top: int, left: int, h: int, w: int) -> np.ndarray:
    """A bool (H, W) mask with one rectangular hole (True)."""
    hole = np.zeros((height, width), bool)
    hole[top : top + h, left : left + w] = True
    return hole

