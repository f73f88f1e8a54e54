"""A tiny GAN training run, shared by the training tests and runnable as a worker process.

Imported by ``test_training.py`` (``run_tiny_training`` in-process with the default strategy)
and run as a script for the strategies that must be configured before TensorFlow starts:

    python tests/multiworker_worker.py --strategy multiworker --photos DIR --checkpoints DIR --out w0.npz
    (cluster from TF_CONFIG)
    python tests/multiworker_worker.py --strategy mirrored --logical-cpus 2 ...

The script writes the final generator and discriminator weights and the metric history to
``--out`` (npz): the tests compare them across workers and strategies.

Tiny configuration: 32x32 crops, generator base_filters 4 / decoder 8, discriminator with a
random (``none``) VGG16 backbone and 8 dense units, global batch 4.
"""

from __future__ import annotations

import argparse
import json
import os
import sys

IMAGE_SIZE = 32
BATCH = 4
VALIDATION_IMAGES = 4


def mask_params():
    from image_completion.config import MaskShapes

    return MaskShapes(
        kind="mixed",
        box_min=0.2,
        box_max=0.5,
        strokes_max=2,
        stroke_vertices_max=4,
        stroke_length_max=0.3,
        stroke_width_min=0.05,
        stroke_width_max=0.12,
        mixed_box_probability=0.5,
    )


def write_photos(directory) -> list[str]:
    """Four small real photos (skimage crops, 40..64 px) as PNGs in ``directory``."""
    from pathlib import Path

    from PIL import Image
    from skimage import data

    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    crops = {
        "astronaut": data.astronaut()[80:144, 180:244],
        "coffee": data.coffee()[150:200, 250:310],
        "chelsea": data.chelsea()[80:130, 150:206],
        "rocket": data.rocket()[200:240, 200:260],
    }
    paths = []
    for name, array in crops.items():
        path = directory / f"{name}.png"
        Image.fromarray(array).save(path)
        paths.append(str(path))
    return sorted(paths)


def run_tiny_training(
    strategy,
    photos: list[str],
    checkpoint_dir,
    *,
    epochs: int = 2,
    steps: int = 2,
    seed: int = 7,
    train_discriminator: bool = True,
    poison_epoch: int | None = None,
):
    """Trains the tiny GAN; returns (model, history). ``poison_epoch``: that epoch's second
    batch has NaN images (a mid-epoch crash)."""
    import keras

    from image_completion.core.gan import InpaintingGAN
    from image_completion.core.holes import InputSpec
    from image_completion.core.losses import LossWeights
    from image_completion.core.models import build_discriminator, build_generator
    from image_completion.data.dataset import build_dataset, make_fixed_masks
    from image_completion.training import loop

    train_paths, val_paths = photos[:-1], photos[-1:]

    def train_dataset_fn(epoch):
        ds = build_dataset(
            train_paths,
            is_train=True,
            image_size=IMAGE_SIZE,
            batch_size=BATCH,
            input_spec=InputSpec(),
            seed=loop.epoch_seed(seed, epoch),
            mask_params=mask_params(),
        )
        if epoch == poison_epoch:
            nan = ds.skip(1).map(lambda b: {**b, "image": b["image"] * float("nan")})
            ds = ds.take(1).concatenate(nan)
        return ds

    val_masks = make_fixed_masks(mask_params(), VALIDATION_IMAGES, IMAGE_SIZE, seed)
    val = build_dataset(
        val_paths, is_train=False, image_size=IMAGE_SIZE, batch_size=BATCH, input_spec=InputSpec(), seed=seed, masks=val_masks
    )
    with strategy.scope():
        keras.utils.set_random_seed(seed)
        generator = build_generator("unet_scaled", IMAGE_SIZE, base_filters=4, decoder_filters=8)
        discriminator = build_discriminator(IMAGE_SIZE, backbone_weights="none", dense_units=8)
        model = InpaintingGAN(generator, discriminator)
        model.compile(
            keras.optimizers.Adam(1e-3),
            keras.optimizers.Adam(1e-3),
            LossWeights(valid=1.0, hole=6.0, adversarial=0.1, style=0.0),
            train_discriminator=train_discriminator,
            global_batch_size=BATCH,
        )
    history = loop.train_gan(
        model,
        strategy,
        train_dataset_fn=train_dataset_fn,
        steps_per_epoch=steps,
        epochs=epochs,
        global_batch_size=BATCH,
        checkpoint_dir=checkpoint_dir,
        fingerprint="tiny-test",
        val_dataset_fn=lambda: val,
        progress=False,
    )
    return model, history


def weights_of(model) -> list:
    return [w for net in (model.generator, model.discriminator) for w in net.get_weights()]


def main(argv=None) -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--strategy", required=True, choices=("default", "mirrored", "multiworker"))
    parser.add_argument("--logical-cpus", type=int, default=0, help="split the CPU into this many logical devices")
    parser.add_argument("--photos", required=True, help="directory of the PNG photos (sorted; the last is validation)")
    parser.add_argument("--checkpoints", required=True)
    parser.add_argument("--out", required=True)
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--steps", type=int, default=2)
    args = parser.parse_args(argv)

    import numpy as np
    import tensorflow as tf

    if args.logical_cpus:
        cpu = tf.config.list_physical_devices("CPU")[0]
        tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * args.logical_cpus)

    from image_completion.training import loop

    strategy = loop.make_strategy(args.strategy)
    loop.seed_everything(7)
    photos = sorted(os.path.join(args.photos, f) for f in os.listdir(args.photos) if f.endswith(".png"))
    model, history = run_tiny_training(strategy, photos, args.checkpoints, epochs=args.epochs, steps=args.steps)
    weights = weights_of(model)
    tmp = args.out + ".tmp.npz"
    np.savez(
        tmp,
        history=np.array(json.dumps([{k: r[k] for k in ("epoch", "train", "val")} for r in history])),
        replicas=np.array(strategy.num_replicas_in_sync),
        chief=np.array(loop.is_chief(strategy)),
        **{f"w{i}": w for i, w in enumerate(weights)},
    )
    os.replace(tmp, args.out)
    print(f"worker done: {len(weights)} weight arrays, {strategy.num_replicas_in_sync} replicas", file=sys.stderr)


if __name__ == "__main__":
    main()
