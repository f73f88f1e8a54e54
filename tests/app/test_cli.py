"""`image-completion fill`: every input case, its exit code, one-line error and no partial output."""

from __future__ import annotations

import importlib.metadata
import json
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from conftest import ROOT
from conftest import skimage_photo as photo
from image_completion.app.cli import main

SIZE = 32


def box_mask(height, width, top, left, h, w) -> np.ndarray:
    mask = np.zeros((height, width), np.uint8)
    mask[top : top + h, left : left + w] = 255
    return mask


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory) -> Path:
    """The layout `dvc repro` makes: models/refine/stage2 (a tiny untrained refine-style generator:
    Telea pre-fill + mask channel, residual output) and models/paper/stage2 (paper-style), with cards."""
    from image_completion.core.holes import InputSpec
    from image_completion.core.models import build_generator

    root = tmp_path_factory.mktemp("repo")
    for recipe, spec, extra in (
        ("paper", InputSpec(), {}),
        (
            "refine",
            InputSpec(prefill="telea", mask_channel=True),
            {"in_channels": 4, "upsampling": "resize", "residual_gate": 0.1},
        ),
    ):
        folder = root / "models" / recipe / "stage2"
        folder.mkdir(parents=True)
        build_generator("unet_scaled", SIZE, base_filters=4, decoder_filters=8, **extra).save(folder / "generator.keras")
        card = {"image_size": SIZE, "input": spec.as_card(), "generator": "unet_scaled", "recipe": recipe}
        (folder / "model_card.json").write_text(json.dumps(card))
    (root / "params.yaml").write_text((ROOT / "params.yaml").read_text())
    return root / "models" / "refine" / "stage2"


@pytest.fixture()
def files(tmp_path):
    """photo.png (non-square, larger than the model), mask.png and mask.jpg of one box hole."""
    image = photo("astronaut", 75, 101)
    Image.fromarray(image).save(tmp_path / "photo.png")
    mask = box_mask(75, 101, 20, 30, 25, 20)
    Image.fromarray(mask).save(tmp_path / "mask.png")
    Image.fromarray(mask).save(tmp_path / "mask.jpg", quality=75)
    return tmp_path, image, mask > 0


def run(argv, capsys):
    code = main([str(a) for a in argv])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def assert_one_line_error(err: str, *needles: str) -> None:
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("image-completion: error: ")
    for needle in needles:
        assert needle in lines[0], lines[0]


def test_fill_with_model_png_and_jpeg_masks(files, model_dir, capsys):
    tmp, image, hole = files
    for mask in ("mask.png", "mask.jpg"):
        out = tmp / f"out_{mask}.png"
        code, stdout, err = run(
            ["fill", tmp / "photo.png", tmp / mask, "-o", out, "--model", model_dir / "generator.keras"], capsys
        )
        assert code == 0, err
        assert f"wrote {out}" in stdout
        result = np.asarray(Image.open(out))
        assert result.shape == image.shape
        assert (result[~hole] == image[~hole]).all()
        assert (result[hole] != image[hole]).any(axis=-1).mean() > 0.5


def test_default_model_is_resolved_from_the_current_directory(files, model_dir, capsys, monkeypatch):
    tmp, image, hole = files
    monkeypatch.chdir(model_dir.parents[2])  # the folder holding models/<recipe>/stage2/generator.keras
    code, _, err = run(["fill", tmp / "photo.png", tmp / "mask.png", "-o", tmp / "out.png"], capsys)
    assert code == 0, err
    refine = np.asarray(Image.open(tmp / "out.png"))
    assert (refine[~hole] == image[~hole]).all()
    # --recipe paper selects the paper recipe's generator: another fill.
    code, _, err = run(["fill", tmp / "photo.png", tmp / "mask.png", "-o", tmp / "paper.png", "--recipe", "paper"], capsys)
    assert code == 0, err
    assert not np.array_equal(np.asarray(Image.open(tmp / "paper.png")), refine)
    with pytest.raises(SystemExit) as exit_info:
        run(["fill", tmp / "photo.png", tmp / "mask.png", "-o", tmp / "x.png", "--recipe", "paper", "--model", "m.keras"], capsys)
    assert exit_info.value.code == 2 and not (tmp / "x.png").exists()


def test_default_recipe_comes_from_the_params_file(files, model_dir, capsys, monkeypatch):
    tmp, _, _ = files
    root = model_dir.parents[2]
    monkeypatch.chdir(root)
    paper_default = tmp / "paper-default.yaml"
    paper_default.write_text((root / "params.yaml").read_text().replace("default_recipe: refine", "default_recipe: paper"))
    outs = {}
    for name, extra in (("default", []), ("paper-default", ["--params", paper_default]), ("paper", ["--recipe", "paper"])):
        outs[name] = tmp / f"{name}.png"
        code, _, err = run(["fill", tmp / "photo.png", tmp / "mask.png", "-o", outs[name], *extra], capsys)
        assert code == 0, err
    assert outs["paper-default"].read_bytes() == outs["paper"].read_bytes() != outs["default"].read_bytes()


