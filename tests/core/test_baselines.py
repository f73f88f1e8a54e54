"""Baselines: known pixels untouched, plausible fills, clear errors."""

import numpy as np
import pytest

from image_completion.config import BASELINES
from image_completion.core import baselines


def _box_mask(size=24, top=8, left=8, side=8):
    mask = np.zeros((size, size), np.float32)
    mask[top : top + side, left : left + side] = 1.0
    return mask


def _gradient(size=24):
    # A linear ramp per channel (different directions): biharmonic reproduces it exactly.
    y, x = np.mgrid[0:size, 0:size].astype(np.float32) / (size - 1)
    return np.stack([0.1 + 0.8 * x, 0.2 + 0.6 * y, 0.5 * (x + y) * 0.9 + 0.05], axis=-1).astype(np.float32)


@pytest.mark.parametrize("name", BASELINES)
def test_known_pixels_unchanged_and_hole_filled(name):
    rng = np.random.default_rng(0)
    image = rng.uniform(0.2, 0.8, (24, 24, 3)).astype(np.float32)
    mask = _box_mask()
    filled = baselines.run_baseline(name, image, mask, inpaint_radius=3)
    assert filled.shape == image.shape and filled.dtype == np.float32
    known = mask == 0
    np.testing.assert_array_equal(filled[known], image[known])
    hole = filled[mask == 1]
    assert np.isfinite(hole).all()
    # Plausible: inside the range of the known colours, not left at 0 or at a hole constant.
    assert hole.min() >= 0.2 - 1 / 255 and hole.max() <= 0.8 + 1 / 255


@pytest.mark.parametrize("name", BASELINES)
def test_constant_image_is_filled_with_the_constant(name):
    image = np.full((20, 20, 3), [0.3, 0.6, 0.9], np.float32)
    mask = _box_mask(20, 5, 6, 9)
    filled = baselines.run_baseline(name, image, mask, inpaint_radius=3)
    # OpenCV works in 8 bits (rounding: half a grey level); its Telea implementation also
    # drifts by up to 2 grey levels on a flat 8-bit image (measured on OpenCV 4.x/5.0).
    atol = 2.5 / 255 if name == "telea" else 0.5 / 255 + 1e-6
    np.testing.assert_allclose(filled, image, atol=atol)


def test_biharmonic_reproduces_a_linear_gradient():
    image = _gradient()
    mask = _box_mask()
    filled = baselines.fill_biharmonic(image, mask)
    np.testing.assert_allclose(filled, image, atol=1e-3)
    # The mean fill cannot: its error in the hole is large.
    assert np.abs(baselines.fill_mean(image, mask) - image)[mask == 1].mean() > 0.05


def test_opencv_fills_a_gradient_closer_than_the_mean():
    image = _gradient()
    mask = _box_mask()
    mean_err = np.abs(baselines.fill_mean(image, mask) - image)[mask == 1].mean()
    for name in ("telea", "navier_stokes"):
        err = np.abs(baselines.run_baseline(name, image, mask, inpaint_radius=3) - image)[mask == 1].mean()
        assert err < 0.5 * mean_err, name


def test_mean_fill_uses_the_mean_of_the_known_pixels():
    image = np.zeros((4, 4, 3), np.float32)
    image[:, :2] = [1.0, 0.5, 0.0]
    mask = np.zeros((4, 4), np.float32)
    mask[0, 2:] = 1.0  # hole: two pixels of the zero half
    filled = baselines.fill_mean(image, mask)
    expected = image[mask == 0].mean(axis=0)  # 8 of 14 known pixels are (1, .5, 0)
    np.testing.assert_allclose(filled[0, 2], expected)
    np.testing.assert_allclose(expected, [8 / 14, 4 / 14, 0.0], rtol=1e-6)


def test_empty_hole_returns_the_image():
    image = np.random.default_rng(1).uniform(size=(12, 12, 3)).astype(np.float32)
    for name in BASELINES:
        out = baselines.run_baseline(name, image, np.zeros((12, 12)), inpaint_radius=2)
        np.testing.assert_array_equal(out, image)


def test_batch_matches_single():
    rng = np.random.default_rng(2)
    images = rng.uniform(size=(3, 16, 16, 3)).astype(np.float32)
    masks = np.stack([_box_mask(16, 2 + i, 3, 5) for i in range(3)])
    batch = baselines.run_baseline_batch("telea", images, masks, inpaint_radius=3)
    for i in range(3):
        np.testing.assert_array_equal(batch[i], baselines.fill_telea(images[i], masks[i], 3))
