"""The params schema: the shipped files parse, and every bad value fails loudly with its key named."""

import copy
import dataclasses
import subprocess
import sys
import types
import typing
from pathlib import Path

import pytest
import yaml
from pydantic.fields import FieldInfo

from image_completion import config
from image_completion.config import load_params, params_from_dict
from image_completion.errors import ConfigError

ROOT = Path(__file__).resolve().parents[1]


def _raw():
    return yaml.safe_load((ROOT / "params.yaml").read_text())


def _set(raw, key: str, value):
    raw = copy.deepcopy(raw)
    *path, last = key.split(".")
    node = raw
    for part in path:
        node = node[part]
    node[last] = value
    return raw


def test_shipped_params_parse_and_the_paper_recipe_holds_the_papers_hyperparameters():
    p = load_params(ROOT / "params.yaml")
    paper = p.recipes["paper"]
    assert p.train.batch_size == 8 and p.train.images_per_epoch == 2560 and p.train.steps_per_epoch == 320
    assert (paper.g_learning_rate, paper.d_learning_rate) == (1e-4, 1e-7)
    assert (paper.valid_weight, paper.hole_weight, paper.adversarial_weight, paper.style_weight) == (1.0, 6.0, 0.1, 0.0)
    assert (paper.prefill, paper.mask_channel, paper.residual_gate) == ("constant", False, None)
    assert (paper.upsampling, paper.lr_schedule) == ("transpose", "constant")
    assert p.model.leaky_relu_alpha == 0.001 and p.model.skip_coefficients == [1.0, 0.8, 0.4, 0.2]
    assert p.train.recipes == ["paper", "refine"]


@pytest.mark.parametrize(
    "name,named",
    [
        ("telea", "clash"),
        ("refine_raw", "clash"),
        ("index", "clash"),
        ("Big Net", r"recipes\.Big Net"),
        ("../up", r"recipes\.\.\./up"),
    ],
)
def test_recipe_names_that_would_clash_or_escape_are_refused(name, named):
    raw = _raw()
    raw["recipes"][name] = raw["recipes"]["refine"]
    with pytest.raises(ConfigError, match=named):
        params_from_dict(raw)


def test_unknown_and_missing_keys_are_named():
    with pytest.raises(ConfigError, match=r"train\.learning_rate: unknown key"):
        params_from_dict(_set(_raw(), "train.learning_rate", 1e-3))
    raw = _raw()
    del raw["base"]["seed"]
    with pytest.raises(ConfigError, match=r"base\.seed: missing key"):
        params_from_dict(raw)


@pytest.mark.parametrize(
    "key,value,named",
    [
        ("data.source", "imagenet", "data.source"),
        ("model.generator", "resnet", "model.generator"),
        ("train.strategy", "tpu", "train.strategy"),
        ("train.precision", "float16", "'auto'"),
        ("masks.train.kind", "circles", "masks.train.kind"),
        ("base.image_size", 60, "multiple of 16"),
        ("base.seed", "abc", "base.seed"),
        ("base.seed", True, "base.seed"),
        ("train.images_per_epoch", 2561, "images_per_epoch"),
        ("train.recipes", ["paper", "magic"], "magic"),
        ("train.default_recipe", "magic", "train.default_recipe"),
        ("train.recipes", ["paper"], "train.default_recipe"),  # refine, the default, no longer trained
        ("evaluate.baselines", ["telea", "magic"], "evaluate.baselines.1"),
        ("compare.kinds", ["unet", "vit"], "compare.kinds.1"),
        ("model.backbone_weights", "resnet50", "backbone_weights"),
        ("recipes.refine.residual_gate", 0.1, "residual_gate must be null"),  # refine weighs fills: they are its output
        ("recipes.paper.mask_channel", True, None),  # valid: a paper-style input with the mask
        ("recipes.paper.residual_gate", 0.1, "mask_channel"),
        ("recipes.paper.prefill", ["biharmonic", "magic"], "recipes.paper.prefill"),
        ("recipes.paper.prefill", ["telea", "telea"], "recipes.paper.prefill"),
        ("recipes.paper.prefill", ["blend", "telea"], "recipes.paper.prefill"),  # blend already mixes fills
        ("recipes.paper.prefill", ["telea"], "recipes.paper.prefill"),  # one method is named, not listed
        ("recipes.paper.prefill", ["telea", "biharmonic"], "needs mask_channel"),
        ("masks.eval.buckets", [0.0, 0.3, 0.2], "increasing"),
        ("masks.train.box_min", 0.9, "box_min <= box_max"),
        ("data.cifar10.url", "https://host/a/..", "data.cifar10.url"),
        ("data.places365.url", "file:///etc/passwd", r"data.places365.url: 'file:///etc/passwd': only http"),
        ("data.cifar10.url", "https://host/a/", "data.cifar10.url: 'https://host/a/' must end in a plain file name"),
        ("data.cifar10.sha256", "xyz", "data.cifar10.sha256"),
    ],
)
def test_bad_values_name_the_key(key, value, named):
    raw = _set(_raw(), key, value)
    if named is None:
        params_from_dict(raw)
        return
    with pytest.raises(ConfigError, match=named.replace(".", r"\.").replace("'", "'")):
        params_from_dict(raw)


