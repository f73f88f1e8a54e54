"""The paper-scale configuration (configs/paper.yaml, an override of params.yaml) parses, turns
into the ``dvc exp run`` flags scripts/paper.sh passes, and builds its models.

It is meant for a GPU machine with internet access; here its ImageNet backbone download is
served from 127.0.0.1 (a randomly initialised VGG16 in Keras' file format).
"""

import hashlib
import subprocess
import sys
from pathlib import Path

import keras
import numpy as np
import pytest
import yaml

from conftest import random_vgg_no_top, write_keras_legacy_h5
from image_completion.config import dvc_set_flags, load_params, params_from_dict
from image_completion.core import models
from image_completion.errors import ConfigError

ROOT = Path(__file__).resolve().parents[1]
PARAMS, PAPER = ROOT / "params.yaml", ROOT / "configs" / "paper.yaml"


def test_paper_config_holds_the_papers_settings():
    p = load_params(PARAMS, PAPER)
    assert (p.base.image_size, p.model.base_filters, p.model.decoder_filters) == (256, 64, 96)
    assert p.model.generator == "unet_scaled" and p.model.backbone_weights == "imagenet"
    assert p.data.source == "places365" and p.data.places365.categories == ["beach", "coast"]
    paper = p.recipes["paper"]
    assert paper.stage1_epochs + paper.stage2_epochs == 140
    assert (p.train.batch_size, p.train.images_per_epoch) == (8, 2560)
    assert (paper.g_learning_rate, paper.d_learning_rate) == (1e-4, 1e-7)
    assert (paper.prefill, paper.mask_channel, paper.upsampling, paper.adversarial_weight) == (
        "constant",
        False,
        "transpose",
        0.1,
    )
    assert p.compare.image_size == 32  # the paper's search ran on CIFAR-10 sized images


def test_every_override_changes_a_value_of_params_yaml():
    base, override = yaml.safe_load(PARAMS.read_text()), yaml.safe_load(PAPER.read_text())

    def leaves(tree, prefix=""):
        for key, value in tree.items():
            yield from leaves(value, f"{prefix}{key}.") if isinstance(value, dict) else [(f"{prefix}{key}", value)]

    def get(tree, dotted):
        for part in dotted.split("."):
            tree = tree[part]
        return tree

    same = [key for key, value in leaves(override) if get(base, key) == value]
    assert not same, f"configs/paper.yaml repeats params.yaml's values: {same}"


def test_the_dvc_flags_set_exactly_the_override():
    """What ``dvc exp run`` would write: each flag's YAML value set into params.yaml's mapping."""
    flags = subprocess.run(
        [sys.executable, "-m", "image_completion.config", "--params", str(PARAMS), "--dvc-set-flags", str(PAPER)],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.splitlines()
    assert flags == dvc_set_flags(PARAMS, PAPER)
    raw = yaml.safe_load(PARAMS.read_text())
    for flag in flags:
        dotted, value = flag.removeprefix("--set-param=").split("=", 1)
        *parents, leaf = dotted.split(".")
        node = raw
        for part in parents:
            node = node[part]
        node[leaf] = yaml.safe_load(value)
    assert params_from_dict(raw) == load_params(PARAMS, PAPER)


@pytest.mark.parametrize(
    ("text", "named"),
    [
        ("model:\n  base_filterz: 64\n", "model.base_filterz"),
        ("recipes:\n  nope:\n    lr: 1\n", "recipes.nope.lr"),
        ("[]\n", "mapping"),
    ],
)
def test_an_override_key_params_yaml_lacks_is_refused_naming_it(tmp_path, text, named):
    override = tmp_path / "typo.yaml"
    override.write_text(text)
    with pytest.raises(ConfigError, match=rf"typo\.yaml: .*{named}"):
        load_params(PARAMS, override)
    result = subprocess.run(
        [sys.executable, "-m", "image_completion.config", "--params", str(PARAMS), "--dvc-set-flags", str(override)],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 2 and "typo.yaml" in result.stderr


def test_paper_config_builds_its_models(tmp_path, monkeypatch, http_server):
    p = load_params(PARAMS, PAPER)
    generator = models.build_generator(
        p.model.generator,
        p.base.image_size,
        base_filters=p.model.base_filters,
        decoder_filters=p.model.decoder_filters,
        alpha=p.model.leaky_relu_alpha,
        skip_coefficients=p.model.skip_coefficients,
    )
    assert generator.output_shape == (None, 256, 256, 3)

    source = random_vgg_no_top()
    weights = tmp_path / models.IMAGENET_NO_TOP_FILENAME
    write_keras_legacy_h5(source, weights)
    data = weights.read_bytes()
    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "keras_home"))
    monkeypatch.setattr(models, "IMAGENET_NO_TOP_MD5", hashlib.md5(data).hexdigest())
    monkeypatch.setattr(models, "IMAGENET_NO_TOP_URL", http_server.add("/vgg16_notop.h5", data))
    discriminator = models.build_discriminator(
        p.base.image_size, backbone_weights=p.model.backbone_weights, dense_units=p.model.dense_units
    )
    assert discriminator.output_shape == (None, 1)
    np.testing.assert_array_equal(
        models.backbone_of(discriminator).get_layer("block5_conv3").get_weights()[0],
        source.get_layer("block5_conv3").get_weights()[0],
    )
    probability = discriminator(keras.ops.zeros((1, 256, 256, 3)))
    assert probability.shape == (1, 1)
