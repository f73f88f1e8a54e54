"""The tf.data pipeline: training crops and masks, the fixed evaluation path, determinism, errors."""

import numpy as np
import pytest
from PIL import Image
from skimage import data, transform

from conftest import make_mask_params
from image_completion.config import MaskShapes
from image_completion.core.holes import InputSpec
from image_completion.data import dataset as D  # noqa: N812 - short alias used in every test

SIZE = 32


def _mask_params(**changes) -> MaskShapes:
    return make_mask_params(**changes)


def _save(path, array):
    Image.fromarray(array).save(path)
    return str(path)


@pytest.fixture(scope="module")
def photos(tmp_path_factory):
    """Real photos, small so tests stay fast: 60x50 and 40x72 crops of skimage's astronaut and
    coffee, and a 20x40 one that is smaller than the crop size (must be upscaled)."""
    d = tmp_path_factory.mktemp("photos")
    astronaut = data.astronaut()[100:160, 200:250]  # (60, 50, 3)
    coffee = data.coffee()[150:190, 250:322]  # (40, 72, 3)
    small = data.chelsea()[100:120, 150:190]  # (20, 40, 3)
    return {
        "astronaut": _save(d / "astronaut.png", astronaut),
        "coffee": _save(d / "coffee.png", coffee),
        "small": _save(d / "small.png", small),
    }


def _np_photo(path):
    return np.asarray(Image.open(path).convert("RGB"), np.float32) / 255.0


def _train(paths, seed=0, batch_size=4, hole_value=1.0, **mask_changes):
    return D.build_dataset(
        paths,
        is_train=True,
        image_size=SIZE,
        batch_size=batch_size,
        input_spec=InputSpec(hole_value=hole_value),
        seed=seed,
        mask_params=_mask_params(**mask_changes),
    )


def _take(ds, n):
    return [{k: v.numpy() for k, v in b.items()} for b in ds.take(n)]


def _check_composition(batch, hole_value):
    image, mask, masked = batch["image"], batch["mask"], batch["masked"]
    b = image.shape[0]
    assert image.shape == masked.shape == (b, SIZE, SIZE, 3) and mask.shape == (b, SIZE, SIZE, 1)
    assert image.dtype == mask.dtype == masked.dtype == np.float32
    assert image.min() >= 0.0 and image.max() <= 1.0
    assert np.isin(mask, (0.0, 1.0)).all()
    holes = np.broadcast_to(mask == 1.0, image.shape)
    assert holes.any() and (~holes).any()
    assert np.all(masked[holes] == np.float32(hole_value))  # exactly
    assert np.array_equal(masked[~holes], image[~holes])


def _find_in(photo, crop):
    """(top, left, flipped) where ``crop`` sits in ``photo`` exactly, else None."""
    windows = np.lib.stride_tricks.sliding_window_view(photo, crop.shape)[..., 0, :, :, :]  # (T, L, S, S, 3)
    for flipped, c in ((False, crop), (True, crop[:, ::-1])):
        hits = np.argwhere(np.all(windows == c, axis=(2, 3, 4)))
        if len(hits):
            return int(hits[0][0]), int(hits[0][1]), flipped
    return None


def test_training_batches_are_random_crops_of_the_photos_with_fresh_masks(photos):
    paths = [photos["astronaut"], photos["coffee"]]
    batches = _take(_train(paths, hole_value=0.37), 6)
    for batch in batches:
        _check_composition(batch, 0.37)
    sources = {p: _np_photo(p) for p in paths}
    places, flips = set(), set()
    for image in np.concatenate([b["image"] for b in batches]):
        found = [(p, _find_in(photo, image)) for p, photo in sources.items()]
        found = [(p, where) for p, where in found if where is not None]
        assert found, "a training crop is not a crop of any photo"
        path, (top, left, flipped) = found[0]
        places.add((path, top, left))
        flips.add(flipped)
    assert len(places) > 12 and flips == {False, True}  # random positions, both flips
    masks = np.concatenate([b["mask"] for b in batches])
    assert len({m.tobytes() for m in masks}) == len(masks)  # a fresh mask per example


