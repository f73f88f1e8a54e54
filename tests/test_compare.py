"""compare: the hole-propagation measure, and the stage end to end for every generator kind (tiny)."""

import json
from pathlib import Path

import numpy as np
import pytest
import yaml
from PIL import Image

from image_completion import compare
from image_completion.config import ConfigError
from image_completion.manifest import ManifestRow, write_manifest

REPO = Path(__file__).resolve().parents[1]


def _write_photos(root: Path, splits: dict[str, int], size=(40, 48)) -> Path:
    """Smooth synthetic RGB photos (gradients + a disc) and a manifest, as the download stage writes."""
    (root / "images").mkdir(parents=True)
    rows, k = [], 0
    h, w = size
    y, x = np.mgrid[0:h, 0:w] / max(h, w)
    for split, n in splits.items():
        for _ in range(n):
            rng = np.random.default_rng(k)
            a, b, c = rng.uniform(0.1, 0.9, 3)
            disc = ((y - rng.uniform(0.2, 0.6)) ** 2 + (x - rng.uniform(0.2, 0.8)) ** 2) < 0.03
            image = np.stack([a + 0.3 * x, b * (1 - y), c + 0.2 * disc], axis=-1)
            name = f"images/photo_{k:02d}.png"
            Image.fromarray((np.clip(image, 0, 1) * 255).astype(np.uint8)).save(root / name)
            rows.append(ManifestRow(name, "test", "0" * 64, w, h, split))
            k += 1
    write_manifest(root / "manifest.csv", rows)
    return root


def _tiny_params(tmp_path: Path) -> Path:
    raw = yaml.safe_load((REPO / "params.yaml").read_text())
    raw["compare"].update(
        image_size=16, base_filters=4, batch_size=4, images_per_epoch=8, epochs=2, validation_images=4
    )
    raw["model"]["decoder_filters"] = 8
    path = tmp_path / "params.yaml"
    path.write_text(yaml.safe_dump(raw))
    return path


def test_hole_propagation_measure():
    target = np.zeros((1, 4, 4, 3))  # truth is 0 everywhere; hole value 1 -> |y - h| = 1
    mask = np.zeros((1, 4, 4, 1))
    mask[0, :2] = 1  # 8 hole pixels
    assert compare.hole_propagation(np.ones_like(target), target, mask, 1.0) == pytest.approx(0.0)
    assert compare.hole_propagation(target, target, mask, 1.0) == pytest.approx(1.0)
    half = np.full_like(target, 0.5)
    half[0, 2:] = 1.0  # known pixels do not count
    assert compare.hole_propagation(half, target, mask, 1.0) == pytest.approx(0.5)
    with pytest.raises(ValueError, match="no hole pixels"):
        compare.hole_propagation(target, target, np.zeros_like(mask), 1.0)
    with pytest.raises(ValueError, match="undefined"):
        compare.hole_propagation(target, np.ones_like(target), mask, 1.0)
    assert compare.hole_l1(half, target, mask) == pytest.approx(0.5)


@pytest.mark.parametrize("kind", ["autoencoder", "unet", "unet_scaled"])
def test_compare_stage_end_to_end(kind, tmp_path):
    photos = _write_photos(tmp_path / "photos", {"train": 3, "validation": 2, "test": 1})
    out = tmp_path / "reports" / "compare" / kind
    compare.main(["--params", str(_tiny_params(tmp_path)), "--kind", kind, "--photos", str(photos), "--out", str(out)])

    metrics = json.loads((out / "metrics.json").read_text())
    for name in compare.METRIC_NAMES:
        subset, key = name.split("/")
        value = metrics[subset][key]
        assert np.isfinite(value), name
        # dvclive series: one row per epoch.
        tsv = (out / "plots" / "metrics" / subset / f"{key}.tsv").read_text().strip().splitlines()
        assert tsv[0].split("\t") == ["step", key] and len(tsv) == 3, name
    assert metrics["step"] == 1
    assert metrics["train"]["grad_norm_enc1"] > 0
    assert 0 < metrics["val"]["l1_hole"] < 1
    assert metrics["val"]["hole_propagation"] > 0

    if kind == "unet_scaled":  # same seed, same data -> the same run (checked for one kind: time)
        again = tmp_path / "again"
        compare.main(["--params", str(tmp_path / "params.yaml"), "--kind", kind, "--photos", str(photos), "--out", str(again)])
        repeated = json.loads((again / "metrics.json").read_text())
        for subset in ("train", "val"):
            for key, value in metrics[subset].items():
                assert repeated[subset][key] == pytest.approx(value, rel=1e-5), key


def test_compare_errors(tmp_path):
    photos = _write_photos(tmp_path / "photos", {"train": 1, "validation": 1, "test": 1})
    raw = yaml.safe_load(_tiny_params(tmp_path).read_text())
    raw["compare"]["kinds"] = ["unet"]
    params = tmp_path / "only_unet.yaml"
    params.write_text(yaml.safe_dump(raw))
    with pytest.raises(ConfigError, match="not in compare.kinds"):
        compare.main(["--params", str(params), "--kind", "autoencoder", "--photos", str(photos), "--out", str(tmp_path / "o")])
    with pytest.raises(SystemExit):  # argparse: invalid choice
        compare.main(["--params", str(params), "--kind", "resnet", "--photos", str(photos), "--out", str(tmp_path / "o")])
    raw["compare"]["images_per_epoch"] = 6  # not a multiple of batch_size 4
    params.write_text(yaml.safe_dump(raw))
    with pytest.raises(ValueError, match="multiple of"):
        compare.main(["--params", str(params), "--kind", "unet", "--photos", str(photos), "--out", str(tmp_path / "o")])
    with pytest.raises(Exception, match="manifest"):
        compare.main(["--params", str(params), "--kind", "unet", "--photos", str(tmp_path / "nowhere"), "--out", str(tmp_path / "o")])


def test_a_failing_comparison_releases_its_data_iterator(tmp_path, monkeypatch):
    # A traceback keeps run_comparison's frame, and so its locals, alive; a live tf.data
    # iterator (numpy_function mask sampler) at interpreter exit can abort the process.
    photos = _write_photos(tmp_path / "photos", {"train": 3, "validation": 2, "test": 1})

    def fail(*args, **kwargs):
        raise RuntimeError("scoring failed")

    monkeypatch.setattr(compare, "hole_l1", fail)
    with pytest.raises(RuntimeError, match="scoring failed") as info:
        compare.main(["--params", str(_tiny_params(tmp_path)), "--kind", "unet", "--photos", str(photos),
                      "--out", str(tmp_path / "out")])  # fmt: skip
    tb, frames = info.value.__traceback__, []
    while tb is not None:
        frames.append(tb.tb_frame)
        tb = tb.tb_next
    run = [f for f in frames if f.f_code.co_name == "run_comparison"]
    assert len(run) == 1
    assert "batches" not in run[0].f_locals and "dataset" not in run[0].f_locals
    assert "validation" in run[0].f_locals  # the frame is the real one, with its other locals
