"""The train stage command end to end on tiny params: stage 1, stage 2 from stage 1 of the paper
recipe, the refine recipe's input and output, resume, float32 loading of mixed_bfloat16 models,
and the stage's failure paths."""

import json
import logging
from pathlib import Path

import keras
import numpy as np
import pytest
import yaml
from tensorflow.python.framework import config as tf_config

import multiworker_worker as tiny
from image_completion.config import load_params
from image_completion.core import models
from image_completion.data.manifest import ManifestRow, write_manifest
from image_completion.stages import train as train_stage
from image_completion.training import loop, runner

ROOT = Path(__file__).resolve().parents[2]
STAGE1_EPOCHS, STAGE2_EPOCHS = 2, 1


@pytest.fixture(scope="module")
def restore_globals():
    was = tf_config.is_op_determinism_enabled()
    yield
    keras.config.set_dtype_policy("float32")
    if not was:
        tf_config.disable_op_determinism()


@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
    """Photos + manifest (3 train, 1 validation) and a tiny params.yaml (mixed_bfloat16)."""
    root = tmp_path_factory.mktemp("stage")
    photos = root / "photos"
    paths = tiny.write_photos(photos / "images")
    splits = ["train", "train", "train", "validation"]
    rows = [ManifestRow(f"images/{Path(p).name}", "skimage", "0" * 64, 64, 64, split) for p, split in zip(paths, splits)]
    write_manifest(photos / "manifest.csv", rows)
    raw = yaml.safe_load((ROOT / "params.yaml").read_text())
    raw["base"].update(image_size=32)
    raw["model"].update(base_filters=4, decoder_filters=8, backbone_weights="none", dense_units=8)
    raw["train"].update(batch_size=4, images_per_epoch=8, validation_images=4, strategy="default", precision="mixed_bfloat16")
    for recipe in raw["recipes"].values():
        recipe.update(stage1_epochs=STAGE1_EPOCHS, stage2_epochs=STAGE2_EPOCHS, g_learning_rate=1e-3, d_learning_rate=1e-3)
        recipe.update(crop_pool=min(recipe["crop_pool"], 8))  # a pool's examples are made once: keep it small
    (root / "params.yaml").write_text(yaml.safe_dump(raw))
    return root


def args(root, stage, recipe="paper"):
    extra = ["--init", str(root / f"models/{recipe}/stage1")] if stage == 2 else []
    return [
        "--params", str(root / "params.yaml"), "--recipe", recipe, "--stage", str(stage), *extra,
        "--photos", str(root / "photos"), "--out", str(root / f"models/{recipe}/stage{stage}"),
        "--live", str(root / f"reports/train/{recipe}/stage{stage}"),
        "--checkpoints", str(root / f"checkpoints/{recipe}/stage{stage}"), "--no-progress",
    ]  # fmt: skip


@pytest.fixture(scope="module")
def stages(workdir, restore_globals):
    train_stage.main(args(workdir, 1))
    train_stage.main(args(workdir, 2))
    return workdir


def read_tsv(path):
    lines = path.read_text().splitlines()
    header = lines[0].split("\t")
    return [dict(zip(header, line.split("\t"))) for line in lines[1:]]


def test_stage1_writes_models_card_and_dvclive_metrics(stages):
    out = stages / "models/paper/stage1"
    assert sorted(p.name for p in out.iterdir()) == ["discriminator.keras", "generator.keras", "model_card.json"]
    card = json.loads((out / "model_card.json").read_text())
    assert card["stage"] == 1 and card["epochs"] == STAGE1_EPOCHS and card["image_size"] == 32
    assert card["generator"] == "unet_scaled" and card["base_filters"] == 4 and card["hole_value"] == 1.0
    assert card["precision"] == "mixed_bfloat16" and card["params"]["train"]["batch_size"] == 4
    assert card["recipe"] == "paper" and card["input"] == {
        "prefill": "constant",
        "mask_channel": False,
        "hole_value": 1.0,
        "inpaint_radius": 3,
    }
    live = stages / "reports/train/paper/stage1"
    summary = json.loads((live / "metrics.json").read_text())
    assert summary["step"] == STAGE1_EPOCHS - 1
    assert set(summary["val"]) >= set(summary["train"]) >= {"g_loss", "d_accuracy", "perceptual_accuracy"}
    rows = read_tsv(live / "plots/metrics/train/perceptual_accuracy.tsv")
    assert [r["step"] for r in rows] == ["0", "1"]
    assert len(read_tsv(live / "plots/metrics/val/g_hole.tsv")) == STAGE1_EPOCHS
    # The models keep the training policy.
    generator = keras.saving.load_model(out / "generator.keras")
    assert generator.get_layer("enc1_conv").dtype_policy.name == "mixed_bfloat16"


