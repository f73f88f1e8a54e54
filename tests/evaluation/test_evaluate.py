"""evaluate: model loading, predictions saved then scored from the saved files only, end to end (tiny)."""

import csv
import json
import shutil
from pathlib import Path

import keras
import numpy as np
import pytest
import yaml
from PIL import Image

from image_completion.config import BASELINES, load_params
from image_completion.core.holes import InputSpec
from image_completion.core.models import build_discriminator, build_generator, dtype_policies
from image_completion.data.manifest import ManifestRow, write_manifest
from image_completion.data.masks import make_eval_masks, write_eval_masks
from image_completion.evaluation import predictions
from image_completion.stages import evaluate as evaluate_stage

REPO = Path(__file__).resolve().parents[2]
SIZE = 32  # the VGG16 discriminator's minimum


def _write_photos(root: Path, splits: dict[str, int], size=(40, 48)) -> Path:
    (root / "images").mkdir(parents=True)
    rows, k = [], 0
    h, w = size
    y, x = np.mgrid[0:h, 0:w] / max(h, w)
    for split, n in splits.items():
        for _ in range(n):
            rng = np.random.default_rng(k)
            a, b = rng.uniform(0.1, 0.7, 2)
            image = np.stack([a + 0.3 * x, b * (1 - y), 0.5 + 0.2 * np.sin(8 * x + k)], axis=-1)
            name = f"images/photo_{k:02d}.png"
            Image.fromarray((np.clip(image, 0, 1) * 255).astype(np.uint8)).save(root / name)
            rows.append(ManifestRow(name, "test", "0" * 64, w, h, split))
            k += 1
    write_manifest(root / "manifest.csv", rows)
    return root


REFINE = InputSpec(prefill="telea", mask_channel=True, hole_value=1.0)


def _save_models(directory: Path, spec=InputSpec(), precision="float32"):  # noqa: B008 - a frozen dataclass, immutable
    """A tiny untrained generator (paper-style, or refine-style for a mask-channel spec) and discriminator."""
    keras.mixed_precision.set_global_policy(precision)
    try:
        keras.utils.set_random_seed(0)
        directory.mkdir(parents=True)
        residual = {"in_channels": 4, "upsampling": "resize", "residual_gate": 0.1} if spec.mask_channel else {}
        build_generator("unet_scaled", SIZE, base_filters=4, decoder_filters=8, **residual).save(directory / "generator.keras")
        build_discriminator(SIZE, "none", 8).save(directory / "discriminator.keras")
    finally:
        keras.mixed_precision.set_global_policy("float32")
    card = {"image_size": SIZE, "input": spec.as_card(), "generator": "unet_scaled", "precision": precision}
    (directory / "model_card.json").write_text(json.dumps(card))
    return directory


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    """A tiny project: params, photos, eval masks (4: 2 buckets x 2) and two recipes' float32 models."""
    root = tmp_path_factory.mktemp("evaluate")
    raw = yaml.safe_load((REPO / "params.yaml").read_text())
    raw["base"]["image_size"] = SIZE
    raw["masks"]["eval"].update(per_bucket=2, buckets=[0.0, 0.2, 0.4])
    raw["evaluate"].update(bootstrap_samples=100, batch_size=3)
    params_path = root / "params.yaml"
    params_path.write_text(yaml.safe_dump(raw))
    params = load_params(params_path)
    photos = _write_photos(root / "photos", {"train": 1, "validation": 1, "test": 2})
    masks, ratios, buckets = make_eval_masks(params.masks.eval, SIZE, params.base.seed)
    write_eval_masks(root / "masks", masks, ratios, buckets)
    models = {"paper": _save_models(root / "paper"), "refine": _save_models(root / "refine", REFINE)}
    return root, params_path, photos, models


def _argv(root, params_path, photos, models, out="out"):
    o = root / out
    return [
        "--params", str(params_path), *(a for r, m in models.items() for a in ("--model", f"{r}={m}")),
        "--photos", str(photos), "--masks", str(root / "masks"), "--predictions", str(o / "predictions"),
        "--metrics", str(o / "metrics.json"), "--per-image", str(o / "per_image.csv"),
        "--bucket-metrics", str(o / "bucket_metrics.csv"),
    ]  # fmt: skip


