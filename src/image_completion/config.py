"""Typed parameters, read once from ``params.yaml`` at each stage's entry point.

Library code takes these dataclasses (or plain arguments), never the YAML file. Loading is
strict: a missing or unknown key, or a value outside its allowed set, raises ``ConfigError``
naming the file, the key and the allowed values.
"""

from __future__ import annotations

import dataclasses
import sys
import types
import typing
from pathlib import Path
from typing import Any, Literal, get_args, get_origin

import yaml


class ConfigError(ValueError):
    """A params file that does not match the schema."""


SOURCES = ("debian", "skimage", "places365", "cifar10", "folder")
MASK_KINDS = ("box", "strokes", "mixed")
GENERATOR_KINDS = ("autoencoder", "unet", "unet_scaled")
STRATEGIES = ("default", "mirrored", "multiworker")
PRECISIONS = ("float32", "mixed_bfloat16", "mixed_float16")
BASELINES = ("biharmonic", "telea", "navier_stokes", "mean_fill")
BACKBONE_WEIGHTS = ("hed-bsds500", "imagenet", "none")


@dataclasses.dataclass(frozen=True)
class BaseParams:
    seed: int
    image_size: int
    hole_value: float

    def __post_init__(self):
        if self.image_size < 16 or self.image_size % 16:
            raise ConfigError(f"base.image_size must be a positive multiple of 16, got {self.image_size}")
        if not 0.0 <= self.hole_value <= 1.0:
            raise ConfigError(f"base.hole_value must lie in [0, 1], got {self.hole_value}")


def _check_sha256(value, key: str, allow_none: bool) -> None:
    if value is None and allow_none:
        return
    if not isinstance(value, str) or len(value) != 64 or any(c not in "0123456789abcdef" for c in value):
        raise ConfigError(f"{key} must be a sha256 (64 lowercase hex digits){' or null' if allow_none else ''}, got {value!r}")


@dataclasses.dataclass(frozen=True)
class Places365Params:
    url: str
    sha256: str | None
    categories: list[str]
    max_images_per_category: int

    def __post_init__(self):
        _check_sha256(self.sha256, "data.places365.sha256", allow_none=True)
        if not self.categories:
            raise ConfigError("data.places365.categories must name at least one category (e.g. beach)")
        if self.max_images_per_category < 1:
            raise ConfigError(f"data.places365.max_images_per_category must be >= 1, got {self.max_images_per_category}")


@dataclasses.dataclass(frozen=True)
class Cifar10Params:
    url: str
    sha256: str
    max_images: int

    def __post_init__(self):
        _check_sha256(self.sha256, "data.cifar10.sha256", allow_none=False)
        if self.max_images < 1:
            raise ConfigError(f"data.cifar10.max_images must be >= 1, got {self.max_images}")


@dataclasses.dataclass(frozen=True)
class DataParams:
    source: Literal["debian", "skimage", "places365", "cifar10", "folder"]
    allow_missing: bool
    max_side: int
    val_fraction: float
    test_fraction: float
    debian_test: Literal["sea_or_water", "random"]
    folder: str | None
    places365: Places365Params
    cifar10: Cifar10Params

    def __post_init__(self):
        if self.source == "folder" and not self.folder:
            raise ConfigError("data.folder must name a directory when data.source is 'folder'")
        for key in ("val_fraction", "test_fraction"):
            if not 0.0 < getattr(self, key) < 1.0:
                raise ConfigError(f"data.{key} must lie in (0, 1), got {getattr(self, key)}")
        if self.max_side < 16:
            raise ConfigError(f"data.max_side must be at least 16 pixels, got {self.max_side}")


