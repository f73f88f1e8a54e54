"""compare: the validation measures, the gradient probe, and the stage end to end (tiny sizes)."""

import json
from pathlib import Path

import keras
import numpy as np
import pytest
import tensorflow as tf
import yaml
from PIL import Image

from image_completion.core.models import build_generator
from image_completion.data.manifest import ManifestRow, write_manifest
from image_completion.stages import compare as compare_stage
from image_completion.training import compare

REPO = Path(__file__).resolve().parents[2]
SEED = 1234  # in the shipped compare.seeds


@pytest.fixture(autouse=True)
def _keep_dtype_policy():
    """The stage sets Keras' global precision; other tests expect theirs back."""
    policy = keras.config.dtype_policy()
    yield
    keras.config.set_dtype_policy(policy)


@pytest.fixture
def photos(tmp_path) -> Path:
    """32x32 smooth RGB photos (gradients and a disc) with a manifest, as the download stage writes."""
    root = tmp_path / "photos"
    (root / "images").mkdir(parents=True)
    y, x = np.mgrid[0:32, 0:32] / 32
    rows = []
    for k, split in enumerate(["train"] * 3 + ["validation"] * 2 + ["test"]):
        rng = np.random.default_rng(k)
        a, b, c = rng.uniform(0.1, 0.8, 3)
        disc = (y - rng.uniform(0.3, 0.7)) ** 2 + (x - rng.uniform(0.3, 0.7)) ** 2 < 0.04
        image = np.stack([a + 0.3 * x, b * (1 - y), c + 0.2 * disc], axis=-1)
        Image.fromarray((np.clip(image, 0, 1) * 255).astype(np.uint8)).save(root / f"images/p{k}.png")
        rows.append(ManifestRow(f"images/p{k}.png", "test", "0" * 64, 32, 32, split))
    write_manifest(root / "manifest.csv", rows)
    return root


@pytest.fixture
def params(tmp_path) -> Path:
    """The shipped params at a tiny scale: 16x16 crops, 2 epochs of 2 steps, 4 validation images."""
    raw = yaml.safe_load((REPO / "params.yaml").read_text())
    raw["compare"].update(image_size=16, base_filters=4, batch_size=4, images_per_epoch=8, epochs=2, validation_images=4)
    raw["model"]["decoder_filters"] = 8
    path = tmp_path / "params.yaml"
    path.write_text(yaml.safe_dump(raw))
    return path


def run(params: Path, photos: Path, out: Path, kind="unet_scaled", seed=SEED) -> Path:
    compare_stage.main(["--params", str(params), "--kind", kind, "--seed", str(seed), "--photos", str(photos), "--out", str(out)])
    return out


def test_hole_measures():
    target = np.zeros((1, 4, 4, 3))  # truth 0 everywhere; hole value 1 -> |y - h| = 1
    mask = np.zeros((1, 4, 4, 1))
    mask[0, :2] = 1  # 8 hole pixels
    assert compare.hole_propagation(np.ones_like(target), target, mask, 1.0) == pytest.approx(0.0)
    assert compare.hole_propagation(target, target, mask, 1.0) == pytest.approx(1.0)
    half = np.full_like(target, 0.5)
    half[0, 2:] = 1.0  # known pixels do not count
    assert compare.hole_propagation(half, target, mask, 1.0) == pytest.approx(0.5)
    assert compare.hole_l1(half, target, mask) == pytest.approx(0.5)
    with pytest.raises(ValueError, match="hole value"):  # the truth equals the fill: P undefined
        compare.hole_propagation(target, np.ones_like(target), mask, 1.0)


