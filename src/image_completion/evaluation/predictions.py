"""Stage ``evaluate``: every recipe's stage-2 generator and the classical baselines on the fixed test inputs.

Two steps, the second reading only what the first saved: predict (one test crop per evaluation
mask; the generators in float32) and save ``data/predictions/``; then score it (``scoring.METRICS``,
fool rates, seeded bootstrap intervals overall and per hole-ratio bucket). File formats:
``docs/architecture.md``.

The command line is ``image_completion.stages.evaluate``.
"""

from __future__ import annotations

import csv
import io
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from image_completion.config import PREDICTION_FILES, BaseParams, EvaluateParams
from image_completion.core.baselines import run_baseline_batch
from image_completion.core.cards import CARD_FILE, DISCRIMINATOR_FILE, GENERATOR_FILE, CardError, read_card
from image_completion.core.holes import InputSpec, generator_input
from image_completion.errors import InputError
from image_completion.evaluation import scoring
from image_completion.images import atomic_dir, write_text_atomic

FOOL_THRESHOLD = 0.5
INDEX_COLUMNS = ("index", "photo", "top", "left", "mask_file", "hole_ratio", "bucket")
SCORE_COLUMNS = (*scoring.METRICS, "d_prob", "fooled")
AGGREGATED = (*scoring.METRICS, "fooled")  # d_prob is kept per image only


class EvaluateError(InputError, RuntimeError):
    """Missing or inconsistent model, inputs or saved predictions; the message names the file."""


# --------------------------------------------------------------------------- models


def load_models(model_dir: str | Path, image_size: int):
    """(generator, discriminator, card) from a training stage's output folder, in float32."""
    from image_completion.core.models import ModelFileError, load_model_float32  # noqa: PLC0415 - TF is slow to import

    model_dir = Path(model_dir)
    try:
        card = read_card(model_dir)
        # float32 whatever precision the models were trained in (module docstring).
        generator = load_model_float32(model_dir / GENERATOR_FILE)
        discriminator = load_model_float32(model_dir / DISCRIMINATOR_FILE)
    except (CardError, ModelFileError) as err:
        raise EvaluateError(f"{err} (run the training stages first)") from err
    if card["image_size"] != image_size:
        raise EvaluateError(
            f"{model_dir / CARD_FILE}: image_size {card['image_size']} differs from base.image_size {image_size}: "
            "the model is stale (rerun training) or the params changed"
        )
    return generator, discriminator, card


# --------------------------------------------------------------------------- predictions


def make_test_inputs(test_paths: list[str], n: int, image_size: int, seed: int):
    """(crops [(path, top, left)], targets float32 (N, S, S, 3)): the fixed test crops."""
    from image_completion.data.dataset import load_crop, make_eval_crops  # noqa: PLC0415

    crops = make_eval_crops(test_paths, n, image_size, seed)
    assert len(crops) == n, (len(crops), n)
    targets = np.stack([load_crop(path, top, left, image_size) for path, top, left in crops]).astype(np.float32)
    return crops, targets


def predict_fill(generator, images: np.ndarray, masks: np.ndarray, spec: InputSpec, batch_size: int):
    """(inputs (N, S, S, C), raw generator output (N, S, S, 3), composite: known pixels pasted back)."""
    inputs = generator_input(images, masks, spec)
    raw = np.asarray(generator.predict(inputs, batch_size=batch_size, verbose=0), np.float32)
    m = np.asarray(masks, np.float32)[..., None]
    return inputs, raw, (raw * m + images * (1.0 - m)).astype(np.float32)


def _predict(model, x: np.ndarray, batch_size: int) -> np.ndarray:
    return np.asarray(model.predict(x, batch_size=batch_size, verbose=0), np.float32)