@dataclasses.dataclass(frozen=True)
class MaskParams:
    train_kind: Literal["box", "strokes", "mixed"]
    box_min: float
    box_max: float
    strokes_max: int
    stroke_vertices_max: int
    stroke_length_max: float
    stroke_width_min: float
    stroke_width_max: float
    mixed_box_probability: float
    eval_per_bucket: int
    eval_buckets: list[float]

    def __post_init__(self):
        if not 0.0 < self.box_min <= self.box_max <= 1.0:
            raise ConfigError(f"masks: need 0 < box_min <= box_max <= 1, got {self.box_min}, {self.box_max}")
        if not 0.0 < self.stroke_width_min <= self.stroke_width_max <= 1.0:
            raise ConfigError("masks: need 0 < stroke_width_min <= stroke_width_max <= 1")
        if self.strokes_max < 1 or self.stroke_vertices_max < 2:
            raise ConfigError(
                f"masks: need strokes_max >= 1 and stroke_vertices_max >= 2, got {self.strokes_max}, "
                f"{self.stroke_vertices_max}"
            )
        if not 0.0 < self.stroke_length_max <= 2.0:
            raise ConfigError(f"masks.stroke_length_max must lie in (0, 2], got {self.stroke_length_max}")
        if not 0.0 <= self.mixed_box_probability <= 1.0:
            raise ConfigError(f"masks.mixed_box_probability must lie in [0, 1], got {self.mixed_box_probability}")
        if self.eval_per_bucket < 1:
            raise ConfigError(f"masks.eval_per_bucket must be >= 1, got {self.eval_per_bucket}")
        edges = self.eval_buckets
        if len(edges) < 2 or any(b <= a for a, b in zip(edges, edges[1:])) or edges[0] < 0 or edges[-1] > 1:
            raise ConfigError(f"masks.eval_buckets must be increasing edges in [0, 1], got {edges}")


@dataclasses.dataclass(frozen=True)
class ModelParams:
    generator: Literal["autoencoder", "unet", "unet_scaled"]
    base_filters: int
    decoder_filters: int
    leaky_relu_alpha: float
    skip_coefficients: list[float]
    backbone_weights: str
    dense_units: int

    def __post_init__(self):
        if len(self.skip_coefficients) != 4:
            raise ConfigError(f"model.skip_coefficients needs 4 values (layers 4, 3, 2, 1), got {self.skip_coefficients}")
        if self.backbone_weights not in BACKBONE_WEIGHTS and not self.backbone_weights.endswith(".h5"):
            raise ConfigError(
                f"model.backbone_weights: {self.backbone_weights!r} is not allowed; allowed values: "
                f"{list(BACKBONE_WEIGHTS)} or a path to a .h5 weights file"
            )


@dataclasses.dataclass(frozen=True)
class CompareParams:
    kinds: list[str]
    image_size: int
    base_filters: int
    batch_size: int
    learning_rate: float
    images_per_epoch: int
    epochs: int
    validation_images: int

    def __post_init__(self):
        unknown = [k for k in self.kinds if k not in GENERATOR_KINDS]
        if unknown:
            raise ConfigError(f"compare.kinds: unknown {unknown}; allowed: {list(GENERATOR_KINDS)}")
        if self.image_size % 16:
            raise ConfigError(f"compare.image_size must be a multiple of 16, got {self.image_size}")


@dataclasses.dataclass(frozen=True)
class TrainParams:
    batch_size: int
    g_learning_rate: float
    d_learning_rate: float
    images_per_epoch: int
    stage1_epochs: int
    stage2_epochs: int
    valid_weight: float
    hole_weight: float
    adversarial_weight: float
    style_weight: float
    strategy: Literal["default", "mirrored", "multiworker"]
    precision: Literal["float32", "mixed_bfloat16", "mixed_float16"]
    validation_images: int

    @property
    def steps_per_epoch(self) -> int:
        return self.images_per_epoch // self.batch_size

    def __post_init__(self):
        if self.images_per_epoch % self.batch_size:
            raise ConfigError(
                f"train.images_per_epoch ({self.images_per_epoch}) must be a multiple of "
                f"train.batch_size ({self.batch_size})"
            )