def test_training_visits_every_photo_once_per_pass_in_a_new_order(tmp_path):
    # Five flat-coloured photos: the colour of a crop tells which photo it came from.
    paths = [_save(tmp_path / f"c{i}.png", np.full((40, 40, 3), 40 * i, np.uint8)) for i in range(5)]
    images = np.concatenate([b["image"] for b in _take(_train(paths, batch_size=5), 4)])
    order = np.rint(images[:, 0, 0, 0] * 255 / 40).astype(int).reshape(4, 5)
    for one_pass in order:
        assert sorted(one_pass) == [0, 1, 2, 3, 4]
    assert len({tuple(p) for p in order}) > 1  # reshuffled between passes


def test_a_photo_smaller_than_the_crop_is_upscaled(photos):
    path = photos["small"]  # 20x40 -> fitted to 32x64
    assert D.fitted_size(20, 40, SIZE) == (32, 64)
    assert D.fitted_size(60, 50, SIZE) == (60, 50)  # large enough: untouched
    # An independent bilinear upscale (skimage) agrees with the pipeline's up to interpolation details.
    reference = transform.resize(np.asarray(Image.open(path)), (32, 64), order=1, anti_aliasing=False)
    crops = D.make_eval_crops([path], 4, SIZE, seed=3)
    assert all(top == 0 and 0 <= left <= 32 for _, top, left in crops)
    for _, top, left in crops:
        crop = D.load_crop(path, top, left, SIZE)
        assert crop.shape == (SIZE, SIZE, 3) and crop.dtype == np.float32
        assert np.abs(crop - reference[:, left : left + SIZE]).mean() < 0.03
    # The training path uses the same rule: every crop is a window of the fitted photo.
    fitted = np.stack([D.load_crop(path, 0, 0, SIZE), D.load_crop(path, 0, 32, SIZE)])
    fitted = np.concatenate(list(fitted), axis=1)  # (32, 64, 3)
    for image in _take(_train([path]), 1)[0]["image"]:
        assert _find_in(fitted, image) is not None


def test_training_is_deterministic_for_a_seed(photos):
    paths = list(photos.values())
    a = _take(_train(paths, seed=11), 2)
    b = _take(_train(paths, seed=11), 2)
    c = _take(_train(paths, seed=12), 2)
    for x, y in zip(a, b):
        for key in ("masked", "image", "mask"):
            np.testing.assert_array_equal(x[key], y[key])
    assert not np.array_equal(a[0]["image"], c[0]["image"])
    assert not np.array_equal(a[0]["mask"], c[0]["mask"])


def _eval(paths, masks, batch_size=2, hole_value=0.0, seed=5):
    return D.build_dataset(
        paths,
        is_train=False,
        image_size=SIZE,
        batch_size=batch_size,
        input_spec=InputSpec(hole_value=hole_value),
        seed=seed,
        masks=masks,
    )


def test_evaluation_gives_the_fixed_crops_with_the_given_masks_in_order(photos):
    paths = [photos["astronaut"], photos["coffee"]]
    masks = D.make_fixed_masks(_mask_params(), 5, SIZE, seed=2)
    assert masks.shape == (5, SIZE, SIZE) and masks.dtype == np.float32
    np.testing.assert_array_equal(masks, D.make_fixed_masks(_mask_params(), 5, SIZE, seed=2))
    batches = _take(_eval(paths, masks), 10)
    assert [b["image"].shape[0] for b in batches] == [2, 2, 1]  # exactly N, finite
    for batch in batches:
        _check_composition(batch, 0.0)
    images = np.concatenate([b["image"] for b in batches])
    np.testing.assert_array_equal(np.concatenate([b["mask"] for b in batches])[..., 0], masks)
    crops = D.make_eval_crops(paths, 5, SIZE, seed=5)
    assert [c[0] for c in crops] == [paths[i % 2] for i in range(5)]
    for image, (path, top, left) in zip(images, crops):
        expected = _np_photo(path)[top : top + SIZE, left : left + SIZE]  # no flip
        np.testing.assert_allclose(image, expected, atol=1e-7)
        np.testing.assert_array_equal(image, D.load_crop(path, top, left, SIZE))
    again = np.concatenate([b["image"] for b in _take(_eval(paths, masks), 10)])
    np.testing.assert_array_equal(images, again)
    other = D.make_eval_crops(paths, 5, SIZE, seed=6)
    assert [c[1:] for c in other] != [c[1:] for c in crops]