def make_predictions(
    models: dict[str, tuple], targets: np.ndarray, masks: np.ndarray, evaluate: EvaluateParams
) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray], dict[str, np.ndarray]]:
    """(inputs {recipe: (N, S, S, C)}, outputs {method: (N, S, S, 3)}, d_prob {method or "target": (N,)}).

    ``models``: recipe -> (generator, discriminator, card). Methods in order: each recipe (the
    composite) and ``<recipe>_raw``, then the baselines. Every output is judged by the first
    recipe's discriminator (the paper's, which is trained in both recipes' stage 1 only if
    adversarial).
    """
    inputs, outputs = {}, {}
    for recipe, (generator, _, card) in models.items():
        inputs[recipe], raw, outputs[recipe] = predict_fill(
            generator, targets, masks, InputSpec.from_card(card), evaluate.batch_size
        )
        outputs[f"{recipe}_raw"] = raw
    for name in evaluate.baselines:
        outputs[name] = run_baseline_batch(name, targets, masks, inpaint_radius=evaluate.inpaint_radius)
    judge = next(iter(models.values()))[1]
    d_prob = {"target": _predict(judge, targets, evaluate.batch_size).reshape(-1)}
    for name, images in outputs.items():
        d_prob[name] = _predict(judge, images, evaluate.batch_size).reshape(-1)
    return inputs, outputs, d_prob


def save_predictions(
    directory: str | Path,
    *,
    index_rows: list[dict],
    inputs: dict[str, np.ndarray],
    targets: np.ndarray,
    masks: np.ndarray,
    outputs: dict[str, np.ndarray],
    d_prob: dict[str, np.ndarray],
    meta: dict,
) -> None:
    """Writes the predictions folder (format in the module docstring) into a temporary sibling
    folder, then swaps it in: a failure leaves an existing ``directory`` untouched."""
    directory = Path(directory)
    n = len(targets)
    assert len(index_rows) == len(masks) == n and all(len(x) == n for x in inputs.values()), "one row per crop"
    assert not set(PREDICTION_FILES) & set(outputs), "config.Params keeps recipe names off the fixed files"
    with atomic_dir(directory) as tmp:
        with open(tmp / "index.csv", "w", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=INDEX_COLUMNS, lineterminator="\n")
            writer.writeheader()
            writer.writerows(index_rows)
        np.savez_compressed(tmp / "inputs.npz", **{recipe: x.astype(np.float32) for recipe, x in inputs.items()})
        np.savez_compressed(tmp / "targets.npz", images=targets.astype(np.float32), d_prob=d_prob["target"])
        np.savez_compressed(tmp / "masks.npz", masks=np.asarray(masks, np.float32))
        for name, images in outputs.items():
            np.savez_compressed(tmp / f"{name}.npz", images=images.astype(np.float32), d_prob=d_prob[name])
        (tmp / "meta.json").write_text(json.dumps({**meta, "methods": list(outputs)}, indent=2) + "\n")


@dataclass
class Predictions:
    """A loaded predictions folder."""

    meta: dict
    index: list[dict]
    targets: np.ndarray  # (N, S, S, 3)
    masks: np.ndarray  # (N, S, S)
    outputs: dict[str, np.ndarray]  # method -> (N, S, S, 3)
    d_prob: dict[str, np.ndarray]  # method or "target" -> (N,)


def _load_npz(path: Path, keys: tuple[str, ...]) -> dict[str, np.ndarray]:
    try:
        with np.load(path, allow_pickle=False) as data:
            missing = [k for k in keys if k not in data.files]
            if missing:
                raise EvaluateError(f"{path}: missing arrays {missing} (has {data.files})")
            return {k: data[k] for k in keys}
    except FileNotFoundError:
        raise EvaluateError(f"{path}: not found (the predictions folder is incomplete)") from None
    except EvaluateError:
        raise
    except Exception as err:  # noqa: BLE001 - numpy raises several types for corrupt files
        raise EvaluateError(f"{path}: cannot read: {err}") from None


def _check_masks(path: Path, masks: np.ndarray) -> None:
    """The scores' preconditions, checked where the file enters: 0/1 masks, each with a hole and
    a known pixel, of a side SSIM's window fits in."""
    side = scoring.SSIM_SETTINGS["win_size"]
    if min(masks.shape[1:]) < side:
        raise EvaluateError(f"{path}: masks of {masks.shape[1:]} pixels, SSIM needs at least {side} a side")
    if not np.isin(masks, (0.0, 1.0)).all():
        raise EvaluateError(f"{path}: mask values must be 0 (known) or 1 (hole)")
    holes = masks.reshape(len(masks), -1).mean(axis=1)
    if not ((holes > 0) & (holes < 1)).all():
        raise EvaluateError(f"{path}: mask {int(np.flatnonzero((holes == 0) | (holes == 1))[0])} has no hole or no known pixel")