@dataclasses.dataclass(frozen=True)
class EvaluateParams:
    baselines: list[str]
    inpaint_radius: int
    bootstrap_samples: int
    batch_size: int

    def __post_init__(self):
        unknown = [b for b in self.baselines if b not in BASELINES]
        if unknown:
            raise ConfigError(f"evaluate.baselines: unknown {unknown}; allowed: {list(BASELINES)}")


@dataclasses.dataclass(frozen=True)
class Params:
    base: BaseParams
    data: DataParams
    masks: MaskParams
    model: ModelParams
    compare: CompareParams
    train: TrainParams
    evaluate: EvaluateParams


def _is_optional(tp) -> bool:
    return get_origin(tp) in (typing.Union, types.UnionType) and type(None) in get_args(tp)


def _convert(tp, value, where: str):
    """Checks ``value`` against the annotation ``tp`` (a small subset of typing) and converts it."""
    if _is_optional(tp):
        if value is None:
            return None
        (tp,) = [a for a in get_args(tp) if a is not type(None)]
    if dataclasses.is_dataclass(tp):
        return _build(tp, value, where)
    origin = get_origin(tp)
    if origin is Literal:
        allowed = get_args(tp)
        if value not in allowed:
            raise ConfigError(f"{where}: {value!r} is not allowed; allowed values: {list(allowed)}")
        return value
    if origin is list:
        (item,) = get_args(tp)
        if not isinstance(value, list):
            raise ConfigError(f"{where}: expected a list, got {value!r}")
        return [_convert(item, v, f"{where}[{i}]") for i, v in enumerate(value)]
    if tp is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"{where}: expected true or false, got {value!r}")
        return value
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"{where}: expected an integer, got {value!r}")
        return value
    if tp is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(f"{where}: expected a number, got {value!r}")
        return float(value)
    if tp is str:
        if not isinstance(value, str):
            raise ConfigError(f"{where}: expected a string, got {value!r}")
        return value
    raise TypeError(f"unsupported annotation {tp!r} at {where}")


def _build(cls, mapping, where: str):
    if not isinstance(mapping, dict):
        raise ConfigError(f"{where}: expected a mapping, got {mapping!r}")
    hints = typing.get_type_hints(cls)
    names = [f.name for f in dataclasses.fields(cls)]
    unknown = sorted(set(mapping) - set(names))
    missing = [n for n in names if n not in mapping]
    if unknown or missing:
        problems = [f"unknown keys {unknown}"] * bool(unknown) + [f"missing keys {missing}"] * bool(missing)
        raise ConfigError(f"{where}: {', '.join(problems)}; allowed keys: {names}")
    values = {n: _convert(hints[n], mapping[n], f"{where}.{n}" if where else n) for n in names}
    try:
        return cls(**values)
    except ConfigError as err:
        raise ConfigError(f"{where}: {err}") from None


def params_from_dict(raw: dict[str, Any], source: str = "params") -> Params:
    """Builds and validates ``Params`` from an already-parsed mapping."""
    return _build(Params, raw, source)


def load_stage_params(path: str | Path, prog: str) -> Params:
    """``load_params`` for a stage's entry point: a bad params file ends the process with one
    line ``PROG: error: ...`` on stderr and exit status 2 (a usage error), not a traceback."""
    try:
        return load_params(path)
    except ConfigError as err:
        print(f"{prog}: error: {err}", file=sys.stderr)
        raise SystemExit(2) from None


def load_params(path: str | Path) -> Params:
    """Reads and validates a params file. Errors name the file and the offending key."""
    path = Path(path)
    try:
        raw = yaml.safe_load(path.read_text())
    except FileNotFoundError:
        raise ConfigError(f"{path}: params file not found") from None
    except yaml.YAMLError as err:
        raise ConfigError(f"{path}: not valid YAML: {err}") from None
    return params_from_dict(raw, str(path))