def test_bad_input_gives_clear_errors(photos, tmp_path):
    good = [photos["astronaut"]]
    with pytest.raises(D.DatasetError, match="photo_paths is empty"):
        _train([])
    missing = str(tmp_path / "nope.png")
    with pytest.raises(D.DatasetError, match=f"{missing}: photo not found"):
        _train([good[0], missing])

    broken = tmp_path / "broken.png"
    broken.write_bytes(open(good[0], "rb").read()[:-200])  # a truncated PNG
    junk = tmp_path / "junk.png"
    junk.write_bytes(b"this is no image")
    for bad in (str(broken), str(junk)):
        # Training decodes every photo once, when the dataset is built: the error names the file.
        with pytest.raises(D.DatasetError, match=f"{bad}: cannot decode photo"):
            _train([bad])
        with pytest.raises(D.DatasetError, match=f"{bad}: cannot decode photo"):
            D.load_crop(bad, 0, 0, SIZE)
    with pytest.raises(D.DatasetError, match=f"{junk}: cannot decode photo"):
        D.make_eval_crops([str(junk)], 1, SIZE, seed=0)
    with pytest.raises(D.DatasetError, match="outside the 60x50"):
        D.load_crop(good[0], 30, 0, SIZE)


# ---- crop pool ----------------------------------------------------------------------------------


def _pooled(paths, seed, pool_seed=5, n=6):
    return D.build_dataset(
        paths,
        is_train=True,
        image_size=SIZE,
        batch_size=4,
        input_spec=InputSpec(prefill="telea", mask_channel=True),
        seed=seed,
        mask_params=_mask_params(),
        pool=n,
        pool_seed=pool_seed,
    )


def _turned(example: dict) -> list[dict]:
    """The 8 turns and mirror images of one example (image, mask, input alike)."""
    out = []
    for k in range(4):
        turned = {key: np.rot90(value, k, axes=(0, 1)) for key, value in example.items()}
        out += [turned, {key: value[:, ::-1] for key, value in turned.items()}]
    return out


def test_crop_pool_is_made_once_and_each_epoch_arranges_it_anew(photos, monkeypatch):
    """Every pooled example is one of the pool's examples turned or mirrored; the pool's inputs are
    made once for all epochs; the same seed arranges the same batches, another seed another order."""
    calls = []
    real = D.generator_input
    monkeypatch.setattr(D, "generator_input", lambda *args: calls.append(1) or real(*args))
    D.crop_pool.cache_clear()
    paths = list(photos.values())
    epoch0 = _take(_pooled(paths, seed=1), 3)  # 12 examples: the 6 of the pool, then again
    epoch0_again, epoch1 = _take(_pooled(paths, seed=1), 3), _take(_pooled(paths, seed=2), 3)
    assert len(calls) == 6
    pool = D.crop_pool(tuple(paths), SIZE, InputSpec(prefill="telea", mask_channel=True), 5, _mask_params(), 6)
    variants = [_turned({key: pool[key][i] for key in pool}) for i in range(6)]

    def source(batches, b, j):
        example = {key: batches[b][key][j] for key in pool}
        found = [i for i, vs in enumerate(variants) if any(all(np.array_equal(v[k], example[k]) for k in pool) for v in vs)]
        assert found, "a pooled example that is no turn of a pool example"
        return found[0]

    order0 = [source(epoch0, b, j) for b in range(3) for j in range(4)]
    order1 = [source(epoch1, b, j) for b in range(3) for j in range(4)]
    assert sorted(order0[:6]) == list(range(6)) and order0[6:] == order0[:6]  # the whole pool, then again
    assert sorted(order1[:6]) == list(range(6)) and order1 != order0
    for a, b in zip(epoch0, epoch0_again):
        assert all(np.array_equal(a[k], b[k]) for k in a)


def test_every_pipeline_is_deterministic_without_autotuning(photos):
    # Autotuning's model thread made deleting an iterator wait 30-45 s at some epochs' ends
    # (D._options); the order of the elements must not depend on thread timing.
    paths = [photos["astronaut"], photos["coffee"]]
    masks = np.zeros((2, SIZE, SIZE), np.float32)
    for ds in (_train(paths), _pooled(paths, seed=1), _eval(paths, masks)):
        options = ds.options()
        assert options.deterministic is True
        assert options.autotune.enabled is False
