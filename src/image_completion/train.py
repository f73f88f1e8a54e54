"""Stages ``train_stage1`` and ``train_stage2``: training the inpainting GAN.

    python -m image_completion.train --params params.yaml --stage 1|2 [--init models/stage1] \
        --photos data/photos --out models/stageN --live reports/train_stageN \
        --checkpoints checkpoints/stageN

Stage 1: generator and discriminator both learn (``train.stage1_epochs``), from fresh weights.
Stage 2: the generator continues from ``--init`` (the stage-1 ``.keras`` files) with the
discriminator frozen (``train.stage2_epochs``); at the end every discriminator weight is
checked to be unchanged, and the stage fails if one moved. Both stages use fresh Adam
optimizers (``.keras`` files are saved without optimizer state; the paper restarts stage 2
"with the same parameters").

Data: the manifest's ``train`` photos, a fresh stream per epoch (``training.epoch_seed``);
validation: ``train.validation_images`` fixed crops of the ``validation`` photos with fixed
masks (``dataset.make_fixed_masks``), scored after every epoch.

Outputs: ``generator.keras``, ``discriminator.keras`` and ``model_card.json`` in ``--out``,
written atomically (a temp dir renamed into place) and only when training ended normally;
per-epoch train/val metrics through dvclive in ``--live`` (stage 2's steps continue after
stage 1's epochs, so both stages share one axis). Killing a stage and rerunning it resumes
from the last completed epoch in ``--checkpoints`` (see ``training.py``).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import shutil
import sys
import tempfile
from pathlib import Path

import keras
import numpy as np

from image_completion import training
from image_completion.config import Params, load_stage_params
from image_completion.images import replace_dir, sha256_file

log = logging.getLogger("image_completion.train")

MODEL_FILES = ("generator.keras", "discriminator.keras")
CARD_FILE = "model_card.json"
# Modules whose code decides what a checkpoint means: a change discards old checkpoints.
_CODE_MODULES = ("train.py", "training.py", "gan.py", "models.py", "losses.py", "dataset.py", "masks.py")


class StageError(RuntimeError):
    """The stage cannot run with the given inputs; the message names the file and the problem."""


# ------------------------------------------------------------------------------------------
# Helpers
# ------------------------------------------------------------------------------------------


def stage_fingerprint(params: Params, stage: int, manifest: Path, init: Path | None) -> tuple[str, dict]:
    """The fingerprint of what a stage's checkpoints depend on: the params it reads (except the
    epoch counts, so that a longer run resumes a shorter one), the photo manifest, the stage-1
    models (stage 2) and the training code. Returns (sha256, the fingerprinted data)."""
    train = dataclasses.asdict(params.train)
    train.pop("stage1_epochs")
    train.pop("stage2_epochs")
    package = Path(__file__).parent
    data = {
        "stage": stage,
        "base": dataclasses.asdict(params.base),
        "masks": dataclasses.asdict(params.masks),
        "model": dataclasses.asdict(params.model),
        "train": train,
        "manifest_sha256": sha256_file(manifest),
        "init_sha256": {name: sha256_file(init / name) for name in MODEL_FILES} if init else None,
        "code_sha256": {name: sha256_file(package / name) for name in _CODE_MODULES},
    }
    return training.fingerprint_of(data), data


def build_networks(params: Params, backbone_weights: str | None = None):
    """Fresh generator and discriminator from ``params.model`` under the current dtype policy;
    ``backbone_weights`` overrides ``params.model.backbone_weights`` when given."""
    from image_completion.models import build_discriminator, build_generator  # noqa: PLC0415

    m = params.model
    generator = build_generator(
        m.generator,
        params.base.image_size,
        base_filters=m.base_filters,
        decoder_filters=m.decoder_filters,
        alpha=m.leaky_relu_alpha,
        skip_coefficients=tuple(m.skip_coefficients),
    )
    discriminator = build_discriminator(
        params.base.image_size,
        backbone_weights=m.backbone_weights if backbone_weights is None else backbone_weights,
        dense_units=m.dense_units,
    )
    return generator, discriminator


def _transfer_weights(source: keras.Model, target: keras.Model, path: Path) -> None:
    src, dst = source.get_weights(), target.get_weights()
    shapes_src, shapes_dst = [w.shape for w in src], [w.shape for w in dst]
    if shapes_src != shapes_dst:
        raise StageError(
            f"{path}: the saved model does not match params.model (its {len(src)} weights have "
            f"shapes {shapes_src[:4]}..., the configured model's {len(dst)} have {shapes_dst[:4]}...); "
            "rerun stage 1 with the current params"
        )
    target.set_weights(src)


def load_init_networks(params: Params, init: Path):
    """Stage 2's starting point: the stage-1 models' weights in networks rebuilt from ``params``
    under the current dtype policy (so stage 2's precision does not depend on stage 1's)."""
    missing = [name for name in MODEL_FILES if not (Path(init) / name).is_file()]
    if missing:
        raise StageError(f"{init}: stage 2 needs the stage-1 models, missing {missing}; run stage 1 first")
    init = Path(init)
    # Every weight is overwritten from the files, so the backbone weights are not loaded twice.
    generator, discriminator = build_networks(params, backbone_weights="none")
    for name, target in zip(MODEL_FILES, (generator, discriminator)):
        try:
            source = keras.saving.load_model(init / name, compile=False)
        except Exception as err:  # noqa: BLE001 - Keras raises many types for a bad file
            raise StageError(f"{init / name}: cannot load the stage-1 model: {err}") from err
        _transfer_weights(source, target, init / name)
    return generator, discriminator


def save_outputs_atomic(out: Path, generator: keras.Model, discriminator: keras.Model, card: dict) -> None:
    """Writes the two models and the card into a temp dir next to ``out``, then swaps it in
    (``images.replace_dir``: a failure leaves an existing ``out`` as it was)."""
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.tmp-", dir=out.parent))
    try:
        generator.save(tmp / "generator.keras")
        discriminator.save(tmp / "discriminator.keras")
        (tmp / CARD_FILE).write_text(json.dumps(card, indent=2, sort_keys=True) + "\n")
        replace_dir(tmp, out)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)


# ------------------------------------------------------------------------------------------
# The stage
# ------------------------------------------------------------------------------------------


def run_stage(
    params: Params,
    *,
    stage: int,
    photos: Path,
    out: Path,
    live_dir: Path,
    checkpoints: Path,
    init: Path | None = None,
    strategy=None,
    progress: bool = True,
) -> list[dict]:
    """Runs one training stage (see the module docstring); returns the per-epoch records.

    The caller sets the precision policy and seeds first (``main`` does).
    """
    from image_completion.dataset import build_dataset, make_fixed_masks  # noqa: PLC0415
    from image_completion.gan import InpaintingGAN  # noqa: PLC0415
    from image_completion.losses import LossWeights  # noqa: PLC0415
    from image_completion.manifest import photo_paths  # noqa: PLC0415

    if stage not in (1, 2):
        raise StageError(f"--stage must be 1 or 2, got {stage}")
    if stage == 2 and init is None:
        raise StageError("stage 2 continues from stage 1: give --init (e.g. models/stage1)")
    if stage == 1 and init is not None:
        raise StageError("--init is for stage 2 only; stage 1 starts from fresh weights")
    photos, out, live_dir, checkpoints = Path(photos), Path(out), Path(live_dir), Path(checkpoints)
    init = Path(init) if init is not None else None
    if init is not None:
        missing = [name for name in MODEL_FILES if not (init / name).is_file()]
        if missing:
            raise StageError(f"{init}: stage 2 needs the stage-1 models, missing {missing}; run stage 1 first")
    manifest = photos / "manifest.csv"
    if not manifest.is_file():
        raise StageError(f"{manifest}: photo manifest not found; run the download stage first")
    base, train = params.base, params.train
    if train.validation_images < 1 or train.validation_images % train.batch_size:
        raise StageError(
            f"train.validation_images ({train.validation_images}) must be a positive multiple of "
            f"train.batch_size ({train.batch_size}): validation batches must be full"
        )
    strategy = strategy or training.make_strategy(train.strategy)
    chief = training.is_chief(strategy)
    epochs = train.stage1_epochs if stage == 1 else train.stage2_epochs
    step_offset = 0 if stage == 1 else train.stage1_epochs

    train_paths = photo_paths(manifest, "train")
    val_paths = photo_paths(manifest, "validation")
    val_masks = make_fixed_masks(params.masks, train.validation_images, base.image_size, base.seed)
    # The fixed validation batches are decoded once (full photos are decoded per crop).
    val_dataset = build_dataset(
        val_paths,
        is_train=False,
        image_size=base.image_size,
        batch_size=train.batch_size,
        hole_value=base.hole_value,
        seed=base.seed,
        masks=val_masks,
    ).cache()

    def train_dataset_fn(epoch: int):
        return build_dataset(
            train_paths,
            is_train=True,
            image_size=base.image_size,
            batch_size=train.batch_size,
            hole_value=base.hole_value,
            seed=training.epoch_seed(base.seed, epoch),
            mask_params=params.masks,
        )

    fingerprint, fingerprint_data = stage_fingerprint(params, stage, manifest, init)
    with strategy.scope():
        keras.utils.set_random_seed(base.seed)  # identical initial weights on every worker and rerun
        generator, discriminator = build_networks(params) if stage == 1 else load_init_networks(params, init)
        model = InpaintingGAN(generator, discriminator)
        model.compile(
            g_optimizer=keras.optimizers.Adam(train.g_learning_rate),
            d_optimizer=keras.optimizers.Adam(train.d_learning_rate),
            loss_weights=LossWeights.from_train_params(train),
            train_discriminator=stage == 1,
            global_batch_size=train.batch_size,
        )
    d_before = [w.copy() for w in discriminator.get_weights()] if stage == 2 else None

    live = None
    if chief:
        from dvclive import Live  # noqa: PLC0415

        # resume=False: the files are rewritten from the checkpoint's history (replayed below),
        # so a crash between a checkpoint and a log line can neither lose nor repeat an epoch.
        live = Live(dir=str(live_dir), save_dvc_exp=False, dvcyaml=None, resume=False, report=None)

    def on_epoch_end(record: dict) -> None:
        if live is None:
            return
        live.step = step_offset + record["epoch"]
        for split in ("train", "val"):
            for name, value in record[split].items():
                live.log_metric(f"{split}/{name}", value)
        live.next_step()

    history = training.train_gan(
        model,
        strategy,
        train_dataset_fn=train_dataset_fn,
        steps_per_epoch=train.steps_per_epoch,
        epochs=epochs,
        global_batch_size=train.batch_size,
        checkpoint_dir=checkpoints,
        fingerprint=fingerprint,
        fingerprint_params=fingerprint_data,
        val_dataset_fn=lambda: val_dataset,
        on_epoch_end=on_epoch_end,
        progress=progress,
    )
    if live is not None:
        live.end()

    if d_before is not None:
        changed = [
            v.path
            for v, a, b in zip(discriminator.weights, d_before, discriminator.get_weights())
            if not np.array_equal(a, b)
        ]
        if changed:
            raise StageError(
                f"stage 2 must leave the discriminator frozen, but {len(changed)} of its weights changed "
                f"(e.g. {changed[:3]}); nothing was saved to {out}"
            )

    if chief:
        m = params.model
        card = {
            "stage": stage,
            "image_size": base.image_size,
            "hole_value": base.hole_value,
            "generator": m.generator,
            "base_filters": m.base_filters,
            "precision": train.precision,
            "strategy": train.strategy,
            "epochs": epochs,
            "total_epochs": step_offset + epochs,
            "steps_per_epoch": train.steps_per_epoch,
            "discriminator_frozen": stage == 2,
            "init": str(init) if init else None,
            "final_metrics": {"train": history[-1]["train"], "val": history[-1]["val"]} if history else None,
            "params": {
                "base": dataclasses.asdict(base),
                "masks": dataclasses.asdict(params.masks),
                "model": dataclasses.asdict(m),
                "train": dataclasses.asdict(train),
            },
            "fingerprint": fingerprint,
        }
        save_outputs_atomic(out, generator, discriminator, card)
        log.info("saved %s and %s to %s", *MODEL_FILES, out)
    return history


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m image_completion.train", description=__doc__.split("\n")[0])
    parser.add_argument("--params", required=True, type=Path, help="params.yaml (sections base, masks, model, train)")
    parser.add_argument("--stage", required=True, type=int, choices=(1, 2))
    parser.add_argument("--init", type=Path, default=None, help="stage 2: the stage-1 model directory")
    parser.add_argument("--photos", required=True, type=Path, help="directory with manifest.csv and the images")
    parser.add_argument("--out", required=True, type=Path, help="model directory to write")
    parser.add_argument("--live", required=True, type=Path, help="dvclive directory for the per-epoch metrics")
    parser.add_argument("--checkpoints", required=True, type=Path, help="checkpoint directory (resume)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar even on a terminal")
    return parser.parse_args(argv)


def main(argv=None) -> None:
    args = parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s", stream=sys.stderr)
    params = load_stage_params(args.params, "train")
    # MultiWorkerMirroredStrategy must exist before TensorFlow runs any op.
    strategy = training.make_strategy(params.train.strategy)
    training.set_precision(params.train.precision)
    training.seed_everything(params.base.seed)
    run_stage(
        params,
        stage=args.stage,
        photos=args.photos,
        out=args.out,
        live_dir=args.live,
        checkpoints=args.checkpoints,
        init=args.init,
        strategy=strategy,
        progress=not args.no_progress,
    )


if __name__ == "__main__":
    main()