def test_stage2_continues_the_generator_with_the_discriminator_frozen(stages):
    s1, s2 = stages / "models/paper/stage1", stages / "models/paper/stage2"
    card = json.loads((s2 / "model_card.json").read_text())
    assert card["stage"] == 2 and card["discriminator_frozen"] and card["total_epochs"] == STAGE1_EPOCHS + STAGE2_EPOCHS
    d1 = keras.saving.load_model(s1 / "discriminator.keras").get_weights()
    d2 = keras.saving.load_model(s2 / "discriminator.keras").get_weights()
    assert all(np.array_equal(a, b) for a, b in zip(d1, d2))
    g1 = keras.saving.load_model(s1 / "generator.keras").get_weights()
    g2 = keras.saving.load_model(s2 / "generator.keras").get_weights()
    assert any(not np.array_equal(a, b) for a, b in zip(g1, g2))
    # Stage 2's dvclive steps continue after stage 1's epochs: one axis for both stages.
    rows = read_tsv(stages / "reports/train/paper/stage2/plots/metrics/train/perceptual_accuracy.tsv")
    assert [int(r["step"]) for r in rows] == [STAGE1_EPOCHS + e for e in range(STAGE2_EPOCHS)]


def test_mixed_precision_models_load_in_float32(stages):
    path = stages / "models/paper/stage2/generator.keras"
    mixed = keras.saving.load_model(path)
    plain = models.load_model_float32(path)
    assert {layer.dtype_policy.name for layer in plain.layers} == {"float32"}
    x = np.random.default_rng(0).random((2, 32, 32, 3)).astype("float32")
    y = plain(x).numpy()
    assert y.dtype == np.float32
    np.testing.assert_allclose(y, mixed(x).numpy(), atol=0.05)  # bfloat16 vs float32 compute


def test_rerunning_a_finished_stage_resumes_instead_of_retraining(stages, caplog):
    before = json.loads((stages / "reports/train/paper/stage1/metrics.json").read_text())
    g_before = keras.saving.load_model(stages / "models/paper/stage1/generator.keras").get_weights()
    with caplog.at_level(logging.INFO, logger="image_completion.training.loop"):
        train_stage.main(args(stages, 1))
    assert f"(epoch {STAGE1_EPOCHS} of {STAGE1_EPOCHS})" in caplog.text
    assert json.loads((stages / "reports/train/paper/stage1/metrics.json").read_text()) == before
    g_after = keras.saving.load_model(stages / "models/paper/stage1/generator.keras").get_weights()
    assert all(np.array_equal(a, b) for a, b in zip(g_before, g_after))


def test_stage2_fails_and_saves_nothing_if_the_discriminator_changed(workdir, stages, monkeypatch, tmp_path):
    real_train_gan = loop.train_gan

    def train_gan_that_moves_d(model, *a, **kw):
        history = real_train_gan(model, *a, **kw)
        kernel = model.discriminator.get_layer("dense2").kernel
        kernel.assign(kernel + 1.0)
        return history

    monkeypatch.setattr(loop, "train_gan", train_gan_that_moves_d)
    params = load_params(workdir / "params.yaml")
    out = tmp_path / "stage2"
    with pytest.raises(runner.StageError, match="discriminator frozen.*weights changed.*nothing was saved"):
        runner.run_stage(
            params, recipe="paper", stage=2, init=stages / "models/paper/stage1", photos=stages / "photos", out=out,
            live_dir=tmp_path / "live", checkpoints=stages / "checkpoints/paper/stage2", progress=False,
        )  # fmt: skip
    assert not out.exists()