def test_evaluate_end_to_end(setup):
    root, params_path, photos, models = setup
    evaluate_stage.main(_argv(root, params_path, photos, models))
    out = root / "out"
    methods = ["paper", "paper_raw", "refine", "refine_raw", *BASELINES]

    pred = predictions.load_predictions(out / "predictions")
    assert pred.meta["methods"] == methods and pred.meta["n_images"] == 4 and pred.meta["recipes"] == ["paper", "refine"]
    assert pred.targets.shape == (4, SIZE, SIZE, 3) and pred.masks.shape == (4, SIZE, SIZE)
    hole = pred.masks[..., None] > 0.5
    inputs = np.load(out / "predictions" / "inputs.npz")
    assert np.all(inputs["paper"][np.broadcast_to(hole, inputs["paper"].shape)] == 1.0)  # hole_value 1
    assert inputs["refine"].shape == (4, SIZE, SIZE, 4)  # the Telea pre-fill and the mask
    np.testing.assert_array_equal(inputs["refine"][..., 3], pred.masks)
    np.testing.assert_array_equal(inputs["refine"][..., :3], pred.outputs["telea"])
    for name in methods:
        images = pred.outputs[name]
        assert images.min() >= 0 and images.max() <= 1
        assert np.all((pred.d_prob[name] >= 0) & (pred.d_prob[name] <= 1))
        if not name.endswith("_raw"):  # composites keep the known pixels
            known = np.broadcast_to(~hole, images.shape)
            np.testing.assert_array_equal(images[known], pred.targets[known])
    in_hole = np.broadcast_to(hole, pred.targets.shape)
    np.testing.assert_array_equal(pred.outputs["paper"][in_hole], pred.outputs["paper_raw"][in_hole])
    # An untrained residual generator starts exactly at its classical pre-fill.
    np.testing.assert_allclose(pred.outputs["refine"], pred.outputs["telea"], atol=1e-6)
    with open(out / "predictions" / "index.csv") as f:
        index = list(csv.DictReader(f))
    assert [r["mask_file"] for r in index] == [f"mask_{i:04d}.png" for i in range(4)]
    assert {r["photo"] for r in index} == {"images/photo_02.png", "images/photo_03.png"}  # the test split

    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["n_images"] == 4 and metrics["precision"] == {"paper": "float32", "refine": "float32"}
    assert metrics["paper"]["perceptual_accuracy"] == metrics["paper_raw"]["fool_rate"]
    assert 0 <= metrics["discriminator_real_accuracy"] <= 1
    for name in methods:
        assert set(metrics[name]) >= {"l1_hole", "l1", "psnr_hole", "psnr", "ssim", "ssim_hole", "fool_rate"}
        assert metrics[name]["l1"] <= metrics[name]["l1_hole"]  # composites: error only in the hole
    # An untrained generator fills the hole worse than a biharmonic fill of smooth photos.
    assert metrics["biharmonic"]["l1_hole"] < metrics["paper"]["l1_hole"]

    with open(out / "per_image.csv") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 4 * len(methods)
    assert {r["bucket"] for r in rows} == {"0.0-0.2", "0.2-0.4"}
    biharmonic = [float(r["l1_hole"]) for r in rows if r["method"] == "biharmonic"]
    assert np.mean(biharmonic) == pytest.approx(metrics["biharmonic"]["l1_hole"], abs=1e-6)

    with open(out / "bucket_metrics.csv") as f:
        table = list(csv.DictReader(f))
    # methods x (all + 2 buckets) x (6 metrics + fooled)
    assert len(table) == len(methods) * 3 * 7
    for r in table:
        assert float(r["ci_low"]) <= float(r["mean"]) + 1e-12 <= float(r["ci_high"]) + 2e-12
        assert int(r["n"]) == (4 if r["bucket"] == "all" else 2)


def test_scoring_reads_only_the_saved_predictions(setup, tmp_path):
    root, params_path, photos, models = setup
    # Predictions made once and moved away from photos, masks and model: scoring still works
    # and gives the same numbers as the stage.
    evaluate_stage.main(_argv(root, params_path, photos, models, out="out2"))
    moved = tmp_path / "predictions"
    shutil.copytree(root / "out2" / "predictions", moved)
    per_image, buckets, headline = predictions.score_predictions(moved, bootstrap_samples=50, seed=1234)
    assert headline == json.loads((root / "out2" / "metrics.json").read_text())
    again = predictions.score_predictions(moved, bootstrap_samples=50, seed=1234)
    assert again[1] == buckets  # seeded bootstrap: deterministic

    masks = np.load(moved / "masks.npz")["masks"]
    for bad, problem in ((masks * 0, "has no hole"), (masks * 0.5, "must be 0 .known. or 1")):
        np.savez_compressed(moved / "masks.npz", masks=bad)
        with pytest.raises(predictions.EvaluateError, match=rf"masks\.npz: .*{problem}"):
            predictions.load_predictions(moved)
    np.savez_compressed(moved / "masks.npz", masks=masks)
    (moved / "telea.npz").unlink()
    with pytest.raises(predictions.EvaluateError, match=r"telea\.npz: not found"):
        predictions.load_predictions(moved)
    (moved / "meta.json").write_text("{")
    with pytest.raises(predictions.EvaluateError, match=r"meta\.json: cannot read"):
        predictions.load_predictions(moved)


