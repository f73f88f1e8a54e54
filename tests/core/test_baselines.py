"""Baselines: known pixels untouched, plausible fills, clear errors."""

import json
from pathlib import Path

import numpy as np
import pytest

from image_completion.config import BASELINES
from image_completion.core import baselines
from image_completion.evaluation import blends

ROOT = Path(__file__).resolve().parents[2]


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
    # drifts by up to 2 grey levels on a flat 8-bit image, FSR by 1 (measured on OpenCV 4.x/5.0).
    atol = {"telea": 2.5 / 255, "fsr_fast": 1.5 / 255}.get(name, 0.5 / 255 + 1e-6)
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


# ----------------------------------------------------------------------------- FSR and the blend


def _smooth_photo(size=48):
    y, x = np.mgrid[0:size, 0:size].astype(np.float32) / size
    return np.stack([0.2 + 0.5 * x, 0.3 + 0.4 * y, 0.5 + 0.2 * x * y], axis=-1).astype(np.float32)


def test_fsr_fast_fills_a_smooth_hole_and_keeps_known_pixels():
    image = _smooth_photo()
    mask = np.zeros(image.shape[:2], np.float32)
    mask[16:30, 18:34] = 1
    out = baselines.run_baseline("fsr_fast", image, mask, inpaint_radius=3)
    hole = mask > 0.5
    assert np.array_equal(out[~hole], image[~hole])
    # A smooth gradient is reconstructed to within 8-bit rounding plus a little; the mean fill is far worse.
    assert np.abs(out[hole] - image[hole]).mean() < 0.02
    mean = baselines.run_baseline("mean_fill", image, mask, inpaint_radius=3)
    assert np.abs(out[hole] - image[hole]).mean() < 0.3 * np.abs(mean[hole] - image[hole]).mean()


def test_fsr_fast_reads_rgb_not_bgr():
    # A hole in a pure-red field must come back red (xphoto works on BGR: a missing flip turns it blue).
    image = np.zeros((32, 32, 3), np.float32)
    image[..., 0] = 0.9
    mask = np.zeros((32, 32), np.float32)
    mask[10:20, 10:20] = 1
    out = baselines.run_baseline("fsr_fast", image, mask, inpaint_radius=3)
    assert out[15, 15, 0] > 0.8 and out[15, 15, 2] < 0.1


def test_blend_is_the_weighted_mean_of_its_fills():
    image = _smooth_photo()
    rng = np.random.default_rng(0)
    image = np.clip(image + rng.normal(0, 0.05, image.shape), 0, 1).astype(np.float32)
    mask = np.zeros(image.shape[:2], np.float32)
    mask[10:25, 5:40] = 1
    out = baselines.run_baseline("blend", image, mask, inpaint_radius=3)
    expected = sum(w * baselines.run_baseline(m, image, mask, inpaint_radius=3) for m, w in baselines.BLEND_WEIGHTS.items())
    hole = mask > 0.5
    np.testing.assert_allclose(out[hole], np.clip(expected, 0, 1)[hole], atol=1e-6)
    assert np.array_equal(out[~hole], image[~hole])


def test_blend_weights_are_the_ones_chosen_on_validation():
    selection = json.loads((ROOT / "reports" / "baselines" / "blend_selection.json").read_text())
    assert selection["chosen"] == baselines.BLEND_WEIGHTS
    best = blends.choose(selection["candidates"])
    assert best["weights"] == selection["chosen"]


def test_blend_choice_is_the_smallest_rank_sum():
    rows = [
        {"weights": {"a": 1.0}, "scores": {"all": {"l1_hole": 0.040, "psnr_hole": 29.0}}},  # ranks 1 + 0
        {"weights": {"b": 1.0}, "scores": {"all": {"l1_hole": 0.030, "psnr_hole": 28.0}}},  # ranks 0 + 2
        {"weights": {"c": 1.0}, "scores": {"all": {"l1_hole": 0.050, "psnr_hole": 28.5}}},  # ranks 2 + 1
    ]
    assert blends.choose(rows)["weights"] == {"a": 1.0}
    assert all(abs(sum(w.values()) - 1) < 1e-9 for w in blends.candidates())
