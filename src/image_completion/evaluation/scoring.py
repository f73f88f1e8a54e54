"""Image-quality metrics and bootstrap intervals (pure numpy / scikit-image, no TensorFlow).

Per image: ``pred`` and ``target`` float (H, W, 3) in [0, 1], ``mask`` (H, W), 1 = hole, with at
least one hole pixel. Definitions (L1, PSNR, SSIM, their hole variants) and the paired bootstrap:
``docs/architecture.md``, "Metrics".
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence

import numpy as np
from skimage.metrics import structural_similarity

from image_completion.config import ALL_BUCKETS  # the overall aggregate's bucket name

MSE_FLOOR = 1e-10
PSNR_MAX = 10.0 * np.log10(1.0 / MSE_FLOOR)  # 100 dB
METRICS = ("l1_hole", "l1", "psnr_hole", "psnr", "ssim", "ssim_hole")
SSIM_SETTINGS = dict(
    data_range=1.0,
    gaussian_weights=True,
    sigma=1.5,
    win_size=11,
    use_sample_covariance=False,
    channel_axis=-1,
)


def _check_pair(pred: np.ndarray, target: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    pred = np.asarray(pred, np.float64)
    target = np.asarray(target, np.float64)
    assert pred.shape == target.shape and pred.ndim == 3 and pred.shape[-1] == 3, (pred.shape, target.shape)
    return pred, target


def _hole(mask: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    hole = np.asarray(mask) > 0.5
    assert hole.shape == shape[:2] and hole.any(), "a (H, W) mask with a hole: the hole metrics need one"
    return hole


def l1(pred: np.ndarray, target: np.ndarray, mask: np.ndarray | None = None) -> float:
    """Mean absolute error over the whole image, or over the hole pixels if ``mask`` is given."""
    pred, target = _check_pair(pred, target)
    diff = np.abs(pred - target)
    if mask is None:
        return float(diff.mean())
    return float(diff[_hole(mask, pred.shape)].mean())


def psnr(pred: np.ndarray, target: np.ndarray, mask: np.ndarray | None = None) -> float:
    """PSNR in dB (peak 1) over the whole image, or over the hole pixels if ``mask`` is given."""
    pred, target = _check_pair(pred, target)
    sq = (pred - target) ** 2
    mse = sq.mean() if mask is None else sq[_hole(mask, pred.shape)].mean()
    return float(10.0 * np.log10(1.0 / max(float(mse), MSE_FLOOR)))


def ssim_map(pred: np.ndarray, target: np.ndarray) -> tuple[float, np.ndarray]:
    """(mean SSIM as scikit-image reports it, full SSIM map (H, W, 3))."""
    pred, target = _check_pair(pred, target)
    assert min(pred.shape[:2]) >= SSIM_SETTINGS["win_size"], pred.shape
    value, full = structural_similarity(pred, target, full=True, **SSIM_SETTINGS)
    return float(value), full


def ssim(pred: np.ndarray, target: np.ndarray) -> float:
    """Mean SSIM of the whole image (settings in the module docstring)."""
    return ssim_map(pred, target)[0]


def score_image(pred: np.ndarray, target: np.ndarray, mask: np.ndarray) -> dict[str, float]:
    """Every metric of ``METRICS`` for one image."""
    hole = _hole(mask, np.shape(pred))
    value, full = ssim_map(pred, target)
    return {
        "l1_hole": l1(pred, target, mask),
        "l1": l1(pred, target),
        "psnr_hole": psnr(pred, target, mask),
        "psnr": psnr(pred, target),
        "ssim": value,
        "ssim_hole": float(full[hole].mean()),
    }


def bootstrap_mean_ci(
    values: Sequence[float] | np.ndarray, n_samples: int, seed: int, confidence: float = 0.95
) -> tuple[float, float, float]:
    """(mean, low, high): percentile bootstrap interval of the mean from ``n_samples`` resamples."""
    values = np.asarray(values, np.float64)
    assert values.ndim == 1 and values.size and np.isfinite(values).all(), values.shape
    assert n_samples >= 1 and 0.0 < confidence < 1.0, (n_samples, confidence)
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, values.size, size=(n_samples, values.size))  # (n_samples, n)
    means = values[idx].mean(axis=1)
    tail = 100.0 * (1.0 - confidence) / 2.0
    low, high = np.percentile(means, [tail, 100.0 - tail])
    return float(values.mean()), float(low), float(high)


def aggregate(
    rows: Iterable[Mapping[str, object]],
    metrics: Sequence[str],
    *,
    n_samples: int,
    seed: int,
) -> list[dict[str, object]]:
    """Means and bootstrap intervals per (method, bucket, metric), plus bucket ``"all"``.

    ``rows``: one mapping per (image, method) with keys ``method``, ``bucket`` and each metric.
    Returns long-format rows ``{method, bucket, metric, n, mean, ci_low, ci_high}``; methods and
    buckets keep their order of first appearance, ``"all"`` first.
    """
    groups: dict[tuple[str, str], dict[str, list[float]]] = {}
    methods: list[str] = []
    buckets: list[str] = [ALL_BUCKETS]
    for row in rows:
        method, bucket = str(row["method"]), str(row["bucket"])
        assert bucket != ALL_BUCKETS, f"bucket name {ALL_BUCKETS!r} is reserved for the overall aggregate"
        if method not in methods:
            methods.append(method)
        if bucket not in buckets:
            buckets.append(bucket)
        for key in ((method, bucket), (method, ALL_BUCKETS)):
            per_metric = groups.setdefault(key, {m: [] for m in metrics})
            for m in metrics:
                per_metric[m].append(float(row[m]))
    out = []
    for method in methods:
        for bucket in buckets:
            if (method, bucket) not in groups:
                continue
            for m in metrics:
                values = groups[(method, bucket)][m]
                # Same seed for every method and metric of a bucket: paired resamples.
                mean, low, high = bootstrap_mean_ci(values, n_samples, seed)
                out.append(
                    {
                        "method": method,
                        "bucket": bucket,
                        "metric": m,
                        "n": len(values),
                        "mean": mean,
                        "ci_low": low,
                        "ci_high": high,
                    }
                )
    return out
