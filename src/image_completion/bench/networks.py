"""The training code as the training stages use it: params -> networks, GAN, data stream."""

from __future__ import annotations

from pathlib import Path

from image_completion.bench.flops import train_step_flops
from image_completion.training.hardware import CPU_FLAGS, cpu_features, cpu_type, native_bf16  # noqa: F401 - re-exported

# ------------------------------------------------------------------------------------------
# The training code, as the training stages use it
# ------------------------------------------------------------------------------------------


def _param(params, path: str):
    """``params`` attribute at a dotted path (``compare.seeds``), or None when absent."""
    value = params
    for name in path.split("."):
        value = getattr(value, name, None)
    return value


def recipes(params) -> list[str]:
    """The trained recipes (``train.recipes``); the first is the reference of the bench."""
    return list(params.train.recipes)


def training_precision(params) -> str:
    """The precision the training stages use (``training.loop.resolve_precision``: ``auto`` resolved)."""
    from image_completion.training.loop import resolve_precision  # noqa: PLC0415

    return resolve_precision(params.train.precision)


def dtype_policy(name: str):
    """``core.models.dtype_policy`` (Keras' global policy inside a block), imported on use so
    that the bench's command line starts without TensorFlow."""
    from image_completion.core.models import dtype_policy as policy  # noqa: PLC0415

    return policy(name)


def build_gan(params, recipe: str, stage: int):
    """The training stage's compiled InpaintingGAN (``runner.compile_gan``) with fresh networks
    under the current dtype policy (backbone weights ``none``: the same FLOPs, no file read)."""
    from image_completion.training import runner  # noqa: PLC0415

    networks = runner.build_networks(params, recipe, backbone_weights="none")
    return runner.compile_gan(params, recipe, stage, *networks)


def gan_step_flops(gan) -> dict:
    """``train_step_flops`` of a compiled GAN (its batch, loss weights and stage)."""
    return train_step_flops(
        gan.generator,
        gan.discriminator,
        gan.global_batch_size,
        train_discriminator=gan.train_discriminator,
        adversarial_weight=gan.loss_weights.adversarial,
        style_weight=gan.loss_weights.style,
    )


def train_stream(params, recipe: str, manifest: Path):
    """The training stage's real input stream (``dataset.build_dataset(..., is_train=True)``
    through ``runner.make_datasets``) over the manifest's ``train`` photos, each example made
    afresh: with a ``crop_pool`` the stage makes that many once (``projection`` costs it so)."""
    import dataclasses  # noqa: PLC0415

    from image_completion.training import runner  # noqa: PLC0415

    streamed = dataclasses.replace(params.recipes[recipe], crop_pool=0)
    params = dataclasses.replace(params, recipes={**params.recipes, recipe: streamed})
    return runner.make_datasets(params, recipe, manifest)[0](0)


def build_generator_of(params, recipe: str):
    """A fresh generator of the params' size and recipe under the current dtype policy."""
    from image_completion.training import runner  # noqa: PLC0415

    return runner.build_networks(params, recipe, backbone_weights="none")[0]
