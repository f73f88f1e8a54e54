"""Typed parameters: every key's type and allowed range, declared once, checked once at load.

Each stage's entry point calls ``load_stage_params``; library code takes these frozen
(pydantic) dataclasses and trusts them. A missing or unknown key, a wrong type or a value out
of range is a ``ConfigError`` naming the file, the key and the allowed range.
"""

from __future__ import annotations

import copy
import urllib.parse
from pathlib import Path
from typing import Annotated, Any, Literal, get_args

import yaml
from pydantic import AfterValidator, ConfigDict, Field, PlainValidator, Strict, TypeAdapter, ValidationError, model_validator
from pydantic.dataclasses import dataclass

from image_completion.errors import ConfigError, clip, run_main, usage_error
from image_completion.yaml_file import read_yaml

MaskKind = Literal["box", "strokes", "mixed"]
GeneratorKind = Literal["autoencoder", "unet", "unet_scaled"]
Strategy = Literal["default", "mirrored", "multiworker"]
Precision = Literal["auto", "float32", "mixed_bfloat16", "mixed_float16"]
# fsr_fast: OpenCV-contrib xphoto FSR (fast profile); blend: a fixed pixel mean of classical fills
# (baselines.BLEND_WEIGHTS, chosen on the validation photos by `python -m image_completion.stages.blend`).
DataSource = Literal["debian", "skimage", "places365", "cifar10", "folder"]
Baseline = Literal["biharmonic", "telea", "navier_stokes", "mean_fill", "fsr_fast", "blend"]
Upsampling = Literal["transpose", "resize"]
MASK_KINDS = get_args(MaskKind)
GENERATOR_KINDS = get_args(GeneratorKind)
STRATEGIES = get_args(Strategy)
PRECISIONS = get_args(Precision)
BASELINES = get_args(Baseline)
SOURCES = get_args(DataSource)
UPSAMPLINGS = get_args(Upsampling)
BACKBONE_WEIGHTS = ("hed-bsds500", "imagenet", "none")

# Methods whose fills a generator can be given side by side (blend mixes several of them already).
FILL_METHODS = ("biharmonic", "telea", "navier_stokes", "mean_fill", "fsr_fast")


def _prefill(value, sequence: type):
    """The hole before the generator: "constant" (every hole pixel is hole_value, the paper), one
    method's fill (a name of BASELINES), or 2-8 distinct FILL_METHODS whose fills the generator
    weighs per pixel (``models.WeighFills``), as ``sequence``. One error message for every wrong value."""
    if isinstance(value, str) and value in ("constant", *BASELINES):
        return value
    if isinstance(value, (list, tuple)) and 2 <= len(value) <= 8 and len(set(value)) == len(value):
        if all(isinstance(v, str) and v in FILL_METHODS for v in value):
            return sequence(value)
    raise ValueError(
        f"expected 'constant', one of {list(BASELINES)}, or a list of 2 to 8 distinct methods of {list(FILL_METHODS)}; got {value!r}"
    )


Prefill = Annotated[Any, PlainValidator(lambda v: _prefill(v, list))]  # a recipe's (YAML lists)
PrefillSpec = Annotated[Any, PlainValidator(lambda v: _prefill(v, tuple))]  # a model card's (hashable)

# Strict scalars (no bool for int, no string for a number) with their ranges.
Int = Annotated[int, Strict()]
Float = Annotated[float, Strict()]
Bool = Annotated[bool, Strict()]
Str = Annotated[str, Strict()]
Seed = Annotated[Int, Field(ge=0, lt=2**31)]
Positive = Annotated[Int, Field(ge=1)]
Side = Annotated[Int, Field(ge=16, le=4096, multiple_of=16)]  # four poolings halve it four times
JudgedSide = Annotated[Int, Field(ge=32, le=4096, multiple_of=16)]  # and the VGG16 discriminator pools 5 times
# A recipe names folders (models/<recipe>) and evaluated methods (<recipe>, <recipe>_raw): no
# clash with a baseline, a raw output, a file of the predictions folder or a key beside the
# methods in reports/metrics.json (see Params).
RecipeName = Annotated[Str, Field(pattern=r"^[a-z][a-z0-9]*(_[a-z0-9]+)*$", max_length=40)]
ALL_BUCKETS = "all"  # the bucket name of the overall scores (reserved: no hole-ratio bucket may use it)
PREDICTION_FILES = ("inputs", "targets", "masks", "index", "meta")
RESERVED_NAMES = (*PREDICTION_FILES, "target", "n_images", "precision", "discriminator_real_accuracy")
Fraction = Annotated[Float, Field(ge=0.0, le=1.0)]
InpaintRadius = Annotated[Int, Field(ge=1, le=100)]  # pixels around the hole the OpenCV methods read
OpenFraction = Annotated[Float, Field(gt=0.0, lt=1.0)]
ShapeFraction = Annotated[Float, Field(gt=0.0, le=1.0)]
LearningRate = Annotated[Float, Field(gt=0.0, le=1.0)]
Weight = Annotated[Float, Field(ge=0.0, le=1000.0)]
Epochs = Annotated[Int, Field(ge=0, le=100_000)]
SHA256_PATTERN = r"^[0-9a-f]{64}$"
Sha256 = Annotated[Str, Field(pattern=SHA256_PATTERN)]