def test_default_recipe_needs_the_params_file(files, capsys, monkeypatch):
    tmp, _, _ = files
    monkeypatch.chdir(tmp)  # no params.yaml here: the default model cannot be named
    code, _, err = run(["fill", tmp / "photo.png", tmp / "mask.png", "-o", tmp / "out.png"], capsys)
    assert code == 1 and not (tmp / "out.png").exists()
    assert_one_line_error(err, "params.yaml: params file not found", "train.default_recipe")


def test_alpha_channel_is_the_mask_and_small_photo(tmp_path, model_dir, capsys):
    image = photo("coffee", 21, 17)  # smaller than the model input
    alpha = np.full((21, 17), 255, np.uint8)
    alpha[5:12, 4:9] = 0
    Image.fromarray(np.dstack([image, alpha])).save(tmp_path / "cut.png")
    out = tmp_path / "out.png"
    code, _, err = run(["fill", tmp_path / "cut.png", "-o", out, "--model", model_dir / "generator.keras"], capsys)
    assert code == 0, err
    result = np.asarray(Image.open(out))
    assert result.shape == (21, 17, 3)
    assert (result[alpha == 255] == image[alpha == 255]).all()


def test_opaque_photo_without_mask_says_no_transparent_pixel(tmp_path, capsys):
    image = photo("coffee", 21, 17)
    Image.fromarray(np.dstack([image, np.full((21, 17), 255, np.uint8)])).save(tmp_path / "opaque.png")
    out = tmp_path / "out.png"
    code, _, err = run(["fill", tmp_path / "opaque.png", "-o", out, "--method", "telea"], capsys)
    assert code == 1 and not out.exists()
    assert "opaque.png (alpha channel): no transparent pixel" in err and len(err.strip().splitlines()) == 1


def test_a_named_model_with_a_classical_method_is_an_error(files, model_dir, capsys):
    tmp, _, _ = files
    out = tmp / "out.png"
    code, _, err = run(
        ["fill", tmp / "photo.png", tmp / "mask.png", "-o", out, "--method", "telea", "--model", model_dir / "generator.keras"],
        capsys,
    )
    assert code == 1 and not out.exists()
    assert "only used with --method model, not --method telea" in err


@pytest.mark.parametrize("method", ["telea", "ns", "biharmonic", "fsr", "blend"])
def test_classical_methods_need_no_model(files, capsys, method, monkeypatch):
    tmp, image, hole = files
    monkeypatch.chdir(tmp)  # no models/ here
    code, _, err = run(["fill", tmp / "photo.png", tmp / "mask.png", "-o", tmp / "out.png", "--method", method], capsys)
    assert code == 0, err
    result = np.asarray(Image.open(tmp / "out.png"))
    assert (result[~hole] == image[~hole]).all() and not (result[hole] == image[hole]).all()


def test_model_without_card_needs_hole_value(files, model_dir, capsys, tmp_path_factory):
    tmp, image, hole = files
    lone = tmp_path_factory.mktemp("nocard") / "g.keras"
    lone.write_bytes((model_dir.parents[1] / "paper" / "stage2" / "generator.keras").read_bytes())
    refine = lone.with_name("r.keras")  # a mask-channel model: its input cannot be guessed without the card
    refine.write_bytes((model_dir / "generator.keras").read_bytes())
    code, _, err = run(
        ["fill", tmp / "photo.png", tmp / "mask.png", "-o", tmp / "out.png", "--model", refine, "--hole-value", "1.0"], capsys
    )
    assert code == 1
    assert_one_line_error(err, str(refine), "model_card.json", "(S, S, 3)")
    code, _, err = run(["fill", tmp / "photo.png", tmp / "mask.png", "-o", tmp / "out.png", "--model", lone], capsys)
    assert code == 1
    assert_one_line_error(err, str(lone), "--hole-value")
    assert not (tmp / "out.png").exists()
    code, _, err = run(
        ["fill", tmp / "photo.png", tmp / "mask.png", "-o", tmp / "out.png", "--model", lone, "--hole-value", "1.0"], capsys
    )
    assert code == 0, err


@pytest.mark.parametrize("value", ["2", "-0.5", "nan", "white"])
def test_hole_value_outside_0_1_is_a_usage_error(capsys, value):
    with pytest.raises(SystemExit) as exit_:
        main(["fill", "p.png", "m.png", "-o", "o.png", "--hole-value", value])
    assert exit_.value.code == 2
    assert "argument --hole-value" in capsys.readouterr().err.splitlines()[-1]