def test_stage_errors(workdir, tmp_path, capsys):
    params = load_params(workdir / "params.yaml")
    common = dict(recipe="paper", out=tmp_path / "out", live_dir=tmp_path / "live", checkpoints=tmp_path / "ck")
    with pytest.raises(runner.StageError, match="manifest.csv: photo manifest not found"):
        runner.run_stage(params, stage=1, photos=tmp_path, **common)
    with pytest.raises(runner.StageError, match="missing.*generator.keras"):
        runner.run_stage(params, stage=2, init=tmp_path, photos=workdir / "photos", **common)
    assert not (tmp_path / "out").exists()
    for argv, named in ((args(workdir, 1, recipe="nope"), "--recipe 'nope'"), (args(workdir, 1) + ["--init", "x"], "--init")):
        with pytest.raises(SystemExit) as exit_info:
            train_stage.main(argv)
        assert exit_info.value.code == 2
        assert named in capsys.readouterr().err


def test_refine_recipe_sees_the_prefilled_hole_and_the_mask_and_keeps_known_pixels(workdir, restore_globals):
    """The shipped refine (weighed classical fills, a crop pool) trains, and its output keeps known pixels."""
    train_stage.main(args(workdir, 1, recipe="refine"))
    out = workdir / "models/refine/stage1"
    card = json.loads((out / "model_card.json").read_text())
    fills = card["input"]["prefill"]
    assert card["recipe"] == "refine" and card["input"]["mask_channel"] and isinstance(fills, list) and len(fills) >= 2
    generator = models.load_model_float32(out / "generator.keras")
    assert generator.input_shape == (None, 32, 32, 3 * len(fills) + 1)
    assert generator.get_layer("dec9_resize") is not None  # resize-convolution, no transposed conv
    rng = np.random.default_rng(0)
    image = rng.random((2, 32, 32, 3)).astype("float32")
    mask = np.zeros((2, 32, 32), "float32")
    mask[:, 8:20, 10:24] = 1
    from image_completion.core.holes import InputSpec, generator_input  # noqa: PLC0415

    x = generator_input(image, mask, InputSpec.from_card(card))
    y = generator(x).numpy()
    known = mask[..., None].repeat(3, -1) == 0
    np.testing.assert_allclose(y[known], x[..., :3][known], atol=1e-6)  # every fill, so their mix, keeps known pixels
    # Without an adversarial term the discriminator is not trained in stage 1.
    summary = json.loads((workdir / "reports/train/refine/stage1/metrics.json").read_text())
    assert "d_real_loss" not in summary["train"] and "d_real_loss" in summary["val"]
    # A stage of 0 epochs (the shipped refine's stage 2) keeps the models and logs their validation once.
    raw = yaml.safe_load((workdir / "params.yaml").read_text())
    raw["recipes"]["refine"]["stage2_epochs"] = 0
    (workdir / "zero.yaml").write_text(yaml.safe_dump(raw))
    train_stage.main([a if a != str(workdir / "params.yaml") else str(workdir / "zero.yaml") for a in args(workdir, 2, "refine")])
    kept = models.load_model_float32(workdir / "models/refine/stage2/generator.keras")
    np.testing.assert_array_equal(kept(x).numpy(), y)
    logged = json.loads((workdir / "reports/train/refine/stage2/metrics.json").read_text())
    assert logged["step"] == STAGE1_EPOCHS and logged["val"]["g_hole"] == pytest.approx(summary["val"]["g_hole"], rel=1e-5)


def test_checkpoints_of_another_resolved_precision_are_not_resumed(workdir):
    """The frozen backbone's variables take the precision's dtype: a float32 checkpoint cannot be
    restored into a mixed_bfloat16 run, so the precision is part of the stage's fingerprint."""
    params = load_params(workdir / "params.yaml")
    manifest = workdir / "photos" / "manifest.csv"
    prints = {}
    for precision in ("float32", "mixed_bfloat16"):
        with models.dtype_policy(precision):
            prints[precision] = runner.stage_fingerprint(params, "paper", 1, manifest, None)
    assert prints["float32"][1]["precision"] == "float32"
    assert prints["mixed_bfloat16"][1]["precision"] == "mixed_bfloat16"
    assert prints["float32"][0] != prints["mixed_bfloat16"][0]