def _url_parts(url) -> urllib.parse.SplitResult:
    if not isinstance(url, str) or not url:
        raise ValueError(f"expected an http or https URL, got {url!r}")
    if any(c.isspace() or ord(c) < 32 or ord(c) == 127 for c in url):
        raise ValueError(f"{url!r} contains whitespace or control characters")
    try:
        parts = urllib.parse.urlsplit(url)
        parts.port  # noqa: B018 - raises ValueError for a port that is not a number in 0-65535
    except ValueError as err:
        raise ValueError(f"{url!r} is not a valid URL ({err})") from None
    return parts


def url_file_name(url: str) -> str:
    """The download URL rule; returns the URL's file name (the last path segment, percent-decoded).

    Allowed: scheme http or https, a host, a path without ``..`` segments that ends in a plain
    file name (no separator, not ``.``/``..``, not empty). Else ``ValueError`` saying why.
    Used by the params (``Url``) and by ``data.sources.http`` before any connection.
    """
    parts = _url_parts(url)
    if parts.scheme.lower() not in ("http", "https"):
        raise ValueError(f"{url!r}: only http and https URLs are allowed, not {parts.scheme or 'none'!r}")
    if not parts.hostname:
        raise ValueError(f"{url!r} names no host")
    segments = [urllib.parse.unquote(segment) for segment in parts.path.split("/")]
    if ".." in segments:
        raise ValueError(f"{url!r}: a '..' path segment is not allowed")
    name = segments[-1]
    if name in ("", ".") or any(c in name for c in "/\\\0"):
        raise ValueError(f"{url!r} must end in a plain file name, e.g. .../archive.tar.gz")
    return name


def _download_url(url: str) -> str:
    url_file_name(url)
    return url


Url = Annotated[Str, AfterValidator(_download_url)]

_STRICT = ConfigDict(extra="forbid")


def _fail(condition: bool, message: str) -> None:
    if condition:
        raise ValueError(message)


@dataclass(frozen=True, config=_STRICT)
class BaseParams:
    seed: Seed
    image_size: JudgedSide
    hole_value: Fraction


@dataclass(frozen=True, config=_STRICT)
class Places365Params:
    url: Url
    sha256: Sha256 | None
    categories: Annotated[list[Str], Field(min_length=1)]
    max_images_per_category: Positive


@dataclass(frozen=True, config=_STRICT)
class Cifar10Params:
    url: Url
    sha256: Sha256
    max_images: Annotated[Int, Field(ge=1, le=60_000)]


@dataclass(frozen=True, config=_STRICT)
class DataParams:
    source: DataSource
    allow_missing: Bool
    max_side: Annotated[Int, Field(ge=16)]
    val_fraction: OpenFraction
    test_fraction: OpenFraction
    debian_test: Literal["sea_or_water", "random"]
    folder: Str | None
    places365: Places365Params
    cifar10: Cifar10Params

    @model_validator(mode="after")
    def _folder_given(self):
        _fail(self.source == "folder" and not self.folder, "data.folder must name a directory when data.source is 'folder'")
        return self


@dataclass(frozen=True, config=_STRICT)
class MaskShapes:
    """The shape generator of one set of masks (training or evaluation)."""

    kind: MaskKind
    box_min: ShapeFraction
    box_max: ShapeFraction
    strokes_max: Annotated[Int, Field(ge=1, le=100)]
    stroke_vertices_max: Annotated[Int, Field(ge=2, le=100)]
    stroke_length_max: Annotated[Float, Field(gt=0.0, le=2.0)]
    stroke_width_min: ShapeFraction
    stroke_width_max: ShapeFraction
    mixed_box_probability: Fraction

    @model_validator(mode="after")
    def _ordered(self):
        _fail(self.box_min > self.box_max, f"need box_min <= box_max, got {self.box_min} > {self.box_max}")
        _fail(
            self.stroke_width_min > self.stroke_width_max,
            f"need stroke_width_min <= stroke_width_max, got {self.stroke_width_min} > {self.stroke_width_max}",
        )
        return self


