"""The tf.data input pipeline: photo crops paired with hole masks, as dicts of batches
``{"masked": (B,S,S,C) generator input, "image": (B,S,S,3), "mask": (B,S,S,1)}`` (float32, 1 = hole).

Training streams random crops of the in-memory training photos with fresh masks, every random
choice derived from (seed, element index); evaluation pairs fixed crops with given fixed masks.
Design and determinism: ``docs/architecture.md``, "Input pipeline".
"""

from __future__ import annotations

import functools
import os

import numpy as np
import tensorflow as tf

from image_completion.config import MaskShapes
from image_completion.core.holes import InputSpec, generator_input
from image_completion.data.masks import make_mask
from image_completion.errors import InputError
from image_completion.images import opened

AUTOTUNE = tf.data.AUTOTUNE

# Tags that keep the numpy random streams of the different uses apart for one seed
# (masks.make_eval_masks uses [seed, bucket, k]; these lists are [seed, tag, i]).
_TRAIN_MASK_TAG = 101
_FIXED_MASK_TAG = 102
_EVAL_CROP_TAG = 104
_POOL_TAG = 105

_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_PNG_TRAILER = b"IEND\xaeB`\x82"  # the last 8 bytes of every complete PNG
_JPEG_SIGNATURE = b"\xff\xd8\xff"


class DatasetError(InputError, ValueError):
    """Bad input to the pipeline; the message names the file or argument."""


# --------------------------------------------------------------------------- decoding


