"""Stages ``train_stage1@<recipe>`` and ``train_stage2@<recipe>``: training the inpainting GAN.

Stage 1 trains both networks from fresh weights; stage 2 continues the generator from
``--init`` with the discriminator frozen (checked bit for bit at the end). The recipe
(``params.recipes[<recipe>]``) decides the generator input, losses, optimizers and epochs.
Outputs and the resume logic: ``docs/architecture.md``, "Training stages: outputs and resume".

The command line is ``image_completion.stages.train``.
"""

from __future__ import annotations

import dataclasses
import logging
import zipfile
from pathlib import Path

import keras
import numpy as np

from image_completion import code
from image_completion.config import Params
from image_completion.core.cards import CARD_FILE, DISCRIMINATOR_FILE, GENERATOR_FILE, MODEL_FILES, card_text
from image_completion.core.holes import InputSpec
from image_completion.errors import InputError
from image_completion.images import atomic_dir, sha256_file
from image_completion.training import loop

log = logging.getLogger("image_completion.training.runner")

# The command whose imports decide what a checkpoint means (the same files as the stage's dvc.yaml
# deps): a change to any of them discards old checkpoints.
_STAGE_MODULE = "image_completion.stages.train"


class StageError(InputError, RuntimeError):
    """The stage cannot run with the given inputs; the message names the file and the problem."""


# ------------------------------------------------------------------------------------------
# Helpers
# ------------------------------------------------------------------------------------------


def stage_fingerprint(params: Params, recipe: str, stage: int, manifest: Path, init: Path | None) -> tuple[str, dict]:
    """The fingerprint of what a stage's checkpoints depend on: the params it reads (except the
    epoch counts, so that a longer run resumes a shorter one), the photo manifest, the stage-1
    models (stage 2), the training code and the precision ``auto`` resolved to (the frozen backbone's
    variables are stored in it, so a checkpoint of another precision cannot be restored). Returns
    (sha256, the fingerprinted data)."""
    r = dataclasses.asdict(params.recipe(recipe))
    r.pop("stage1_epochs")
    r.pop("stage2_epochs")
    data = {
        "stage": stage,
        "base": dataclasses.asdict(params.base),
        "masks": dataclasses.asdict(params.masks.train),
        "model": dataclasses.asdict(params.model),
        "recipe": r,
        "train": dataclasses.asdict(params.train) | {"recipes": None},
        "precision": keras.config.dtype_policy().name,
        "manifest_sha256": sha256_file(manifest),
        "init_sha256": {name: sha256_file(init / name) for name in MODEL_FILES} if init else None,
        "code_sha256": {str(path.relative_to(code.ROOT)): sha256_file(path) for path in code.imported_files(_STAGE_MODULE)},
    }
    return loop.fingerprint_of(data), data


def input_spec(params: Params, recipe: str) -> InputSpec:
    """How the recipe's generator sees the hole (``holes.InputSpec``)."""
    r = params.recipe(recipe)
    # InputSpec's validator turns a list prefill into its tuple. OpenCV pre-fills: radius 3.
    return InputSpec(r.prefill, r.mask_channel, params.base.hole_value)


