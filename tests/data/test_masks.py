"""Mask generators, the bucketed evaluation masks and the `masks` stage's files."""

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml
from PIL import Image

from conftest import make_eval_mask_params
from image_completion.config import EvalMaskShapes, load_params
from image_completion.data import masks as M  # noqa: N812 - short alias used in every test
from image_completion.stages import masks as masks_stage

ROOT = Path(__file__).resolve().parents[2]


def _params(**changes) -> EvalMaskShapes:
    return make_eval_mask_params(**{"per_bucket": 3, "buckets": [0.0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6], **changes})


def _is_binary(m):
    return m.dtype == np.float32 and np.isin(m, (0.0, 1.0)).all()


def _bbox_fill(m):
    """Share of the holes' bounding box that is hole: 1 for a single rectangle."""
    rows, cols = np.nonzero(m)
    return m.sum() / ((np.ptp(rows) + 1) * (np.ptp(cols) + 1))


def test_box_mask_is_one_rectangle_with_sides_in_range():
    p = _params(box_min=0.25, box_max=0.5)
    rng = np.random.default_rng(0)
    seen_sizes = set()
    for _ in range(50):
        m = M.make_box_mask(rng, 40, p)
        assert m.shape == (40, 40) and _is_binary(m)
        rows, cols = np.nonzero(m)
        h, w = rows.max() - rows.min() + 1, cols.max() - cols.min() + 1
        assert m.sum() == h * w  # its bounding box is completely filled: one rectangle
        assert 10 <= h <= 20 and 10 <= w <= 20
        seen_sizes.add((h, w))
    assert len(seen_sizes) > 10  # random sizes, not one fixed box


def test_stroke_masks_are_free_form_and_follow_the_width_parameter():
    rng = np.random.default_rng(1)
    masks = [M.make_stroke_mask(rng, 64, _params()) for _ in range(30)]
    assert all(m.shape == (64, 64) and _is_binary(m) and m.sum() > 0 for m in masks)
    assert np.mean([_bbox_fill(m) for m in masks]) < 0.8  # strokes, not rectangles
    thin = _params(stroke_width_min=0.02, stroke_width_max=0.02)
    thick = _params(stroke_width_min=0.2, stroke_width_max=0.2)
    thin_ratio = np.mean([M.make_stroke_mask(np.random.default_rng(i), 64, thin).mean() for i in range(20)])
    thick_ratio = np.mean([M.make_stroke_mask(np.random.default_rng(i), 64, thick).mean() for i in range(20)])
    assert thick_ratio > 3 * thin_ratio


def test_generators_are_seeded():
    p = _params()
    for kind in ("box", "strokes", "mixed"):
        a = M.make_mask(kind, np.random.default_rng(7), 32, p)
        b = M.make_mask(kind, np.random.default_rng(7), 32, p)
        np.testing.assert_array_equal(a, b)
    different = [M.make_mask("strokes", np.random.default_rng(s), 32, p) for s in range(5)]
    assert len({m.tobytes() for m in different}) == 5


def test_mixed_follows_its_box_probability():
    always_box = _params(mixed_box_probability=1.0)
    never_box = _params(mixed_box_probability=0.0)
    for seed in range(5):
        rng = np.random.default_rng(seed)
        assert _bbox_fill(M.make_mask("mixed", rng, 32, always_box)) == 1.0
    strokes = [M.make_mask("mixed", np.random.default_rng(s), 32, never_box) for s in range(10)]
    assert np.mean([_bbox_fill(m) for m in strokes]) < 0.8


def test_an_unknown_kind_is_refused_where_the_params_are_built():
    with pytest.raises(ValueError, match="kind"):
        _params(kind="circles")


@pytest.mark.parametrize("kind,size", [("mixed", 64), ("box", 32), ("strokes", 16)])
def test_eval_masks_fill_every_bucket_deterministically(kind, size):
    p = _params(kind=kind, per_bucket=4)
    masks, ratios, buckets = M.make_eval_masks(p, size, seed=5)
    assert masks.shape == (24, size, size) and _is_binary(masks)
    labels = ["0.0-0.1", "0.1-0.2", "0.2-0.3", "0.3-0.4", "0.4-0.5", "0.5-0.6"]
    assert buckets == [label for label in labels for _ in range(4)]
    np.testing.assert_allclose(ratios, masks.mean(axis=(1, 2)))
    for i, (lo, hi) in enumerate(zip(p.buckets, p.buckets[1:])):
        r = ratios[4 * i : 4 * i + 4]
        assert np.all((r >= lo) & (r < hi)) and np.all(r > 0), (lo, hi, r)
    again = M.make_eval_masks(p, size, seed=5)
    np.testing.assert_array_equal(masks, again[0])
    other = M.make_eval_masks(p, size, seed=6)[0]
    assert not np.array_equal(masks, other)


def test_unreachable_bucket_raises_instead_of_looping():
    # Boxes that always cover the whole image cannot make a mask with < 10 % holes.
    p = _params(kind="box", box_min=1.0, box_max=1.0, per_bucket=1, buckets=[0.0, 0.1])
    with pytest.raises(M.MaskError, match=r"bucket 0.0-0.1: no box mask reached"):
        M.make_eval_masks(p, 16, 0)
    with pytest.raises(M.MaskError, match="cannot be filled at size 4"):
        M.make_eval_masks(_params(buckets=[0.0, 0.05]), 4, 0)