def load_predictions(directory: str | Path) -> Predictions:
    """Reads a folder written by ``save_predictions``, checking every file and shape."""
    directory = Path(directory)
    meta_path = directory / "meta.json"
    try:
        meta = json.loads(meta_path.read_text())
    except FileNotFoundError:
        raise EvaluateError(f"{meta_path}: not found (is {directory} a predictions folder?)") from None
    except (OSError, json.JSONDecodeError) as err:
        raise EvaluateError(f"{meta_path}: cannot read: {err}") from None
    if not isinstance(meta.get("methods"), list) or not meta["methods"]:
        raise EvaluateError(f"{meta_path}: 'methods' must be a non-empty list")
    index_path = directory / "index.csv"
    try:
        with open(index_path, newline="") as f:
            reader = csv.DictReader(f)
            if tuple(reader.fieldnames or ()) != INDEX_COLUMNS:
                raise EvaluateError(f"{index_path}: header must be {','.join(INDEX_COLUMNS)}, got {reader.fieldnames}")
            index = list(reader)
        if any(row["bucket"] == scoring.ALL_BUCKETS for row in index):
            raise EvaluateError(f"{index_path}: bucket name {scoring.ALL_BUCKETS!r} is reserved for the overall scores")
    except FileNotFoundError:
        raise EvaluateError(f"{index_path}: not found (the predictions folder is incomplete)") from None
    targets_file = _load_npz(directory / "targets.npz", ("images", "d_prob"))
    targets = targets_file["images"]
    masks = _load_npz(directory / "masks.npz", ("masks",))["masks"]
    n = len(index)
    if targets.shape[0] != n or targets.ndim != 4 or targets.shape[-1] != 3 or masks.shape != targets.shape[:3]:
        raise EvaluateError(f"{directory}: inconsistent shapes: {n} index rows, targets {targets.shape}, masks {masks.shape}")
    _check_masks(directory / "masks.npz", masks)
    outputs, d_prob = {}, {"target": targets_file["d_prob"]}
    for name in meta["methods"]:
        data = _load_npz(directory / f"{name}.npz", ("images", "d_prob"))
        if data["images"].shape != targets.shape or data["d_prob"].shape != (n,):
            raise EvaluateError(
                f"{directory / (name + '.npz')}: images {data['images'].shape} / d_prob {data['d_prob'].shape}, "
                f"expected {targets.shape} / {(n,)}"
            )
        if not np.isfinite(data["images"]).all():
            raise EvaluateError(f"{directory / (name + '.npz')}: images hold NaN or infinity")
        outputs[name], d_prob[name] = data["images"], data["d_prob"]
    return Predictions(meta, index, targets, masks, outputs, d_prob)


# --------------------------------------------------------------------------- scoring


def score_predictions(directory: str | Path, *, bootstrap_samples: int, seed: int):
    """Scores a saved predictions folder (reads nothing else).

    Returns (per-image rows, bucket rows with bootstrap intervals, headline metrics dict).
    """
    pred = load_predictions(directory)
    per_image = []
    for name in pred.meta["methods"]:
        for i, row in enumerate(pred.index):
            scores = scoring.score_image(pred.outputs[name][i], pred.targets[i], pred.masks[i])
            probability = float(pred.d_prob[name][i])
            per_image.append(
                {
                    "index": int(row["index"]),
                    "photo": row["photo"],
                    "mask_file": row["mask_file"],
                    "bucket": row["bucket"],
                    "hole_ratio": float(row["hole_ratio"]),
                    "method": name,
                    **scores,
                    "d_prob": probability,
                    "fooled": float(probability > FOOL_THRESHOLD),
                }
            )
    buckets = scoring.aggregate(per_image, AGGREGATED, n_samples=bootstrap_samples, seed=seed)
    headline: dict = {
        "n_images": len(pred.index),
        # The precision each recipe trained in (train.precision: auto depends on the CPU type):
        # `dvc metrics diff` between two machines then explains itself.
        "precision": {recipe: card.get("precision") for recipe, card in pred.meta["model_cards"].items()},
        "discriminator_real_accuracy": round(float((pred.d_prob["target"] > FOOL_THRESHOLD).mean()), 6),
    }
    for row in buckets:
        if row["bucket"] != scoring.ALL_BUCKETS:
            continue
        key = "fool_rate" if row["metric"] == "fooled" else row["metric"]
        headline.setdefault(row["method"], {})[key] = round(row["mean"], 6)
    for recipe in pred.meta["recipes"]:
        # The paper's perceptual accuracy: the share of raw generator outputs D calls real.
        headline[recipe]["perceptual_accuracy"] = headline[f"{recipe}_raw"]["fool_rate"]
    return per_image, buckets, headline