def fitted_size(height: int, width: int, image_size: int) -> tuple[int, int]:
    """The photo's size after the resize rule: unchanged unless a side is shorter than
    ``image_size``; then scaled up (aspect kept, rounded up) so the shorter side is ``image_size``."""
    short = min(height, width)
    if short >= image_size:
        return height, width
    # Integer ceil-division keeps the shorter side exactly image_size.
    return -(-height * image_size // short), -(-width * image_size // short)


def _decode_photo(path: tf.Tensor, contents: tf.Tensor, image_size: int) -> tf.Tensor:
    """Decodes PNG/JPEG bytes to uint8 (H, W, 3), upscaled only if a side < image_size.

    Stays uint8 so the full-resolution photo is never converted to float (only the crop is);
    an upscaled photo (bilinear) is rounded back to 8 bits, as if it had been saved so.
    A file that is not a complete PNG or a JPEG fails with an error naming ``path`` (TF's own
    decode error does not name the file).
    """
    is_png = tf.equal(tf.strings.substr(contents, 0, 8), _PNG_SIGNATURE)
    is_complete_png = tf.logical_and(is_png, tf.equal(tf.strings.substr(contents, -8, 8), _PNG_TRAILER))
    is_jpeg = tf.equal(tf.strings.substr(contents, 0, 3), _JPEG_SIGNATURE)
    check = tf.debugging.Assert(
        tf.logical_or(is_complete_png, is_jpeg),
        ["cannot decode photo (not a complete PNG or JPEG file):", path],
    )
    with tf.control_dependencies([check]):
        contents = tf.identity(contents)
    image = tf.io.decode_image(contents, channels=3, dtype=tf.uint8, expand_animations=False)  # (H, W, 3)
    h, w = tf.shape(image)[0], tf.shape(image)[1]
    short = tf.minimum(h, w)

    def upscale():
        new_h = (h * image_size + short - 1) // short  # ceil, as fitted_size
        new_w = (w * image_size + short - 1) // short
        resized = tf.image.resize(image, tf.stack([new_h, new_w]), method="bilinear")  # float32
        return tf.cast(tf.clip_by_value(tf.round(resized), 0.0, 255.0), tf.uint8)

    image = tf.cond(short < image_size, upscale, lambda: image)
    image.set_shape([None, None, 3])
    return image


def _to_float(crop: tf.Tensor) -> tf.Tensor:
    return tf.cast(crop, tf.float32) / 255.0  # uint8 -> [0, 1]


def _decode_file(path: str, image_size: int) -> tf.Tensor:
    """A photo file decoded and fitted (``_decode_photo``); a missing or undecodable file is a
    ``DatasetError`` naming it."""
    try:
        return _decode_photo(tf.constant(path), tf.io.read_file(path), image_size)
    except tf.errors.NotFoundError:
        raise DatasetError(f"{path}: photo not found") from None
    except tf.errors.InvalidArgumentError as err:
        why = "not a complete PNG or JPEG file" if "not a complete PNG" in err.message else " ".join(err.message.split())[:200]
        raise DatasetError(f"{path}: cannot decode photo: {why}") from None


def load_crop(path: str, top: int, left: int, image_size: int) -> np.ndarray:
    """One ``image_size`` crop of a photo as float32 (H, W, 3) in [0, 1] (same rule as the tf path)."""
    path = str(path)
    image = _decode_file(path, image_size)
    h, w = int(image.shape[0]), int(image.shape[1])
    if not (0 <= top <= h - image_size and 0 <= left <= w - image_size):
        raise DatasetError(f"{path}: crop at top={top}, left={left} of size {image_size} lies outside the {h}x{w} (fitted) photo")
    return _to_float(image[top : top + image_size, left : left + image_size]).numpy()


def _photo_size(path: str) -> tuple[int, int]:
    """(height, width) from the file header, as TF decodes it (no EXIF rotation)."""
    with opened(path, DatasetError, "photo") as im:
        if im.format not in ("PNG", "JPEG"):
            raise DatasetError(f"{path}: photos must be PNG or JPEG, got {im.format}")
        width, height = im.size
    return height, width


# --------------------------------------------------------------------------- fixed crops and masks


def make_eval_crops(photo_paths, n: int, image_size: int, seed: int) -> list[tuple[str, int, int]]:
    """The fixed crops of evaluation: crop i is (photo i % len(photos), top, left), its place
    drawn from (seed, i). Positions are in the fitted (possibly upscaled) photo."""
    paths = _check_photo_paths(photo_paths)
    assert n >= 1 and seed >= 0, (n, seed)
    sizes: dict[str, tuple[int, int]] = {}
    crops = []
    for i in range(n):
        path = paths[i % len(paths)]
        if path not in sizes:
            sizes[path] = fitted_size(*_photo_size(path), image_size)
        h, w = sizes[path]
        rng = np.random.default_rng([seed, _EVAL_CROP_TAG, i])
        crops.append((path, int(rng.integers(0, h - image_size + 1)), int(rng.integers(0, w - image_size + 1))))
    return crops


def make_fixed_masks(mask_params: MaskShapes, n: int, size: int, seed: int) -> np.ndarray:
    """n fixed training-kind masks (e.g. a validation set during training): float32 (n, size, size)."""
    assert n >= 1 and seed >= 0, (n, seed)
    rngs = [np.random.default_rng([seed, _FIXED_MASK_TAG, i]) for i in range(n)]
    return np.stack([make_mask(mask_params.kind, rng, size, mask_params) for rng in rngs])


# --------------------------------------------------------------------------- checks


def _check_photo_paths(photo_paths) -> list[str]:
    """The photos of a manifest split (a file the user can edit): an empty split is an error."""
    assert not isinstance(photo_paths, (str, bytes, os.PathLike)), "a list of files, not one path"
    paths = [os.fspath(p) for p in photo_paths]
    if not paths:
        raise DatasetError("photo_paths is empty: no photos to read (check the manifest split)")
    return paths


# --------------------------------------------------------------------------- the dataset


def _compose(image: tf.Tensor, mask: tf.Tensor, spec: InputSpec) -> dict[str, tf.Tensor]:
    """image (S, S, 3), mask (S, S) -> {"masked": the generator input (S, S, C) made by
    ``holes.generator_input``, "image", "mask" (S, S, 1)}."""
    size = image.shape[0]
    masked = tf.numpy_function(lambda i, m: generator_input(i, m, spec), [image, mask], tf.float32, stateful=False)
    masked.set_shape([size, size, spec.channels])
    return {"masked": masked, "image": image, "mask": mask[..., tf.newaxis]}


def _options() -> tf.data.Options:
    """Deterministic order, and tf.data's autotuning off: its optimisation thread sleeps for periods
    that double up to 60 s, and deleting an iterator (every epoch's end) waits for the period to run
    out, the CPU idle: 32 s after 50 s of iteration, measured (README, "Speed and time budget").
    ``AUTOTUNE`` then stands for fixed defaults (parallel calls: the thread pool's size, at most 16;
    prefetch: the buffer grown by the iterator itself); the data are the same either way."""
    options = tf.data.Options()
    options.deterministic = True
    options.autotune.enabled = False
    return options


def build_dataset(
    photo_paths,
    *,
    is_train: bool,
    image_size: int,
    batch_size: int,
    input_spec: InputSpec,
    seed: int,
    mask_params: MaskShapes | None = None,
    masks=None,
    pool: int = 0,
    pool_seed: int = 0,
) -> tf.data.Dataset:
    """The input pipeline (see the module docstring).

    Training needs ``mask_params`` (fresh masks of ``mask_params.kind``) and no ``masks``;
    evaluation needs ``masks`` float32 (N, image_size, image_size) and no ``mask_params``.
    Training batches are full (drop_remainder); the evaluation's last batch may be smaller.
    ``pool`` > 0 (training): the examples are the ``pool`` made once from ``pool_seed``
    (``crop_pool``), arranged anew from ``seed``.
    """
    paths = _check_photo_paths(photo_paths)
    assert image_size >= 1 and batch_size >= 1 and seed >= 0, (image_size, batch_size, seed)
    # Training draws fresh masks of mask_params.kind; evaluation uses the fixed masks given.
    assert (mask_params is not None, masks is not None) == ((True, False) if is_train else (False, True))
    if is_train:
        missing = [p for p in paths if not os.path.isfile(p)]
        if missing:
            raise DatasetError(f"{missing[0]}: photo not found ({len(missing)} of {len(paths)} photos missing)")
        if pool:
            examples = crop_pool(tuple(paths), image_size, input_spec, int(pool_seed), mask_params, pool)
            return _pool_dataset(examples, batch_size, int(seed))
        examples = _train_examples(paths, image_size, input_spec, int(seed), mask_params)
        return examples.batch(batch_size, drop_remainder=True).prefetch(AUTOTUNE).with_options(_options())
    masks = np.asarray(masks, np.float32)
    assert masks.ndim == 3 and len(masks) and masks.shape[1:] == (image_size, image_size), masks.shape
    crops = make_eval_crops(paths, len(masks), image_size, seed)
    return _eval_dataset(crops, masks, image_size, batch_size, input_spec)


@functools.lru_cache(maxsize=2)
def decoded_photos(paths: tuple[str, ...], image_size: int) -> tuple[tuple[np.ndarray, ...], np.ndarray]:
    """Every photo decoded once (uint8 (H, W, 3), the resize rule applied) and their sizes (N, 2).

    Decoding a whole photo for each small crop cost most of a training step (about 20 ms per
    1024-px PNG, 8 per step); the training photos are held in memory instead (about 2.4 MB per
    1024 x 768 photo). Cached across epochs: every epoch's stream reads the same arrays.
    """
    photos = [_decode_file(path, image_size).numpy() for path in paths]
    return tuple(photos), np.array([p.shape[:2] for p in photos], np.int32)


def _train_examples(paths, image_size, spec, seed, mask_params, count: int | None = None) -> tf.data.Dataset:
    """The stream of training examples (unbatched; endless, or the first ``count``): element i's photo,
    crop, mirroring and mask are drawn from (seed, i)."""
    n_photos = len(paths)
    photos, sizes = decoded_photos(tuple(paths), image_size)
    sizes_t = tf.constant(sizes)  # (N, 2)

    def draw_mask(index):
        # Runs in Python: one mask per element from its own generator (seed, tag, index).
        rng = np.random.default_rng([seed, _TRAIN_MASK_TAG, int(index)])
        return make_mask(mask_params.kind, rng, image_size, mask_params)

    def cut(photo, top, left):
        return photos[photo][top : top + image_size, left : left + image_size]

    def example(index):
        # index: int64 scalar, the element's position in the stream.
        epoch, position = index // n_photos, index % n_photos
        # A fresh permutation of the photos in every pass (stateless: depends on seed and epoch).
        photo = tf.random.experimental.index_shuffle(
            position, seed=tf.stack([tf.constant(seed, tf.int64), epoch]), max_index=n_photos - 1
        )
        h, w = sizes_t[photo][0], sizes_t[photo][1]
        u = tf.random.stateless_uniform([3], seed=tf.stack([tf.constant(seed, tf.int64), index]))
        top = tf.minimum(tf.cast(u[0] * tf.cast(h - image_size + 1, tf.float32), tf.int32), h - image_size)
        left = tf.minimum(tf.cast(u[1] * tf.cast(w - image_size + 1, tf.float32), tf.int32), w - image_size)
        crop = tf.numpy_function(cut, [photo, top, left], tf.uint8, stateful=False)
        crop = _to_float(crop)  # (S, S, 3)
        crop = tf.cond(u[2] < 0.5, lambda: tf.reverse(crop, axis=[1]), lambda: crop)
        crop.set_shape([image_size, image_size, 3])
        mask = tf.numpy_function(draw_mask, [index], tf.float32, stateful=False)
        mask.set_shape([image_size, image_size])
        return _compose(crop, mask, spec)

    ds = tf.data.Dataset.counter() if count is None else tf.data.Dataset.range(count)  # 0, 1, 2, ... (int64)
    return ds.map(example, num_parallel_calls=AUTOTUNE, deterministic=True).with_options(_options())


@functools.lru_cache(maxsize=1)
def crop_pool(paths: tuple[str, ...], image_size: int, spec: InputSpec, seed: int, mask_params: MaskShapes, n: int) -> dict:
    """The first ``n`` examples of the training stream of ``seed``, made once (the costly part is the
    generator input: e.g. FSR takes about 65 ms per 64-px crop): {key: float32 (n, S, S, C)}.
    Cached, so that every epoch of a stage arranges the same pool."""
    batch = _train_examples(list(paths), image_size, spec, seed, mask_params, count=n).batch(n).get_single_element()
    return {key: value.numpy() for key, value in batch.items()}


def _pool_dataset(pool: dict, batch_size: int, seed: int) -> tf.data.Dataset:
    """The pool in a new order drawn from ``seed``, each example turned by a multiple of 90 degrees
    and mirrored or not (the same for its input, image and mask), repeated endlessly and batched."""
    n = len(pool["image"])
    rng = np.random.default_rng([seed, _POOL_TAG])
    order, turns, mirrored = rng.permutation(n), rng.integers(4, size=n), rng.random(n) < 0.5

    def arranged(array: np.ndarray) -> np.ndarray:
        out = array[order]  # (n, S, S, C), a copy
        for k in (1, 2, 3):
            out[turns == k] = np.rot90(out[turns == k], k, axes=(1, 2))
        out[mirrored] = out[mirrored][:, :, ::-1]
        return out

    ds = tf.data.Dataset.from_tensor_slices({key: arranged(value) for key, value in pool.items()}).repeat()
    return ds.batch(batch_size, drop_remainder=True).prefetch(AUTOTUNE).with_options(_options())


def _eval_dataset(crops, masks, image_size, batch_size, spec) -> tf.data.Dataset:
    paths = tf.constant([c[0] for c in crops])
    tops = tf.constant([c[1] for c in crops], tf.int32)
    lefts = tf.constant([c[2] for c in crops], tf.int32)

    def example(path, top, left, mask):
        image = _decode_photo(path, tf.io.read_file(path), image_size)
        crop = _to_float(image[top : top + image_size, left : left + image_size])
        crop.set_shape([image_size, image_size, 3])
        return _compose(crop, mask, spec)

    ds = tf.data.Dataset.from_tensor_slices((paths, tops, lefts, masks))
    ds = ds.map(example, num_parallel_calls=AUTOTUNE, deterministic=True)
    ds = ds.batch(batch_size).prefetch(AUTOTUNE)
    return ds.with_options(_options())