def _write_params(tmp_path, image_size=32, per_bucket=2, seed=3):
    raw = yaml.safe_load((ROOT / "params.yaml").read_text())
    raw["base"]["image_size"] = image_size
    raw["base"]["seed"] = seed
    raw["masks"]["eval"]["per_bucket"] = per_bucket
    path = tmp_path / f"params_{seed}.yaml"
    path.write_text(yaml.safe_dump(raw))
    return path


def test_stage_writes_identical_bytes_for_one_seed_and_reads_back(tmp_path):
    params = _write_params(tmp_path)
    a, b = tmp_path / "a" / "eval_masks", tmp_path / "b" / "eval_masks"
    # Once as the DVC command runs it, once in-process.
    subprocess.run(
        [sys.executable, "-m", "image_completion.stages.masks", "--params", str(params), "--out", str(a)],
        check=True,
        cwd=tmp_path,
    )
    masks_stage.main(["--params", str(params), "--out", str(b)])
    files = sorted(f.name for f in a.iterdir())
    assert files == [f"mask_{i:04d}.png" for i in range(12)] + ["masks.csv"]
    assert sorted(f.name for f in b.iterdir()) == files
    for name in files:
        assert (a / name).read_bytes() == (b / name).read_bytes(), name
    assert (a / "masks.csv").read_text().splitlines()[0] == "file,hole_ratio,bucket"

    png = np.asarray(Image.open(a / "mask_0000.png"))
    assert png.dtype == np.uint8 and png.shape == (32, 32) and set(np.unique(png)) <= {0, 255}

    masks, rows = M.read_eval_masks(a)
    expected, ratios, buckets = M.make_eval_masks(load_params(params).masks.eval, 32, 3)
    np.testing.assert_array_equal(masks, expected)
    assert [r.bucket for r in rows] == buckets and [r.file for r in rows] == files[:-1]
    np.testing.assert_allclose([r.hole_ratio for r in rows], ratios)
    assert not list(tmp_path.glob("a/.eval_masks*"))  # no temp dirs left

    masks_stage.main(["--params", str(_write_params(tmp_path, seed=4)), "--out", str(b)])
    assert (a / "mask_0000.png").read_bytes() != (b / "mask_0000.png").read_bytes()


def test_a_failed_write_keeps_the_previous_output(tmp_path):
    out = tmp_path / "eval_masks"
    masks, ratios, buckets = M.make_eval_masks(_params(per_bucket=1), 16, 0)
    M.write_eval_masks(out, masks, ratios, buckets)
    before = {f.name: f.read_bytes() for f in out.iterdir()}
    broken = np.zeros((6, 16, 16, 2), np.float32)  # 3-D "masks" cannot become PNGs
    with pytest.raises(ValueError):
        M.write_eval_masks(out, broken, ratios, buckets)
    assert {f.name: f.read_bytes() for f in out.iterdir()} == before
    assert [p.name for p in tmp_path.iterdir()] == ["eval_masks"]


def test_read_eval_masks_names_the_bad_file(tmp_path):
    out = tmp_path / "m"
    with pytest.raises(M.MaskError, match=r"m/masks.csv: mask list not found"):
        M.read_eval_masks(out)
    masks, ratios, buckets = M.make_eval_masks(_params(per_bucket=1), 16, 0)
    M.write_eval_masks(out, masks, ratios, buckets)
    csv_path = out / "masks.csv"
    good_csv = csv_path.read_text()

    csv_path.write_text(good_csv.replace("hole_ratio", "ratio"))
    with pytest.raises(M.MaskError, match=r"masks.csv: header"):
        M.read_eval_masks(out)
    csv_path.write_text(good_csv.replace("mask_0002.png", "mask_0099.png"))
    with pytest.raises(M.MaskError, match=r"mask_0099.png: mask file not found"):
        M.read_eval_masks(out)
    lines = good_csv.splitlines()
    lines[1] = "mask_0000.png,0.9,0.0-0.1"
    csv_path.write_text("\n".join(lines) + "\n")
    with pytest.raises(M.MaskError, match=r"mask_0000.png: hole ratio .* does not match 0.900000"):
        M.read_eval_masks(out)
    csv_path.write_text(good_csv)

    (out / "mask_0001.png").write_bytes(b"not a png")
    with pytest.raises(M.MaskError, match=r"mask_0001.png: cannot decode mask file"):
        M.read_eval_masks(out)
    Image.fromarray(np.full((16, 16), 128, np.uint8)).save(out / "mask_0001.png")
    with pytest.raises(M.MaskError, match=r"mask_0001.png: mask values"):
        M.read_eval_masks(out)
    Image.fromarray(np.zeros((16, 16, 3), np.uint8)).save(out / "mask_0001.png")
    with pytest.raises(M.MaskError, match=r"mask_0001.png: mask must be an 8-bit grayscale PNG"):
        M.read_eval_masks(out)
    Image.fromarray(np.zeros((16, 16), np.uint8)).save(out / "mask_0001.png")  # no hole
    csv_path.write_text(good_csv.replace(good_csv.splitlines()[2].split(",")[1], "0.0", 1))
    with pytest.raises(M.MaskError, match=r"mask_0001.png: the mask needs a hole"):
        M.read_eval_masks(out)
    M.write_eval_masks(out, masks, ratios, ["all"] + list(buckets[1:]))
    with pytest.raises(M.MaskError, match=r"masks.csv: line 2: bucket name 'all'"):
        M.read_eval_masks(out)