@dataclass(frozen=True, config=_STRICT)
class EvalMaskShapes(MaskShapes):
    """The fixed evaluation masks: ``per_bucket`` masks in each hole-ratio bucket of ``buckets``."""

    per_bucket: Positive
    buckets: Annotated[list[Fraction], Field(min_length=2)]

    @model_validator(mode="after")
    def _increasing(self):
        edges = self.buckets
        _fail(any(b <= a for a, b in zip(edges, edges[1:])), f"buckets must be increasing, got {edges}")
        return self


@dataclass(frozen=True, config=_STRICT)
class MaskParams:
    train: MaskShapes
    eval: EvalMaskShapes


@dataclass(frozen=True, config=_STRICT)
class ModelParams:
    generator: GeneratorKind
    base_filters: Annotated[Int, Field(ge=1, le=1024)]
    decoder_filters: Annotated[Int, Field(ge=1, le=4096)]
    leaky_relu_alpha: Fraction
    skip_coefficients: Annotated[list[Annotated[Float, Field(ge=0.0, le=10.0)]], Field(min_length=4, max_length=4)]
    backbone_weights: Str
    dense_units: Annotated[Int, Field(ge=1, le=65536)]

    @model_validator(mode="after")
    def _backbone(self):
        _fail(
            self.backbone_weights not in BACKBONE_WEIGHTS and not self.backbone_weights.endswith(".h5"),
            f"backbone_weights {self.backbone_weights!r} is not allowed; allowed values: "
            f"{list(BACKBONE_WEIGHTS)} or a path to a .h5 weights file",
        )
        return self


@dataclass(frozen=True, config=_STRICT)
class CompareParams:
    kinds: Annotated[list[GeneratorKind], Field(min_length=1)]
    seeds: Annotated[list[Seed], Field(min_length=1)]
    image_size: Side
    base_filters: Annotated[Int, Field(ge=1, le=1024)]
    batch_size: Positive
    learning_rate: LearningRate
    images_per_epoch: Positive
    epochs: Annotated[Int, Field(ge=1, le=100_000)]
    validation_images: Positive


@dataclass(frozen=True, config=_STRICT)
class RecipeParams:
    """One training recipe: how the generator sees the hole, its losses, optimizers and length."""

    prefill: Prefill
    mask_channel: Bool
    residual_gate: Annotated[Float, Field(gt=0.0, le=1.0)] | None
    upsampling: Upsampling
    lr_schedule: Literal["constant", "cosine"]
    g_learning_rate: LearningRate
    d_learning_rate: LearningRate
    valid_weight: Weight
    hole_weight: Weight
    hole_loss: Literal["l1", "log_mse"]
    adversarial_weight: Weight
    style_weight: Weight
    crop_pool: Annotated[Int, Field(ge=0, le=100_000)]
    stage1_epochs: Epochs
    stage2_epochs: Epochs

    @model_validator(mode="after")
    def _residual_needs_mask(self):
        _fail(self.residual_gate is not None and not self.mask_channel, "residual_gate needs mask_channel: true")
        if isinstance(self.prefill, list):
            _fail(not self.mask_channel, "a list prefill (weighed fills) needs mask_channel: true")
            _fail(
                self.residual_gate is not None, "a list prefill (weighed fills) is the output itself: residual_gate must be null"
            )
        return self


@dataclass(frozen=True, config=_STRICT)
class TrainParams:
    recipes: Annotated[list[Str], Field(min_length=1)]
    default_recipe: Str
    batch_size: Annotated[Int, Field(ge=1, le=4096)]
    images_per_epoch: Positive
    strategy: Strategy
    precision: Precision
    validation_images: Positive

    @property
    def steps_per_epoch(self) -> int:
        return self.images_per_epoch // self.batch_size

    @model_validator(mode="after")
    def _whole_batches(self):
        for key in ("images_per_epoch", "validation_images"):
            value = getattr(self, key)
            _fail(value % self.batch_size, f"{key} ({value}) must be a multiple of batch_size ({self.batch_size})")
        return self


@dataclass(frozen=True, config=_STRICT)
class ClaimsParams:
    """The small-scale training runs behind claims (d) and (e) (stage ``claims@<seed>``)."""

    seeds: Annotated[list[Seed], Field(min_length=1)]
    image_size: JudgedSide
    base_filters: Annotated[Int, Field(ge=1, le=1024)]
    images_per_epoch: Positive
    stage1_epochs: Annotated[Int, Field(ge=1, le=100_000)]
    stage2_epochs: Annotated[Int, Field(ge=1, le=100_000)]
    d_learning_rate: LearningRate
    style_weight: Annotated[Float, Field(gt=0.0, le=1000.0)]