def _bad_case(tmp: Path, case: str) -> tuple[list, str]:
    """Arguments after `fill` for one broken input, and the file the error must name."""
    photo_png, mask_png = tmp / "photo.png", tmp / "mask.png"
    if case == "mask_size":
        Image.fromarray(box_mask(75, 100, 5, 5, 5, 5)).save(tmp / "small_mask.png")
        return [photo_png, tmp / "small_mask.png"], "small_mask.png: mask size 100x75 differs"
    if case == "empty_mask":
        Image.fromarray(np.zeros((75, 101), np.uint8)).save(tmp / "empty.png")
        return [photo_png, tmp / "empty.png"], "empty.png: the mask has no hole"
    if case == "full_mask":
        Image.fromarray(np.full((75, 101), 255, np.uint8)).save(tmp / "full.jpg")
        return [photo_png, tmp / "full.jpg"], "full.jpg: the mask covers the whole photo"
    if case == "unreadable_photo":
        (tmp / "broken.png").write_bytes((tmp / "photo.png").read_bytes()[:200])  # truncated PNG
        return [tmp / "broken.png", mask_png], "broken.png: cannot decode image"
    if case == "text_mask":
        (tmp / "notes.png").write_text("hello")
        return [photo_png, tmp / "notes.png"], "notes.png: not a readable image"
    if case == "missing_photo":
        return [tmp / "nope.jpg", mask_png], "nope.jpg: file not found"
    if case == "no_alpha":
        return [photo_png], "photo.png: the photo has no alpha channel"
    if case == "missing_model":
        return [photo_png, mask_png, "--model", tmp / "none.keras"], "none.keras: model file not found; run `dvc repro`"
    raise AssertionError(case)


CASES = ["mask_size", "empty_mask", "full_mask", "unreadable_photo", "text_mask", "missing_photo", "no_alpha", "missing_model"]


@pytest.mark.parametrize("case", CASES)
def test_bad_input_one_line_error_and_no_output(files, model_dir, capsys, case):
    tmp, _, _ = files
    argv, needle = _bad_case(tmp, case)
    if "--model" not in argv:
        argv += ["--model", model_dir / "generator.keras"]
    out = tmp / "out.png"
    code, _, err = run(["fill", *argv, "-o", out], capsys)
    assert code == 1
    assert_one_line_error(err, needle)
    assert not out.exists()
    assert [p.name for p in tmp.iterdir() if p.name.startswith(".")] == []  # no temp file left either


def test_running_out_of_memory_is_one_line_naming_the_photo(files, capsys, monkeypatch):
    tmp, _, _ = files

    def exhausted(*args):
        raise MemoryError("Unable to allocate 3.5 GiB for an array")

    monkeypatch.setattr("image_completion.app.fill.Filler.fill", exhausted)
    code, _, err = run(["fill", tmp / "photo.png", tmp / "mask.png", "-o", tmp / "out.png", "--method", "telea"], capsys)
    assert code == 1
    assert_one_line_error(err, "photo.png: out of memory")
    assert not (tmp / "out.png").exists()


def test_an_existing_output_survives_a_failed_run(files, capsys):
    tmp, _, _ = files
    out = tmp / "out.png"
    out.write_bytes(b"previous result")
    Image.fromarray(np.zeros((75, 101), np.uint8)).save(tmp / "empty.png")
    code, _, err = run(["fill", tmp / "photo.png", tmp / "empty.png", "-o", out, "--method", "telea"], capsys)
    assert code == 1 and out.read_bytes() == b"previous result"


def test_default_model_missing_says_dvc_repro(files, capsys, monkeypatch):
    tmp, _, _ = files
    monkeypatch.chdir(tmp)
    (tmp / "params.yaml").write_text((ROOT / "params.yaml").read_text())
    code, _, err = run(["fill", tmp / "photo.png", tmp / "mask.png", "-o", tmp / "out.png"], capsys)
    assert code == 1
    assert_one_line_error(err, "models/refine/stage2/generator.keras: model file not found", "dvc repro")


def test_output_must_be_png_in_an_existing_folder(files, capsys):
    tmp, _, _ = files
    code, _, err = run(["fill", tmp / "photo.png", tmp / "mask.png", "-o", tmp / "out.jpg", "--method", "telea"], capsys)
    assert code == 1 and not (tmp / "out.jpg").exists()
    assert_one_line_error(err, "out.jpg: the output is written as PNG")
    code, _, err = run(["fill", tmp / "photo.png", tmp / "mask.png", "-o", tmp / "no" / "o.png", "--method", "telea"], capsys)
    assert code == 1
    assert_one_line_error(err, "does not exist")


