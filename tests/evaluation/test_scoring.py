"""Scoring metrics on hand-computed examples; bootstrap intervals; aggregation."""

import numpy as np
import pytest

from image_completion.evaluation import scoring


def _pair():
    target = np.zeros((16, 16, 3), np.float32)
    pred = target.copy()
    mask = np.zeros((16, 16), np.float32)
    mask[:4, :4] = 1.0  # 16 hole pixels of 256
    pred[:4, :4] = 0.1  # error 0.1 on every hole pixel and channel
    return pred, target, mask


def test_l1_whole_and_hole():
    pred, target, mask = _pair()
    assert scoring.l1(pred, target, mask) == pytest.approx(0.1)
    assert scoring.l1(pred, target) == pytest.approx(0.1 * 16 / 256)


def test_psnr_on_a_known_mse():
    pred, target, mask = _pair()
    # MSE_hole = 0.01 -> 20 dB; whole image MSE = 0.01 / 16 -> 20 + 10 log10(16).
    assert scoring.psnr(pred, target, mask) == pytest.approx(20.0)
    assert scoring.psnr(pred, target) == pytest.approx(20.0 + 10 * np.log10(16))
    assert scoring.psnr(target, target) == pytest.approx(scoring.PSNR_MAX) == pytest.approx(100.0)


def test_ssim_identical_is_one_and_noise_lowers_it():
    rng = np.random.default_rng(0)
    image = rng.uniform(size=(24, 24, 3))
    assert scoring.ssim(image, image) == pytest.approx(1.0)
    noisy = np.clip(image + rng.normal(0, 0.2, image.shape), 0, 1)
    assert scoring.ssim(noisy, image) < 0.9


def test_score_image_keys_and_values():
    rng = np.random.default_rng(1)
    target = rng.uniform(size=(16, 16, 3))
    mask = np.zeros((16, 16))
    mask[4:10, 4:10] = 1
    pred = target.copy()
    pred[mask == 1] = 0.5
    scores = scoring.score_image(pred, target, mask)
    assert tuple(scores) == scoring.METRICS
    assert scores["ssim_hole"] < scores["ssim"] <= 1.0
    assert scores["psnr"] > scores["psnr_hole"]
    exact = scoring.score_image(target, target, mask)
    assert exact["l1_hole"] == 0 and exact["ssim_hole"] == pytest.approx(1.0)


def test_bootstrap_contains_mean_and_is_deterministic():
    values = np.random.default_rng(3).normal(5.0, 1.0, 50)
    mean, low, high = scoring.bootstrap_mean_ci(values, 500, seed=7)
    assert mean == pytest.approx(values.mean())
    assert low < mean < high
    # Roughly mean +- 1.96 * sd / sqrt(n).
    half = 1.96 * values.std() / np.sqrt(values.size)
    assert (high - low) == pytest.approx(2 * half, rel=0.25)
    assert scoring.bootstrap_mean_ci(values, 500, seed=7) == (mean, low, high)
    assert scoring.bootstrap_mean_ci(values, 500, seed=8) != (mean, low, high)
    assert scoring.bootstrap_mean_ci([2.0, 2.0, 2.0], 100, seed=0) == (2.0, 2.0, 2.0)


def test_aggregate_groups_buckets_and_pairs_resamples():
    rows = []
    for i in range(6):
        bucket = "0-10%" if i < 3 else "10-20%"
        rows.append({"method": "a", "bucket": bucket, "x": float(i)})
        rows.append({"method": "b", "bucket": bucket, "x": float(i) + 1.0})
    out = scoring.aggregate(rows, ["x"], n_samples=200, seed=0)
    table = {(r["method"], r["bucket"]): r for r in out}
    assert [(r["method"], r["bucket"]) for r in out] == [
        ("a", "all"),
        ("a", "0-10%"),
        ("a", "10-20%"),
        ("b", "all"),
        ("b", "0-10%"),
        ("b", "10-20%"),
    ]
    assert table[("a", "all")]["n"] == 6 and table[("a", "all")]["mean"] == pytest.approx(2.5)
    assert table[("a", "0-10%")]["mean"] == pytest.approx(1.0)
    # b = a + 1 image by image; paired resampling shifts the interval by exactly 1.
    for bucket in ("all", "0-10%", "10-20%"):
        assert table[("b", bucket)]["ci_low"] == pytest.approx(table[("a", bucket)]["ci_low"] + 1)
        assert table[("b", bucket)]["ci_high"] == pytest.approx(table[("a", bucket)]["ci_high"] + 1)