@dataclass(frozen=True, config=_STRICT)
class EvaluateParams:
    baselines: Annotated[list[Baseline], Field(min_length=1)]
    inpaint_radius: InpaintRadius
    bootstrap_samples: Annotated[Int, Field(ge=100, le=1_000_000)]
    batch_size: Annotated[Int, Field(ge=1, le=4096)]


@dataclass(frozen=True, config=_STRICT)
class ClaimDeltas:
    """Smallest effect of interest of each claim, in its measurement's unit (reasons: params.yaml)."""

    a: Annotated[Float, Field(gt=0.0, le=10.0)]
    b: Annotated[Float, Field(gt=0.0, le=1.0)]
    c: Annotated[Float, Field(gt=0.0, le=1.0)]
    d: Annotated[Float, Field(gt=0.0, le=1.0)]
    e: Annotated[Float, Field(gt=0.0, le=100.0)]


@dataclass(frozen=True, config=_STRICT)
class ReportParams:
    bootstrap_samples: Annotated[Int, Field(ge=100, le=1_000_000)]  # paired intervals of the target table
    claim_deltas: ClaimDeltas


@dataclass(frozen=True, config=_STRICT)
class AblationParams:
    """The recipe ablation on the validation photos (second pipeline file pipelines/ablation/dvc.yaml)."""

    steps: Annotated[Int, Field(ge=1, le=10_000_000)]
    curve_steps: Annotated[Int, Field(ge=1, le=10_000_000)]
    variants: Annotated[list[RecipeName], Field(min_length=1)]

    @model_validator(mode="after")
    def _unique(self):
        _fail(len(set(self.variants)) != len(self.variants), f"ablation.variants names a variant twice: {self.variants}")
        return self


@dataclass(frozen=True, config=_STRICT)
class FullsizeParams:
    """Whole-photo scoring through ``fill`` (second pipeline file pipelines/fullsize/dvc.yaml)."""

    sizes: Annotated[list[Annotated[Int, Field(ge=64, le=4096)]], Field(min_length=1)]
    per_bucket: Annotated[Int, Field(ge=1, le=1000)]


@dataclass(frozen=True, config=_STRICT)
class Params:
    base: BaseParams
    data: DataParams
    masks: MaskParams
    model: ModelParams
    compare: CompareParams
    recipes: dict[RecipeName, RecipeParams]
    train: TrainParams
    claims: ClaimsParams
    evaluate: EvaluateParams
    report: ReportParams
    ablation: AblationParams
    fullsize: FullsizeParams

    @model_validator(mode="after")
    def _recipes_defined(self):
        unknown = [r for r in self.train.recipes if r not in self.recipes]
        _fail(bool(unknown), f"train.recipes names {unknown}, not defined under recipes: {sorted(self.recipes)}")
        _fail(
            self.train.default_recipe not in self.train.recipes,
            f"train.default_recipe {self.train.default_recipe!r} is not one of train.recipes {self.train.recipes}",
        )
        clash = [r for r in self.recipes if r in BASELINES or r in RESERVED_NAMES or r.endswith("_raw")]
        _fail(bool(clash), f"recipes: the names {clash} clash with a baseline, a raw output (_raw) or {list(RESERVED_NAMES)}")
        _fail("paper" not in self.recipes, "recipes: the paper's recipe `paper` is required (compare, claims)")
        _fail(
            self.claims.images_per_epoch % self.train.batch_size,
            f"claims.images_per_epoch ({self.claims.images_per_epoch}) must be a multiple of train.batch_size",
        )
        _fail(
            self.compare.images_per_epoch % self.compare.batch_size,
            f"compare.images_per_epoch ({self.compare.images_per_epoch}) must be a multiple of compare.batch_size",
        )
        for key in ("steps", "curve_steps"):
            _fail(
                getattr(self.ablation, key) % self.train.steps_per_epoch,
                f"ablation.{key} ({getattr(self.ablation, key)}) must be a multiple of the steps per epoch "
                f"(train.images_per_epoch / train.batch_size = {self.train.steps_per_epoch})",
            )
        return self

    def recipe(self, name: str) -> RecipeParams:
        return self.recipes[name]


_ADAPTER = TypeAdapter(Params)


def describe_errors(err: ValidationError, source: str, prefix: str = "") -> str:
    """One line naming ``source`` and every bad key (``prefix`` + its path) of a validation error."""
    return "; ".join(_describe(e, source, prefix) for e in err.errors())