def _folders(tmp: Path):
    photos, masks = tmp / "photos", tmp / "masks"
    photos.mkdir(parents=True)
    masks.mkdir()
    shapes = {"beach": ("astronaut", 64, 90), "cat": ("chelsea", 45, 31), "cup": ("coffee", 100, 150)}
    for stem, (name, h, w) in shapes.items():
        Image.fromarray(photo(name, h, w)).save(photos / f"{stem}.jpg" if stem == "cat" else photos / f"{stem}.png")
        Image.fromarray(box_mask(h, w, 10, 8, 12, 9)).save(masks / f"{stem}.png")
    return photos, masks, shapes


def test_folder_mode_fills_every_pair_with_a_progress_bar(tmp_path, model_dir, capsys):
    photos, masks, shapes = _folders(tmp_path)
    out = tmp_path / "filled"
    code, stdout, err = run(["fill", photos, masks, "-o", out, "--model", model_dir / "generator.keras"], capsys)
    assert code == 0, err
    assert "3/3" in err  # tqdm's progress bar
    assert "wrote 3 filled photos" in stdout
    assert sorted(p.name for p in out.iterdir()) == ["beach.png", "cat.png", "cup.png"]
    for stem, (_, h, w) in shapes.items():
        assert np.asarray(Image.open(out / f"{stem}.png")).shape == (h, w, 3)


def test_folder_mode_writes_nothing_when_one_pair_is_bad(tmp_path, model_dir, capsys):
    photos, masks, _ = _folders(tmp_path)
    Image.fromarray(box_mask(45, 30, 1, 1, 3, 3)).save(masks / "cat.png")  # wrong size
    out = tmp_path / "filled"
    code, _, err = run(["fill", photos, masks, "-o", out, "--model", model_dir / "generator.keras"], capsys)
    assert code == 1
    assert_one_line_error(err, "cat.png: mask size 30x45 differs")
    assert not out.exists()


def test_outputs_never_overwrite_inputs(tmp_path, files, capsys):
    tmp, _, _ = files
    before = (tmp / "photo.png").read_bytes()
    code, _, err = run(["fill", tmp / "photo.png", tmp / "mask.png", "-o", tmp / "photo.png", "--method", "telea"], capsys)
    assert code == 1 and (tmp / "photo.png").read_bytes() == before
    assert_one_line_error(err, "photo.png: the output would overwrite an input file")
    photos, masks, _ = _folders(tmp_path / "f")
    before = (photos / "beach.png").read_bytes()
    code, _, err = run(["fill", photos, masks, "-o", photos, "--method", "telea"], capsys)
    assert code == 1 and (photos / "beach.png").read_bytes() == before
    assert_one_line_error(err, "beach.png: the output would overwrite an input file", "nothing was written")
    assert sorted(p.name for p in photos.iterdir()) == ["beach.png", "cat.jpg", "cup.png"]


def test_folder_photo_with_file_mask_is_an_error(tmp_path, capsys):
    photos, masks, _ = _folders(tmp_path)
    code, _, err = run(["fill", photos, masks / "cat.png", "-o", tmp_path / "o", "--method", "telea"], capsys)
    assert code == 1
    assert_one_line_error(err, "cat.png: with a folder of photos, MASK must be a folder")


def test_console_script_is_declared():
    (entry,) = [e for e in importlib.metadata.entry_points(group="console_scripts") if e.name == "image-completion"]
    assert entry.value == "image_completion.app.cli:main"


@pytest.mark.parametrize("case", ["mask_size", "corrupt_model"])
def test_subprocess_exit_code_and_single_stderr_line(files, case):
    """A real process: TensorFlow's start-up logging must not bury the one-line error."""
    tmp, _, _ = files
    Image.fromarray(box_mask(75, 100, 5, 5, 5, 5)).save(tmp / "small_mask.png")
    if case == "mask_size":
        argv, needle = [tmp / "small_mask.png", "--method", "telea"], "small_mask.png: mask size 100x75 differs"
    else:  # TensorFlow is imported before the model fails to load
        (tmp / "m").mkdir()
        with zipfile.ZipFile(tmp / "m" / "generator.keras", "w") as archive:  # a zip, but no model inside
            archive.writestr("notes.txt", "hello")
        (tmp / "m" / "model_card.json").write_text(json.dumps({"image_size": SIZE, "hole_value": 1.0}))
        argv, needle = [tmp / "mask.png", "--model", tmp / "m" / "generator.keras"], "generator.keras: cannot load the model"
    env = {k: v for k, v in os.environ.items() if k != "TF_CPP_MIN_LOG_LEVEL"}
    done = subprocess.run(
        [sys.executable, "-m", "image_completion.app.cli", "fill", tmp / "photo.png", *argv, "-o", tmp / "out.png"],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    assert done.returncode == 1
    assert_one_line_error(done.stderr, needle)
    assert not (tmp / "out.png").exists()