def build_networks(params: Params, recipe: str, backbone_weights: str | None = None):
    """Fresh generator and discriminator from ``params.model`` and the recipe, under the current
    dtype policy; ``backbone_weights`` overrides ``params.model.backbone_weights`` when given."""
    from image_completion.core.models import build_discriminator, generator_from_params  # noqa: PLC0415

    m = params.model
    generator = generator_from_params(
        m, params.base.image_size, recipe=params.recipe(recipe), in_channels=input_spec(params, recipe).channels
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


def load_init_networks(params: Params, recipe: str, init: Path):
    """Stage 2's starting point: the stage-1 models' weights in networks rebuilt from ``params``
    under the current dtype policy (so stage 2 computes in its own precision; a stage 1 trained in
    mixed bf16 hands on its backbone rounded to bf16, the weights its discriminator trained with).
    ``_check_stage_inputs`` has checked that both files exist."""
    # Every weight is overwritten from the files, so the backbone weights are not loaded twice.
    generator, discriminator = build_networks(params, recipe, backbone_weights="none")
    for name, target in zip(MODEL_FILES, (generator, discriminator)):
        if not zipfile.is_zipfile(init / name):  # Keras would call it "File not found"
            raise StageError(f"{init / name}: not a saved Keras model (.keras files are zip archives); run stage 1 again")
        try:
            source = keras.saving.load_model(init / name, compile=False)
        except Exception as err:  # noqa: BLE001 - Keras raises many types for a bad file
            raise StageError(f"{init / name}: cannot load the stage-1 model: {err}") from err
        _transfer_weights(source, target, init / name)
    return generator, discriminator


def save_outputs_atomic(out: Path, generator: keras.Model, discriminator: keras.Model, card: dict) -> None:
    """Writes the two models and the card into a temp dir next to ``out``, then swaps it in
    (``images.atomic_dir``: a failure leaves an existing ``out`` as it was)."""
    with atomic_dir(out) as tmp:
        generator.save(tmp / GENERATOR_FILE)
        discriminator.save(tmp / DISCRIMINATOR_FILE)
        (tmp / CARD_FILE).write_text(card_text(card))


# ------------------------------------------------------------------------------------------
# The stage
# ------------------------------------------------------------------------------------------


def _check_stage_inputs(stage: int, init: Path | None, photos: Path) -> Path:
    """The stage's file inputs exist; returns the photo manifest."""
    assert (stage == 2) == (init is not None), "stage 2 needs --init, stage 1 must not have it"
    if init is not None:
        missing = [name for name in MODEL_FILES if not (init / name).is_file()]
        if missing:
            raise StageError(f"{init}: stage 2 needs the stage-1 models, missing {missing}; run stage 1 first")
    manifest = photos / "manifest.csv"
    if not manifest.exists():  # anything else but a regular file: read_manifest says so
        raise StageError(f"{manifest}: photo manifest not found; run the download stage first")
    return manifest


def make_datasets(params: Params, recipe: str, manifest: Path, stage: int = 1):
    """(train_dataset_fn(epoch) -> a fresh stream of the train photos, the fixed validation batches).
    With the recipe's ``crop_pool``, each epoch arranges one pool per stage, made from the stream of
    the unused epoch number 10**6 x stage (so the two stages see different crops)."""
    from image_completion.data.dataset import build_dataset, make_fixed_masks  # noqa: PLC0415
    from image_completion.data.manifest import photo_paths  # noqa: PLC0415

    base, train, spec = params.base, params.train, input_spec(params, recipe)
    common = dict(image_size=base.image_size, batch_size=train.batch_size, input_spec=spec)
    val_masks = make_fixed_masks(params.masks.train, train.validation_images, base.image_size, base.seed)
    # The fixed validation batches are decoded once (full photos are decoded per crop).
    val = build_dataset(photo_paths(manifest, "validation"), is_train=False, seed=base.seed, masks=val_masks, **common)
    train_paths = photo_paths(manifest, "train")

    pool = dict(pool=params.recipe(recipe).crop_pool, pool_seed=loop.epoch_seed(base.seed, 10**6 * stage))

    def train_dataset_fn(epoch: int):
        seed = loop.epoch_seed(base.seed, epoch)
        return build_dataset(train_paths, is_train=True, seed=seed, mask_params=params.masks.train, **common, **pool)

    return train_dataset_fn, val.cache()


def compile_gan(params: Params, recipe: str, stage: int, generator, discriminator):
    """The InpaintingGAN with the recipe's optimizers (learning-rate schedule over the stage) and loss weights."""
    from image_completion.core.gan import InpaintingGAN  # noqa: PLC0415
    from image_completion.core.losses import LossWeights  # noqa: PLC0415

    r = params.recipe(recipe)
    steps = params.train.steps_per_epoch * (r.stage1_epochs if stage == 1 else r.stage2_epochs)

    def rate(value: float):
        if r.lr_schedule == "cosine" and steps > 0:
            return keras.optimizers.schedules.CosineDecay(value, decay_steps=steps)
        return value

    model = InpaintingGAN(generator, discriminator)
    model.compile(
        g_optimizer=keras.optimizers.Adam(rate(r.g_learning_rate)),
        d_optimizer=keras.optimizers.Adam(rate(r.d_learning_rate)),
        loss_weights=LossWeights.of_recipe(r),
        # Without an adversarial term the discriminator cannot change the generator: not trained.
        train_discriminator=stage == 1 and r.adversarial_weight > 0,
        global_batch_size=params.train.batch_size,
    )
    return model


def _epoch_logger(live_dir: Path, step_offset: int):
    """dvclive writer of per-epoch records; stage 2's steps continue after stage 1's epochs."""
    from dvclive import Live  # noqa: PLC0415

    # resume=False: the files are rewritten from the checkpoint's history (replayed by train_gan),
    # so a crash between a checkpoint and a log line can neither lose nor repeat an epoch.
    live = Live(dir=str(live_dir), save_dvc_exp=False, dvcyaml=None, resume=False, report=None)

    def on_epoch_end(record: dict) -> None:
        live.step = step_offset + record["epoch"]
        for split in ("train", "val"):
            for name, value in record[split].items():
                live.log_metric(f"{split}/{name}", value)
        live.next_step()

    return live, on_epoch_end


def _check_frozen(discriminator, before: list, out: Path) -> None:
    changed = [v.path for v, a, b in zip(discriminator.weights, before, discriminator.get_weights()) if not np.array_equal(a, b)]
    if changed:
        raise StageError(
            f"stage 2 must leave the discriminator frozen, but {len(changed)} of its weights changed "
            f"(e.g. {changed[:3]}); nothing was saved to {out}"
        )


def model_card(params: Params, recipe: str, stage: int, init: Path | None, history: list, fingerprint: str) -> dict:
    """The ``model_card.json`` written beside the models (format: docs/architecture.md)."""
    r = params.recipe(recipe)
    epochs = r.stage1_epochs if stage == 1 else r.stage2_epochs
    return {
        "recipe": recipe,
        "stage": stage,
        "image_size": params.base.image_size,
        "hole_value": params.base.hole_value,
        "input": input_spec(params, recipe).as_card(),
        "generator": params.model.generator,
        "base_filters": params.model.base_filters,
        "precision": keras.config.dtype_policy().name,
        "strategy": params.train.strategy,
        "epochs": epochs,
        "total_epochs": epochs + (r.stage1_epochs if stage == 2 else 0),
        "steps_per_epoch": params.train.steps_per_epoch,
        "discriminator_frozen": stage == 2,
        "init": str(init) if init else None,
        "final_metrics": {"train": history[-1]["train"], "val": history[-1]["val"]} if history else None,
        "params": {
            "base": dataclasses.asdict(params.base),
            "masks": dataclasses.asdict(params.masks.train),
            "model": dataclasses.asdict(params.model),
            "recipe": dataclasses.asdict(r),
            "train": dataclasses.asdict(params.train),
        },
        "fingerprint": fingerprint,
    }


def run_stage(
    params: Params,
    *,
    recipe: str,
    stage: int,
    photos: Path,
    out: Path,
    live_dir: Path,
    checkpoints: Path,
    init: Path | None = None,
    strategy=None,
    progress: bool = True,
    epoch_hook=None,
) -> list[dict]:
    """Runs one training stage of one recipe (see the module docstring); returns the per-epoch
    records. The caller sets the precision policy and seeds first (``main`` does).
    ``epoch_hook(record, generator)``, if given, runs after each epoch (chief only; on a resume the
    restored epochs are replayed with the restored generator, so use it on fresh checkpoints)."""
    manifest = _check_stage_inputs(stage, init, photos)
    r = params.recipe(recipe)
    strategy = strategy or loop.make_strategy(params.train.strategy)
    chief = loop.is_chief(strategy)
    train_dataset_fn, val_dataset = make_datasets(params, recipe, manifest, stage)
    fingerprint, fingerprint_data = stage_fingerprint(params, recipe, stage, manifest, init)
    with strategy.scope():
        keras.utils.set_random_seed(params.base.seed)  # identical initial weights on every worker and rerun
        networks = build_networks(params, recipe) if stage == 1 else load_init_networks(params, recipe, init)
        model = compile_gan(params, recipe, stage, *networks)
    d_before = [w.copy() for w in model.discriminator.get_weights()] if stage == 2 else None
    live, log_epoch = _epoch_logger(live_dir, 0 if stage == 1 else r.stage1_epochs) if chief else (None, None)

    def on_epoch_end(record: dict) -> None:
        if log_epoch is not None:
            log_epoch(record)
            if epoch_hook is not None:
                epoch_hook(record, model.generator)

    history = loop.train_gan(
        model,
        strategy,
        train_dataset_fn=train_dataset_fn,
        steps_per_epoch=params.train.steps_per_epoch,
        epochs=r.stage1_epochs if stage == 1 else r.stage2_epochs,
        global_batch_size=params.train.batch_size,
        checkpoint_dir=checkpoints,
        fingerprint=fingerprint,
        fingerprint_params=fingerprint_data,
        val_dataset_fn=lambda: val_dataset,
        on_epoch_end=on_epoch_end,
        progress=progress,
    )
    if log_epoch is not None and not (r.stage1_epochs if stage == 1 else r.stage2_epochs):
        # A stage without epochs keeps the models it starts from; it logs their validation once,
        # so its dvclive record exists like every stage's.
        model.evaluate(val_dataset, verbose=0)  # test_step updates the trackers
        log_epoch({"epoch": 0, "train": {}, "val": {t.name: float(t.result()) for t in model.metrics if float(t.count) > 0}})
    if live is not None:
        live.end()
    if d_before is not None:
        _check_frozen(model.discriminator, d_before, out)
    if chief:
        card = model_card(params, recipe, stage, init, history, fingerprint)
        save_outputs_atomic(out, model.generator, model.discriminator, card)
        log.info("saved %s and %s to %s", *MODEL_FILES, out)
    return history
