"""fill.py: hole regions and windows, the generator path at any photo size, masks, cards, folders."""

from __future__ import annotations

import json
import os
import tracemalloc
import zipfile
from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image

from conftest import box_hole
from conftest import skimage_photo as photo
from image_completion.app.files import FillError, check_output_file, load_pair, mask_from_file, plan_folder
from image_completion.app.fill import Filler, Generator, fill_folder, fill_with_generator, load_generator, resolve_model_settings
from image_completion.app.web.guard import BYTES_PER_PIXEL
from image_completion.app.windows import apply_maps, enlarge_map, extract_window, hole_windows, shrink_map
from image_completion.core.holes import InputSpec, generator_input
from image_completion.images import ImageError

SIZE = 32  # the tiny generator's input side


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory) -> Path:
    """A tiny untrained unet_scaled generator (32 px, 4 base filters) saved with its model card."""
    from image_completion.core.models import build_generator

    folder = tmp_path_factory.mktemp("model")
    model = build_generator("unet_scaled", SIZE, base_filters=4, decoder_filters=8)
    path = folder / "generator.keras"
    model.save(path)
    (folder / "model_card.json").write_text(json.dumps({"image_size": SIZE, "hole_value": 1.0, "generator": "unet_scaled"}))
    return path


class Recorder:
    """A fake generator that records its inputs and answers a constant."""

    def __init__(self, value: float = 0.5, size: int = SIZE, hole_value: float = 1.0, spec: InputSpec | None = None):
        self.inputs: list[np.ndarray] = []
        spec = spec or InputSpec(hole_value=hole_value)
        self.generator = Generator(predict=self.predict, image_size=size, spec=spec, path=Path("fake"))
        self.value = value

    def predict(self, batch):
        self.inputs.append(batch.copy())
        return np.full(batch.shape[:3] + (3,), self.value, np.float32)


# ---- windows ---------------------------------------------------------------------------------