def test_save_predictions_failure_keeps_previous_folder(tmp_path):
    directory = tmp_path / "predictions"
    directory.mkdir()
    (directory / "keep.txt").write_text("old")
    n = 2
    images = np.zeros((n, 16, 16, 3), np.float32)
    rows = [dict.fromkeys(predictions.INDEX_COLUMNS, 0) for _ in range(n)]
    with pytest.raises(KeyError):  # d_prob lacks the method's entry -> fails mid-write
        predictions.save_predictions(
            directory,
            index_rows=rows,
            inputs={"model": images},
            targets=images,
            masks=images[..., 0],
            outputs={"model": images},
            d_prob={"target": np.zeros(n)},
            meta={},
        )
    assert [p.name for p in directory.iterdir()] == ["keep.txt"]
    assert [p.name for p in tmp_path.iterdir()] == ["predictions"]  # no temp folder left


def test_model_errors(setup, tmp_path):
    root, params_path, photos, models = setup
    with pytest.raises(predictions.EvaluateError, match=r"nowhere/model_card\.json: model card not found"):
        evaluate_stage.main(_argv(root, params_path, photos, {"paper": tmp_path / "nowhere"}, out="e1"))
    broken = tmp_path / "broken"
    shutil.copytree(models["paper"], broken)
    (broken / "model_card.json").write_text(json.dumps({"image_size": SIZE}))
    with pytest.raises(predictions.EvaluateError, match=r"broken/model_card\.json: no valid input"):
        evaluate_stage.main(_argv(root, params_path, photos, {"paper": broken}, out="e2"))
    (broken / "model_card.json").write_text(json.dumps({"image_size": SIZE, "input": ["telea"]}))
    with pytest.raises(predictions.EvaluateError, match=r"broken/model_card\.json: no valid input"):
        evaluate_stage.main(_argv(root, params_path, photos, {"paper": broken}, out="e2"))
    (broken / "model_card.json").write_text(json.dumps({"image_size": 64, "hole_value": 1.0}))
    with pytest.raises(predictions.EvaluateError, match="broken/model_card.json: image_size 64 .* stale"):
        evaluate_stage.main(_argv(root, params_path, photos, {"paper": broken}, out="e3"))
    (broken / "model_card.json").write_text(json.dumps({"image_size": SIZE, "hole_value": 1.0}))
    (broken / "generator.keras").unlink()
    with pytest.raises(predictions.EvaluateError, match=r"generator\.keras: model file not found"):
        evaluate_stage.main(_argv(root, params_path, photos, {"paper": broken}, out="e4"))
    assert not [p for p in root.iterdir() if p.name.startswith("e")]  # nothing written on failure
    with pytest.raises(SystemExit) as exit_info:
        evaluate_stage.main(["--model", "paper"] + _argv(root, params_path, photos, {})[:])
    assert exit_info.value.code == 2


def test_mixed_precision_model_loads_as_float32(tmp_path):
    model = _save_models(tmp_path / "mixed", precision="mixed_bfloat16")
    generator, discriminator, card = predictions.load_models(model, SIZE)
    assert dtype_policies(generator) == {"float32"}
    assert dtype_policies(discriminator) == {"float32"}
    saved = keras.saving.load_model(model / "generator.keras", compile=False)
    for a, b in zip(saved.get_weights(), generator.get_weights()):
        np.testing.assert_array_equal(a, b)
    x = np.random.default_rng(0).uniform(size=(2, SIZE, SIZE, 3)).astype(np.float32)
    assert generator.get_layer("enc1_conv").compute_dtype == "float32"
    assert generator(x).dtype == "float32" and discriminator(x).shape == (2, 1)
    assert keras.mixed_precision.global_policy().name == "float32"