def _bounds(tp) -> list:
    """The annotated_types bounds (Ge, Gt, Le, Lt) of a scalar annotation (Optional unwrapped)."""
    if typing.get_origin(tp) in (typing.Union, types.UnionType):
        (tp,) = [a for a in typing.get_args(tp) if a is not type(None)]
    if typing.get_origin(tp) is not typing.Annotated:
        return []
    extras = typing.get_args(tp)[1:]
    return [
        m
        for e in extras
        for m in (e.metadata if isinstance(e, FieldInfo) else [e])
        if type(m).__name__ in ("Ge", "Gt", "Le", "Lt")
    ]


def _outside(bound, current) -> int | float:
    """A value just outside ``bound``, of the type of the shipped value."""
    kind = type(bound).__name__
    value = getattr(bound, kind.lower())
    step = 1 if isinstance(current, int) else 0.5
    return {"Ge": value - step, "Gt": value, "Le": value + step, "Lt": value}[kind]


def _numeric_keys():
    """(dotted key, a value outside one of its bounds) for every bound of every numeric key."""
    out = []

    def walk(cls, node, prefix):
        hints = typing.get_type_hints(cls, include_extras=True)
        for field in dataclasses.fields(cls):
            key, tp, value = f"{prefix}{field.name}", hints[field.name], node[field.name]
            if dataclasses.is_dataclass(tp):
                walk(tp, value, key + ".")
            elif typing.get_origin(tp) is dict:  # recipes: one entry per recipe
                for name in value:
                    walk(typing.get_args(tp)[1], value[name], f"{key}.{name}.")
            elif isinstance(value, (int, float)) and not isinstance(value, bool) or value is None:
                current = value if value is not None else 0.5
                out.extend((key, _outside(b, current)) for b in _bounds(tp))

    walk(config.Params, _raw(), "")
    return out


NUMERIC = _numeric_keys()


def test_every_numeric_key_has_a_range():
    ranged = {key for key, _ in NUMERIC}
    must = {
        "train.batch_size",
        "base.seed",
        "recipes.paper.stage1_epochs",
        "recipes.paper.g_learning_rate",
        "model.base_filters",
        "compare.image_size",
        "compare.batch_size",
        "evaluate.batch_size",
        "evaluate.inpaint_radius",
        "base.hole_value",
        "masks.eval.per_bucket",
        "data.max_side",
    }
    assert must <= ranged, must - ranged


@pytest.mark.parametrize("key,value", NUMERIC, ids=[f"{k}={v}" for k, v in NUMERIC])
def test_every_numeric_key_refuses_a_value_out_of_its_range(key, value):
    with pytest.raises(ConfigError, match=r"params: " + key.replace(".", r"\.") + r": Input should be"):
        params_from_dict(_set(_raw(), key, value))


def test_folder_source_needs_a_folder():
    raw = _set(_set(_raw(), "data.source", "folder"), "data.folder", None)
    with pytest.raises(ConfigError, match="data.folder"):
        params_from_dict(raw)


def test_missing_or_invalid_file_names_the_file(tmp_path):
    with pytest.raises(ConfigError, match="nope.yaml: params file not found"):
        load_params(tmp_path / "nope.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("base: [unclosed\n")
    with pytest.raises(ConfigError, match="bad.yaml: not valid YAML"):
        load_params(bad)


@pytest.mark.parametrize("key,value", [("base.sed", 1), ("train.batch_size", 0), ("base.seed", -1)])
def test_a_stage_reports_a_bad_params_file_in_one_line_and_exits_2(tmp_path, key, value):
    bad = tmp_path / "params.yaml"
    bad.write_text(yaml.safe_dump(_set(_raw(), key, value)))
    result = subprocess.run(
        [sys.executable, "-m", "image_completion.stages.masks", "--params", str(bad), "--out", str(tmp_path / "m")],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("masks: error: ") and key in lines[0]
    assert "Traceback" not in result.stderr and not (tmp_path / "m").exists()


def test_only_the_actual_problem_is_named():
    with pytest.raises(ConfigError) as err:
        params_from_dict(_set(_raw(), "base.extra", 1))
    assert "missing" not in str(err.value) and "base.extra" in str(err.value)