def _csv_text(rows: list[dict], columns: tuple[str, ...] | list[str]) -> str:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=list(columns), lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return buffer.getvalue()


def write_scores(per_image, buckets, headline, *, metrics_path, per_image_path, bucket_path) -> None:
    """Writes the three score files, each atomically (temp file, then rename)."""
    per_image_columns = ("index", "photo", "mask_file", "bucket", "hole_ratio", "method", *SCORE_COLUMNS)
    bucket_columns = ("method", "bucket", "metric", "n", "mean", "ci_low", "ci_high")
    write_text_atomic(per_image_path, _csv_text(per_image, per_image_columns))
    write_text_atomic(bucket_path, _csv_text(buckets, bucket_columns))
    write_text_atomic(metrics_path, json.dumps(headline, indent=2) + "\n")


# --------------------------------------------------------------------------- stage


def run_evaluation(
    *,
    models: dict[str, Path],
    photos_dir: str | Path,
    masks_dir: str | Path,
    predictions_dir: str | Path,
    base: BaseParams,
    evaluate: EvaluateParams,
) -> None:
    """Predicts on the fixed test inputs and saves the predictions folder (step 1).

    ``models``: recipe -> its stage-2 folder, in the order of ``train.recipes``."""
    from image_completion.data.manifest import photo_paths  # noqa: PLC0415
    from image_completion.data.masks import read_eval_masks  # noqa: PLC0415

    photos_dir = Path(photos_dir)
    masks, mask_rows = read_eval_masks(masks_dir)
    if masks.shape[1:] != (base.image_size, base.image_size):
        raise EvaluateError(
            f"{Path(masks_dir)}: masks are {masks.shape[1]}x{masks.shape[2]}, base.image_size is {base.image_size} "
            "(rerun the masks stage)"
        )
    loaded = {recipe: load_models(path, base.image_size) for recipe, path in models.items()}
    crops, targets = make_test_inputs(photo_paths(photos_dir / "manifest.csv", "test"), len(masks), base.image_size, base.seed)
    inputs, outputs, d_prob = make_predictions(loaded, targets, masks, evaluate)
    root = photos_dir.resolve()
    index_rows = []
    for i, ((path, top, left), mask_row) in enumerate(zip(crops, mask_rows)):
        resolved = Path(path).resolve()
        photo = resolved.relative_to(root).as_posix() if resolved.is_relative_to(root) else str(resolved)
        index_rows.append(
            {
                "index": i,
                "photo": photo,
                "top": int(top),
                "left": int(left),
                "mask_file": mask_row.file,
                "hole_ratio": repr(float(mask_row.hole_ratio)),
                "bucket": mask_row.bucket,
            }
        )
    meta = {
        "image_size": base.image_size,
        "n_images": len(targets),
        "seed": base.seed,
        "fool_threshold": FOOL_THRESHOLD,
        "recipes": list(models),
        "model_cards": {recipe: card for recipe, (_, _, card) in loaded.items()},
    }
    save_predictions(
        predictions_dir,
        index_rows=index_rows,
        inputs=inputs,
        targets=targets,
        masks=masks,
        outputs=outputs,
        d_prob=d_prob,
        meta=meta,
    )