def test_kernel_gradients_are_a_training_steps_and_change_no_weight():
    keras.config.set_dtype_policy("float32")
    keras.utils.set_random_seed(0)
    model = compare.Reconstruction(build_generator("unet", 16, base_filters=4, decoder_filters=8))
    rng = np.random.default_rng(0)
    image = rng.uniform(0, 1, (4, 16, 16, 3)).astype(np.float32)
    mask = (rng.uniform(size=(4, 16, 16, 1)) < 0.3).astype(np.float32)
    batch = {"masked": np.where(mask > 0, 1.0, image).astype(np.float32), "image": image, "mask": mask}
    g = model.generator
    before = [v.numpy().copy() for v in g.weights]  # BatchNormalization moving statistics included

    enc1, out = (float(n) for n in model.kernel_gradients(batch))

    for old, v in zip(before, g.weights):
        np.testing.assert_array_equal(old, v.numpy(), err_msg=v.path)
    kernels = [g.get_layer("enc1_conv").kernel, g.get_layer("output").kernel]
    with tf.GradientTape() as tape:  # the reference: a plain training-mode step's gradients
        loss = model.parts(batch, g(batch["masked"], training=True))["g_loss"]
    expected = [float(tf.norm(grad)) for grad in tape.gradient(loss, kernels)]
    assert enc1 > 0 and out > 0
    assert [enc1, out] == pytest.approx(expected, rel=1e-5)


@pytest.mark.parametrize("kind", ["autoencoder", "unet", "unet_scaled"])
def test_stage_logs_every_metric_every_epoch(kind, params, photos, tmp_path):
    out = run(params, photos, tmp_path / f"{kind}-{SEED}", kind=kind)

    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["step"] == 2  # epochs
    for name in compare.METRIC_NAMES:
        subset, key = name.split("/")
        assert np.isfinite(metrics[subset][key]), name
        table = [line.split("\t") for line in (out / "plots" / "metrics" / f"{name}.tsv").read_text().splitlines()]
        steps = [int(row[0]) for row in table[1:]]
        # validation also before training (step 0); the training loss after each epoch
        assert table[0] == ["step", key] and steps == ([0, 1, 2] if subset == "val" else [1, 2]), name
        assert float(table[-1][1]) == pytest.approx(metrics[subset][key]), name
    assert metrics["train"]["g_loss"] == pytest.approx(metrics["train"]["g_valid"] + 6 * metrics["train"]["g_hole"], rel=1e-5)
    assert 0 < metrics["val"]["l1_hole"] < 1 and metrics["val"]["hole_propagation"] > 0
    assert metrics["val"]["grad_norm_enc1"] > 0 and metrics["val"]["grad_ratio_enc1_out"] > 0


def test_the_seed_decides_the_run(params, photos, tmp_path):
    def files(out):
        return {p.relative_to(out): p.read_bytes() for p in sorted(out.rglob("*")) if p.is_file()}

    first = files(run(params, photos, tmp_path / "a"))
    again = files(run(params, photos, tmp_path / "b"))
    other = files(run(params, photos, tmp_path / "c", seed=SEED + 1))
    assert len(first) == 1 + len(compare.METRIC_NAMES) and again == first  # bit for bit
    loss = Path("plots/metrics/train/g_loss.tsv")
    assert other[loss] != first[loss]


@pytest.mark.parametrize("flag, value, key", [("--seed", "7", "compare.seeds"), ("--kind", "autoencoder", "compare.kinds")])
def test_a_kind_or_seed_outside_the_params_is_a_usage_error(flag, value, key, params, photos, tmp_path, capsys):
    raw = yaml.safe_load(params.read_text())
    raw["compare"]["kinds"] = ["unet"]
    params.write_text(yaml.safe_dump(raw))
    args = {"--params": str(params), "--kind": "unet", "--seed": str(SEED), "--photos": str(photos), "--out": str(tmp_path / "o")}
    args[flag] = value
    with pytest.raises(SystemExit) as info:
        compare_stage.main([part for pair in args.items() for part in pair])
    assert info.value.code == 2
    err = capsys.readouterr().err
    assert key in err and value in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "o").exists()


def test_a_non_finite_measure_stops_the_run_naming_it(params, photos, tmp_path, monkeypatch):
    monkeypatch.setattr(compare, "hole_l1", lambda *args: float("nan"))
    with pytest.raises(FloatingPointError, match="val/l1_hole"):
        run(params, photos, tmp_path / "out")