@pytest.mark.parametrize("shape", [(512, 512), (97, 141), (23, 19), (300, 451)])
def test_windows_cover_each_region_and_every_hole_pixel_has_a_region(shape):
    rng = np.random.default_rng(0)
    height, width = shape
    hole = np.zeros(shape, bool)
    for _ in range(4):
        h, w = rng.integers(1, max(2, height // 3)), rng.integers(1, max(2, width // 3))
        top, left = rng.integers(0, height - h + 1), rng.integers(0, width - w + 1)
        hole[top : top + h, left : left + w] = True
    labels, windows = hole_windows(hole, SIZE)
    assert ((labels > 0) == hole).all()
    assert {w.label for w in windows} == set(np.unique(labels[labels > 0]))
    for w in windows:
        rows, cols = w.slices
        # the region's bounding box lies inside the window; the window is at least the model's side
        assert w.top <= rows.start and rows.stop <= w.top + w.side
        assert w.left <= cols.start and cols.stop <= w.left + w.side
        assert SIZE <= w.side <= max(SIZE, height, width)
        # a window that fits in the photo along an axis stays inside it (no padding needed there)
        if height >= w.side:
            assert 0 <= w.top <= height - w.side
        if width >= w.side:
            assert 0 <= w.left <= width - w.side


def test_small_hole_gets_a_native_resolution_window_and_near_holes_merge():
    hole = box_hole(400, 600, 100, 100, 5, 5) | box_hole(400, 600, 100, 108, 5, 5)  # 3 px apart
    hole |= box_hole(400, 600, 300, 500, 4, 4)  # far away
    _, windows = hole_windows(hole, SIZE)
    assert len(windows) == 2  # the two close specks are one region
    assert all(w.side == SIZE for w in windows)
    big = box_hole(400, 600, 50, 50, 100, 150)
    (window,) = hole_windows(big, SIZE)[1]
    assert window.side == 300  # twice the longer side of the hole's bounding box


def test_extract_window_mirrors_outside_the_array():
    array = np.arange(5 * 4).reshape(5, 4)
    crop = extract_window(array, -2, -1, 8)
    assert crop.shape == (8, 8)
    assert (crop[2:7, 1:5] == array).all()
    assert crop[1, 1] == array[1, 0] and crop[0, 1] == array[2, 0]  # reflection about row 0


# ---- the generator path ----------------------------------------------------------------------


@pytest.mark.parametrize(
    "name, shape, box",
    [
        ("astronaut", (97, 141), (30, 40, 20, 35)),  # larger than the model, non-square
        ("coffee", (23, 19), (5, 4, 8, 6)),  # smaller than the model
        ("chelsea", (300, 451), (100, 150, 90, 120)),  # hole bigger than the model input: downscaled
    ],
)
def test_tiny_model_fills_any_size_and_keeps_known_pixels(tiny_model, name, shape, box):
    generator = load_generator(tiny_model)
    assert (generator.image_size, generator.spec) == (SIZE, InputSpec(hole_value=1.0))
    image = photo(name, *shape)
    hole = box_hole(*shape, *box)
    out = fill_with_generator(image, hole, generator)
    assert out.shape == image.shape and out.dtype == np.uint8
    assert (out[~hole] == image[~hole]).all()  # bit-exact
    changed = np.abs(out[hole].astype(int) - image[hole].astype(int)).max(axis=-1) > 0
    assert changed.mean() > 0.5


def test_generator_sees_hole_value_in_the_hole_and_the_photo_elsewhere():
    image = photo("astronaut", 97, 141)
    hole = box_hole(97, 141, 40, 60, 6, 9)  # small: one native-resolution 32 x 32 window
    recorder = Recorder(hole_value=0.75)
    fill_with_generator(image, hole, recorder.generator)
    (batch,) = recorder.inputs
    assert batch.shape == (1, SIZE, SIZE, 3) and batch.dtype == np.float32
    (window,) = hole_windows(hole, SIZE)[1]
    crop = image[window.top : window.top + SIZE, window.left : window.left + SIZE] / 255.0
    crop_hole = hole[window.top : window.top + SIZE, window.left : window.left + SIZE]
    assert np.allclose(batch[0][crop_hole], 0.75)
    assert np.allclose(batch[0][~crop_hole], crop[~crop_hole], atol=1e-6)


@pytest.mark.parametrize("shape", [(1, 4000), (4000, 1), (3, 2500)])
def test_model_fill_of_a_strip_allocates_within_the_pixel_budget(shape):
    """The window of a long hole in a narrow photo is far larger than the photo (a 1 x 20000 strip
    took 3.5 GB); its shrinking and enlarging work on the photo's own pixels, so the fill's
    allocations stay within BYTES_PER_PIXEL per photo pixel (issue 18, class 2)."""
    image = (np.random.default_rng(0).random((*shape, 3)) * 255).astype(np.uint8)
    hole = np.zeros(shape, bool)
    long_axis = int(np.argmax(shape))
    index = [slice(None), slice(None)]
    index[long_axis] = slice(shape[long_axis] // 4, shape[long_axis] // 2)
    hole[tuple(index)] = True
    recorder = Recorder(value=0.2)
    tracemalloc.start()
    try:
        out = fill_with_generator(image, hole, recorder.generator)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak <= BYTES_PER_PIXEL * hole.size + 2**20, peak
    assert (out[~hole] == image[~hole]).all() and np.median(out[hole]) == 51  # 0.2 pasted


@pytest.mark.parametrize("shape, top, left, side", [((97, 141), -10, -20, 150), ((1, 400), -99, 0, 200), ((50, 7), -20, -40, 90)])
def test_window_maps_equal_opencv_on_the_mirrored_window(shape, top, left, side):
    """The sparse maps reproduce cv2.resize (INTER_AREA down, INTER_CUBIC up) of the mirrored window."""
    rng = np.random.default_rng(1)
    array = rng.random((*shape, 3)).astype(np.float32)
    expected = cv2.resize(extract_window(array, top, left, side), (SIZE, SIZE), interpolation=cv2.INTER_AREA)
    row_map, first_row = shrink_map(top, side, shape[0], SIZE)
    column_map, first_column = shrink_map(left, side, shape[1], SIZE)
    crop = array[first_row : first_row + row_map.shape[1], first_column : first_column + column_map.shape[1]]
    assert np.allclose(apply_maps(row_map, crop, column_map), expected, atol=1e-5)
    small = rng.random((SIZE, SIZE, 3)).astype(np.float32)
    enlarged = cv2.resize(small, (side, side), interpolation=cv2.INTER_CUBIC)
    box = apply_maps(enlarge_map(SIZE, side, 5, side // 2), small, enlarge_map(SIZE, side, side // 3, side - 1))
    assert np.allclose(box, enlarged[5 : side // 2, side // 3 : side - 1], atol=1e-5)


def test_downscaled_window_uses_only_known_pixels_and_fills_every_hole_pixel():
    # A black photo with a white hole: if hole pixels leaked into the known low-res pixels the
    # generator input would hold values between 0 and hole_value outside its hole.
    image = np.zeros((200, 260, 3), np.uint8)
    hole = box_hole(200, 260, 50, 60, 70, 90)
    image[hole] = 255
    recorder = Recorder(value=0.5)
    out = fill_with_generator(image, hole, recorder.generator)
    (batch,) = recorder.inputs
    values = np.unique(batch.round(6))
    assert set(values) == {0.0, 1.0}  # known pixels exactly 0, hole exactly hole_value
    assert (out[~hole] == 0).all()
    assert (out[hole] > 0).all()  # every hole pixel was pasted
    assert (out[hole] < 255).all()
    centre = out[85, 105]
    assert (centre == 128).all()  # the constant answer, away from the hole's edge


def test_many_regions_are_batched():
    image = photo("coffee", 300, 420)
    hole = np.zeros((300, 420), bool)
    for i in range(5):
        for j in range(6):
            hole[10 + 60 * i : 14 + 60 * i, 10 + 70 * j : 14 + 70 * j] = True
    recorder = Recorder()
    out = fill_with_generator(image, hole, recorder.generator)
    assert [len(b) for b in recorder.inputs] == [16, 14]
    assert (out[~hole] == image[~hole]).all() and (out[hole] == 128).all()


@pytest.mark.parametrize("method", ["telea", "ns", "biharmonic", "fsr", "blend"])
def test_baselines_keep_known_pixels(method):
    image = photo("chelsea", 61, 83)
    hole = box_hole(61, 83, 20, 30, 10, 12)
    out = Filler().fill(image, hole, method)
    assert out.shape == image.shape and (out[~hole] == image[~hole]).all()
    assert not (out[hole] == image[hole]).all()


# ---- masks and photos ------------------------------------------------------------------------


def test_masks_png_jpeg_rgba_and_alpha(tmp_path):
    image = photo("astronaut", 40, 50)
    hole = box_hole(40, 50, 10, 12, 15, 20)
    Image.fromarray(image).save(tmp_path / "p.png")
    Image.fromarray(hole.astype(np.uint8) * 255).save(tmp_path / "m.png")
    Image.fromarray(hole.astype(np.uint8) * 255).save(tmp_path / "m.jpg", quality=70)
    assert (mask_from_file(tmp_path / "m.png") == hole).all()
    jpeg = np.asarray(Image.open(tmp_path / "m.jpg").convert("L"))
    assert not set(np.unique(jpeg)) <= {0, 255}  # really lossy, so the threshold matters
    assert (mask_from_file(tmp_path / "m.jpg") == hole).all()
    # a white stroke on transparency: transparent pixels are not holes
    rgba = np.zeros((40, 50, 4), np.uint8)
    rgba[..., :3] = 255
    rgba[..., 3] = hole * 255
    Image.fromarray(rgba).save(tmp_path / "m_rgba.png")
    assert (mask_from_file(tmp_path / "m_rgba.png") == hole).all()
    # a photo whose transparent pixels are the hole
    with_alpha = np.dstack([image, np.where(hole, 0, 255).astype(np.uint8)])
    Image.fromarray(with_alpha).save(tmp_path / "alpha.png")
    loaded, loaded_hole = load_pair(tmp_path / "alpha.png", None)
    assert (loaded == image).all() and (loaded_hole == hole).all()


@pytest.mark.parametrize(
    "case, pattern",
    [
        ("size", r"m\.png: mask size 49x40 differs from the photo's 50x40"),
        ("empty", r"m\.png: the mask has no hole"),
        ("full", r"m\.png: the mask covers the whole photo"),
        ("noalpha", r"p\.png: the photo has no alpha channel"),
        ("notimage", r"m\.png: not a readable image"),
    ],
)
def test_bad_masks_name_the_file(tmp_path, case, pattern):
    image = photo("astronaut", 40, 50)
    Image.fromarray(image).save(tmp_path / "p.png")
    mask = np.zeros((40, 50), np.uint8)
    mask[5:10, 5:10] = 255
    if case == "size":
        mask = mask[:, :49]
    elif case == "empty":
        mask[:] = 0
    elif case == "full":
        mask[:] = 255
    Image.fromarray(mask).save(tmp_path / "m.png")
    if case == "notimage":
        (tmp_path / "m.png").write_text("not an image")
    with pytest.raises((FillError, ImageError), match=pattern):
        load_pair(tmp_path / "p.png", None if case == "noalpha" else tmp_path / "m.png")


# ---- models and cards ------------------------------------------------------------------------


def test_model_settings_card_rules(tmp_path):
    model = tmp_path / "g.keras"
    with pytest.raises(FillError, match="g.keras: no model_card.json .* pass --hole-value"):
        resolve_model_settings(model, (None, 32, 32, 3), None)
    assert resolve_model_settings(model, (None, 32, 32, 3), 0.0) == (32, InputSpec(hole_value=0.0))
    (tmp_path / "model_card.json").write_text(json.dumps({"image_size": 64, "hole_value": 1.0}))
    assert resolve_model_settings(model, (None, 64, 64, 3), None) == (64, InputSpec(hole_value=1.0))
    assert resolve_model_settings(model, (None, 64, 64, 3), 1.0) == (64, InputSpec(hole_value=1.0))
    with pytest.raises(FillError, match="model_card.json: --hole-value 0.5 conflicts"):
        resolve_model_settings(model, (None, 64, 64, 3), 0.5)
    with pytest.raises(FillError, match="model_card.json: image_size 64"):
        resolve_model_settings(model, (None, 32, 32, 3), None)
    spec = InputSpec(prefill="telea", mask_channel=True, hole_value=1.0)
    (tmp_path / "model_card.json").write_text(json.dumps({"image_size": 64, "input": spec.as_card()}))
    assert resolve_model_settings(model, (None, 64, 64, 4), None) == (64, spec)
    with pytest.raises(FillError, match="model_card.json: image_size 64 and 4 input channels"):
        resolve_model_settings(model, (None, 64, 64, 3), None)
    (tmp_path / "model_card.json").write_text("{broken")
    with pytest.raises(FillError, match="model_card.json: cannot read the model card"):
        resolve_model_settings(model, (None, 64, 64, 3), None)
    for key, bad in (
        ("inpaint_radius", 0),
        ("inpaint_radius", "3"),
        ("prefill", "lama"),
        ("hole_value", 2.0),
        ("mask_channel", "yes"),
    ):
        (tmp_path / "model_card.json").write_text(json.dumps({"image_size": 64, "input": {**spec.as_card(), key: bad}}))
        with pytest.raises(FillError, match=rf"model_card\.json: input\.{key}: "):
            resolve_model_settings(model, (None, 64, 64, 4), None)


def test_a_refine_style_generator_sees_the_classical_prefill_and_the_mask():
    image = photo("astronaut", 97, 141)
    hole = box_hole(97, 141, 40, 60, 6, 9)
    spec = InputSpec(prefill="telea", mask_channel=True)
    recorder = Recorder(spec=spec)
    fill_with_generator(image, hole, recorder.generator)
    (batch,) = recorder.inputs
    (window,) = hole_windows(hole, SIZE)[1]
    crop = image[window.top : window.top + SIZE, window.left : window.left + SIZE] / 255.0
    crop_hole = hole[window.top : window.top + SIZE, window.left : window.left + SIZE]
    assert batch.shape == (1, SIZE, SIZE, 4)
    np.testing.assert_array_equal(batch[0][..., 3], crop_hole.astype(np.float32))
    expected = generator_input(crop.astype(np.float32), crop_hole.astype(np.float32), spec)
    np.testing.assert_allclose(batch[0], expected, atol=1e-6)
    assert np.abs(batch[0][..., :3][crop_hole] - 1.0).max() > 0.1  # a real fill, not the constant


def _weighed_model(folder: Path, fills=("biharmonic", "telea"), logits_layer=True) -> Path:
    """An untrained generator that weighs ``fills`` (start weights 0.75 / 0.25), saved with its card;
    without ``logits_layer``, a plain network with the same input instead."""
    import keras

    from image_completion.core.models import build_generator, start_logits

    channels = 3 * len(fills) + 1
    if logits_layer:
        logits = tuple(start_logits(fills, {fills[0]: 0.75, fills[1]: 0.25}).tolist())
        model = build_generator("unet_scaled", SIZE, 4, 8, in_channels=channels, upsampling="resize", fill_logits=logits)
    else:
        inputs = keras.Input((SIZE, SIZE, channels))
        model = keras.Model(inputs, keras.layers.Conv2D(3, 1, name="output")(inputs))
    model.save(folder / "generator.keras")
    spec = InputSpec(prefill=fills, mask_channel=True)
    (folder / "model_card.json").write_text(json.dumps({"image_size": SIZE, "input": spec.as_card()}))
    return folder / "generator.keras"


def test_a_weighed_fills_generator_mixes_full_resolution_fills(tmp_path):
    """A hole larger than the model's window: the untrained generator's weights (0.75 / 0.25 everywhere)
    mix the two methods' full-resolution fills, not enlarged low-resolution ones."""
    generator = load_generator(_weighed_model(tmp_path))
    assert generator.weigh is not None and generator.spec.fills == ("biharmonic", "telea")
    image = photo("astronaut", 120, 150)
    hole = box_hole(120, 150, 20, 30, 70, 80)  # its window is shrunk about 4 times
    out = fill_with_generator(image, hole, generator)
    filler = Filler()
    full = [filler.fill(image, hole, method).astype(np.float32) for method in ("biharmonic", "telea")]
    expected = np.round(0.75 * full[0] + 0.25 * full[1])
    assert np.abs(out[hole].astype(np.float32) - expected[hole]).max() <= 1.0
    np.testing.assert_array_equal(out[~hole], image[~hole])


def test_a_card_that_lists_fills_needs_the_weighing_layer(tmp_path):
    with pytest.raises(FillError, match=r"generator\.keras: .*fill_logits"):
        load_generator(_weighed_model(tmp_path, logits_layer=False))


def test_missing_and_corrupt_models(tmp_path):
    with pytest.raises(FillError, match=r"nothere\.keras: model file not found; run `dvc repro`"):
        load_generator(tmp_path / "nothere.keras")
    bad = tmp_path / "bad.keras"
    bad.write_bytes(b"garbage")
    with pytest.raises(FillError, match=r"bad\.keras: not a saved Keras model"):
        load_generator(bad, hole_value=1.0)
    with zipfile.ZipFile(bad, "w") as archive:  # a zip archive without a model inside
        archive.writestr("notes.txt", "hello")
    with pytest.raises(FillError, match=r"bad\.keras: cannot load the model"):
        load_generator(bad, hole_value=1.0)


# ---- folders ---------------------------------------------------------------------------------


def _folder(tmp_path, n=3):
    photos, masks = tmp_path / "photos", tmp_path / "masks"
    photos.mkdir()
    masks.mkdir()
    for i, (name, shape) in enumerate([("astronaut", (41, 57)), ("coffee", (30, 30)), ("chelsea", (50, 33))][:n]):
        Image.fromarray(photo(name, *shape)).save(photos / f"img{i}.png" if i != 1 else photos / f"img{i}.jpg")
        Image.fromarray(box_hole(*shape, 5, 6, 8, 9).astype(np.uint8) * 255).save(masks / f"img{i}.png")
    return photos, masks


def test_folder_plan_and_fill(tmp_path):
    photos, masks = _folder(tmp_path)
    (photos / ".DS_Store").write_bytes(b"junk")  # hidden files are ignored
    out = tmp_path / "out"
    plan = plan_folder(photos, masks, out)
    assert [p[2].name for p in plan] == ["img0.png", "img1.png", "img2.png"]
    written = fill_folder(plan, Filler(), "telea", progress=False)
    for (photo_path, mask_path, _out_path), path in zip(plan, written):
        image, hole = load_pair(photo_path, mask_path)
        result = np.asarray(Image.open(path))
        assert result.shape == image.shape and (result[~hole] == image[~hole]).all()


@pytest.mark.parametrize(
    "breakage, pattern",
    [
        ("missing_mask", r"img2\.png: no mask with the stem 'img2'"),
        ("extra_mask", r"zzz\.png: no photo with the stem 'zzz'"),
        ("bad_photo", r"img2\.png: not a readable image"),
        ("two_bad", r"img0\.png: .*\(and 1 more bad file; nothing was written\)"),
    ],
)
def test_folder_is_validated_before_anything_is_written(tmp_path, breakage, pattern):
    photos, masks = _folder(tmp_path)
    if breakage == "missing_mask":
        (masks / "img2.png").unlink()
    elif breakage == "extra_mask":
        Image.fromarray(np.zeros((4, 4), np.uint8)).save(masks / "zzz.png")
    elif breakage == "bad_photo":
        (photos / "img2.png").write_text("text")
    else:
        Image.fromarray(np.zeros((5, 5), np.uint8)).save(masks / "img0.png")  # wrong size
        Image.fromarray(np.zeros((50, 33), np.uint8)).save(masks / "img2.png")  # empty
    with pytest.raises((FillError, ImageError), match=pattern):
        plan_folder(photos, masks, tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_every_output_path_is_checked_before_any_photo_is_read(tmp_path, monkeypatch):
    photos, masks = _folder(tmp_path)
    out = tmp_path / "out"
    (out / "img1.png").mkdir(parents=True)
    (out / "img2.png").symlink_to(tmp_path / "nowhere")  # a dangling link is not a file to replace
    read = []
    monkeypatch.setattr("image_completion.app.files.load_pair", lambda *args: read.append(args))
    with pytest.raises(FillError, match=r"out/img1\.png: is a directory.*\(and 1 more bad file; nothing was written\)"):
        plan_folder(photos, masks, out)
    assert read == []
    (tmp_path / "file").write_text("x")
    with pytest.raises(FillError, match=r"file: .*output must be a folder"):
        plan_folder(photos, masks, tmp_path / "file")
    with pytest.raises(FillError, match=r"file/sub: cannot make the output folder: .*file is a file"):
        plan_folder(photos, masks, tmp_path / "file" / "sub")
    assert read == []


def test_single_output_must_be_free_for_a_file(tmp_path):
    os.mkfifo(tmp_path / "pipe.png")
    with pytest.raises(FillError, match=r"pipe\.png: exists and is not a regular file"):
        check_output_file(tmp_path / "pipe.png")
    (tmp_path / "dir.png").mkdir()
    with pytest.raises(FillError, match=r"dir\.png: is a directory"):
        check_output_file(tmp_path / "dir.png")
    (tmp_path / "old.png").write_bytes(b"replaceable")
    assert check_output_file(tmp_path / "old.png") == tmp_path / "old.png"


class FailingFiller(Filler):
    """Telea for the first ``ok`` photos, then a failure (like a generator running out of memory)."""

    def __init__(self, ok: int):
        super().__init__()
        self.ok = ok

    def fill(self, image, hole, method):
        if self.ok == 0:
            raise MemoryError("out of memory")
        self.ok -= 1
        return super().fill(image, hole, method)


def test_a_failure_mid_folder_writes_nothing_and_removes_the_folders_it_made(tmp_path):
    photos, masks = _folder(tmp_path)
    out = tmp_path / "new" / "out"
    plan = plan_folder(photos, masks, out)
    assert not (tmp_path / "new").exists()  # planning writes nothing
    with pytest.raises(MemoryError):
        fill_folder(plan, FailingFiller(ok=2), "telea", progress=False)
    assert not (tmp_path / "new").exists()
    existing = tmp_path / "existing"
    existing.mkdir()
    (existing / "img0.png").write_bytes(b"an older result")
    with pytest.raises(MemoryError):
        fill_folder(plan_folder(photos, masks, existing), FailingFiller(ok=2), "telea", progress=False)
    assert [p.name for p in existing.iterdir()] == ["img0.png"]  # no temp file left, the old file kept
    assert (existing / "img0.png").read_bytes() == b"an older result"
    written = fill_folder(plan, FailingFiller(ok=3), "telea", progress=False)
    assert written == [out / "img0.png", out / "img1.png", out / "img2.png"]
    assert sorted(p.name for p in out.iterdir()) == ["img0.png", "img1.png", "img2.png"]