def _describe(error: dict, source: str, prefix: str) -> str:
    key = prefix + ".".join(str(part) for part in error["loc"])
    kind, ctx = error["type"], error.get("ctx") or {}
    if kind == "unexpected_keyword_argument":
        return f"{source}: {key}: unknown key"
    if kind == "missing":
        return f"{source}: {key}: missing key"
    if kind == "value_error":
        return f"{source}: {key or 'params'}: {clip(str(ctx.get('error', error['msg'])))}"
    return f"{source}: {key}: {error['msg']} (got {clip(repr(error['input']))})"


def params_from_dict(raw: Any, source: str = "params") -> Params:
    """Builds and validates ``Params`` from an already-parsed mapping; errors name every bad key."""
    try:
        return _ADAPTER.validate_python(raw)
    except ValidationError as err:
        raise ConfigError(describe_errors(err, source)) from None


def override_leaves(override: Any, source: str, prefix: str = "") -> list[tuple[str, Any]]:
    """(dotted key, value) of every leaf of an override mapping such as configs/paper.yaml."""
    if not isinstance(override, dict) or not override:
        raise ConfigError(f"{source}: {prefix.rstrip('.') or 'the file'} must be a non-empty mapping of params to change")
    leaves = []
    for key, value in override.items():
        if isinstance(value, dict):
            leaves += override_leaves(value, source, f"{prefix}{key}.")
        else:
            leaves.append((f"{prefix}{key}", value))
    return leaves


def apply_override(raw: Any, override: Any, source: str) -> dict:
    """A copy of the params mapping ``raw`` with each leaf of ``override`` set; a key ``raw`` does
    not have is a ``ConfigError`` naming ``source`` and the key (a typo must not go unnoticed)."""
    merged = copy.deepcopy(raw)
    for dotted, value in override_leaves(override, source):
        node, *parents = merged, *dotted.split(".")[:-1]
        for part in parents:
            node = node.get(part) if isinstance(node, dict) else None
        leaf = dotted.rsplit(".", 1)[-1]
        if not isinstance(node, dict) or leaf not in node:
            raise ConfigError(f"{source}: {dotted}: not a key of the params file it overrides")
        node[leaf] = value
    return merged


def load_params(path: str | Path, override: str | Path | None = None) -> Params:
    """Reads and validates a params file (``yaml_file.read_yaml``: strict YAML), with the leaves of an
    optional override file (``apply_override``) set first. Errors name the file and the offending key."""
    return _load_with_override(Path(path), override)[0]


def _load_with_override(path: Path, override: str | Path | None) -> tuple[Params, Any]:
    """(``Params``, the override file's parsed mapping or None): each file read once."""
    raw = read_yaml(path)
    if override is None:
        return params_from_dict(raw, str(path)), None
    changes = read_yaml(Path(override))
    return params_from_dict(apply_override(raw, changes, str(override)), f"{path} with {override}"), changes


def dvc_set_flags(path: str | Path, override: str | Path) -> list[str]:
    """``--set-param=key=value`` for each leaf of an override file: the ``dvc exp run`` arguments
    that run the pipeline with it (values in YAML flow style, as DVC parses them). The params
    file with the override is validated first, so a typo fails before a run starts."""
    _, changes = _load_with_override(Path(path), override)
    leaves = override_leaves(changes, str(override))
    flow = (yaml.safe_dump(v, default_flow_style=True, width=10**6).removesuffix("...\n").strip() for _, v in leaves)
    return [f"--set-param={key}={value}" for (key, _), value in zip(leaves, flow)]


def load_stage_params(path: str | Path, prog: str) -> Params:
    """``load_params`` for a stage's entry point: a bad params file is a ``usage_error``."""
    try:
        return load_params(path)
    except ConfigError as err:
        usage_error(prog, str(err))


def main(argv: list[str] | None = None) -> None:
    """``python -m image_completion.config [--params params.yaml] --dvc-set-flags OVERRIDE``:
    prints ``dvc_set_flags``, one per line (scripts/paper.sh passes them to ``dvc exp run``)."""
    import argparse  # noqa: PLC0415 - only the command line needs it

    parser = argparse.ArgumentParser(prog="python -m image_completion.config", description=main.__doc__.split("\n")[0])
    parser.add_argument("--params", type=Path, default=Path("params.yaml"), help="the params file it overrides")
    parser.add_argument(
        "--dvc-set-flags", required=True, type=Path, metavar="OVERRIDE", help="an override file (configs/paper.yaml)"
    )
    args = parser.parse_args(argv)
    run_main(lambda: print("\n".join(dvc_set_flags(args.params, args.dvc_set_flags))), parser.prog)


if __name__ == "__main__":
    main()
