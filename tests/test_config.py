"""The params schema: the shipped files parse, and bad params fail loudly with the key named."""

from pathlib import Path

import pytest
import yaml

from image_completion.config import ConfigError, load_params, params_from_dict

ROOT = Path(__file__).resolve().parents[1]


def _raw():
    return yaml.safe_load((ROOT / "params.yaml").read_text())


def test_shipped_params_parse_and_hold_the_papers_hyperparameters():
    p = load_params(ROOT / "params.yaml")
    assert p.train.batch_size == 8
    assert p.train.g_learning_rate == 1e-4 and p.train.d_learning_rate == 1e-7
    assert p.train.images_per_epoch == 2560 and p.train.steps_per_epoch == 320
    assert (p.train.valid_weight, p.train.hole_weight, p.train.adversarial_weight) == (1.0, 6.0, 0.1)
    assert p.train.style_weight == 0.0
    assert p.model.leaky_relu_alpha == 0.001
    assert p.model.skip_coefficients == [1.0, 0.8, 0.4, 0.2]


def test_unknown_key_is_named_with_the_allowed_keys():
    raw = _raw()
    raw["train"]["learning_rate"] = 1e-3
    with pytest.raises(ConfigError, match=r"unknown keys \['learning_rate'\].*allowed keys: \[.*g_learning_rate"):
        params_from_dict(raw)


def test_missing_key_is_named():
    raw = _raw()
    del raw["base"]["seed"]
    with pytest.raises(ConfigError, match=r"missing keys \['seed'\]"):
        params_from_dict(raw)


@pytest.mark.parametrize(
    "section,key,value,pattern",
    [
        ("data", "source", "imagenet", r"allowed values: \['debian', 'skimage', 'places365', 'cifar10', 'folder'\]"),
        ("model", "generator", "resnet", r"allowed values: \['autoencoder', 'unet', 'unet_scaled'\]"),
        ("train", "strategy", "tpu", r"allowed values: \['default', 'mirrored', 'multiworker'\]"),
        ("train", "precision", "float16", r"allowed values"),
        ("masks", "train_kind", "circles", r"allowed values: \['box', 'strokes', 'mixed'\]"),
        ("base", "image_size", 60, r"multiple of 16"),
        ("base", "seed", "abc", r"expected an integer"),
        ("train", "images_per_epoch", 2561, r"multiple of train.batch_size"),
        ("evaluate", "baselines", ["telea", "magic"], r"allowed: \['biharmonic'"),
        ("compare", "kinds", ["unet", "vit"], r"allowed: \['autoencoder'"),
        ("model", "backbone_weights", "resnet50", r"allowed values: \['hed-bsds500', 'imagenet', 'none'\] or a path"),
    ],
)
def test_bad_values_name_the_key_and_the_allowed_values(section, key, value, pattern):
    raw = _raw()
    raw[section][key] = value
    with pytest.raises(ConfigError, match=pattern):
        params_from_dict(raw)


def test_folder_source_needs_a_folder():
    raw = _raw()
    raw["data"]["source"] = "folder"
    raw["data"]["folder"] = None
    with pytest.raises(ConfigError, match="data.folder"):
        params_from_dict(raw)


def test_missing_or_invalid_file_names_the_file(tmp_path):
    with pytest.raises(ConfigError, match="nope.yaml: params file not found"):
        load_params(tmp_path / "nope.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("base: [unclosed\n")
    with pytest.raises(ConfigError, match="bad.yaml: not valid YAML"):
        load_params(bad)


def test_a_stage_reports_a_bad_params_file_in_one_line(tmp_path):
    import subprocess
    import sys

    raw = _raw()
    raw["base"]["sed"] = raw["base"].pop("seed")
    bad = tmp_path / "params.yaml"
    bad.write_text(yaml.safe_dump(raw))
    result = subprocess.run(
        [sys.executable, "-m", "image_completion.masks", "--params", str(bad), "--out", str(tmp_path / "m")],
        capture_output=True, text=True, timeout=120,
    )
    assert result.returncode == 2
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith("masks: error: ") and "unknown keys ['sed'], missing keys ['seed']" in last
    assert "Traceback" not in result.stderr and not (tmp_path / "m").exists()


def test_only_the_actual_problem_is_named():
    raw = _raw()
    raw["base"]["extra"] = 1
    with pytest.raises(ConfigError) as err:
        params_from_dict(raw)
    assert "missing keys" not in str(err.value)
