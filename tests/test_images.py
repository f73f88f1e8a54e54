"""images.py: every pixel format becomes 8-bit RGB, EXIF orientation, corrupt files are refused
with errors naming the file, atomic writers (one file, a batch, a folder), stale temp folders."""

import concurrent.futures
import os
import stat
import subprocess
import warnings

import numpy as np
import pytest
from PIL import Image, ImageFile

from conftest import png_with_bad_crc, tiff_with_overrunning_tag, truncated_jpeg
from image_completion.images import (
    ImageError,
    PngBatch,
    downscale_max_side,
    load_image_and_alpha,
    load_rgb,
    make_temp_dir,
    remove_stale_temp_dirs,
    replace_dir,
    save_png_atomic,
    sha256_file,
    write_text_atomic,
)


def _gradient(h=12, w=20):
    y, x = np.mgrid[0:h, 0:w]
    return np.stack([x * 10, y * 20, (x + y) * 5], axis=-1).astype(np.uint8)


def test_rgb_png_round_trip(tmp_path):
    rgb = _gradient()
    Image.fromarray(rgb).save(tmp_path / "a.png")
    out = load_rgb(tmp_path / "a.png")
    assert out.dtype == np.uint8 and out.shape == (12, 20, 3)
    np.testing.assert_array_equal(out, rgb)


def test_greyscale_becomes_three_equal_channels(tmp_path):
    grey = _gradient()[:, :, 0]
    Image.fromarray(grey, mode="L").save(tmp_path / "g.png")
    out = load_rgb(tmp_path / "g.png")
    assert out.shape == (12, 20, 3) and out.dtype == np.uint8
    for c in range(3):
        np.testing.assert_array_equal(out[:, :, c], grey)


def test_rgba_keeps_colour_and_returns_alpha(tmp_path):
    rgba = np.dstack([_gradient(), np.full((12, 20), 77, np.uint8)])
    Image.fromarray(rgba, mode="RGBA").save(tmp_path / "a.png")
    rgb, alpha = load_image_and_alpha(tmp_path / "a.png")
    np.testing.assert_array_equal(rgb, rgba[:, :, :3])
    assert alpha.shape == (12, 20) and alpha.dtype == np.uint8 and (alpha == 77).all()
    np.testing.assert_array_equal(load_rgb(tmp_path / "a.png"), rgba[:, :, :3])


def test_no_alpha_gives_none(tmp_path):
    Image.fromarray(_gradient()).save(tmp_path / "a.png")
    _, alpha = load_image_and_alpha(tmp_path / "a.png")
    assert alpha is None


def test_greyscale_with_alpha(tmp_path):
    la = Image.merge("LA", [Image.new("L", (4, 3), 200), Image.new("L", (4, 3), 10)])
    la.save(tmp_path / "la.png")
    rgb, alpha = load_image_and_alpha(tmp_path / "la.png")
    assert (rgb == 200).all() and rgb.shape == (3, 4, 3) and (alpha == 10).all()


def test_palette_image(tmp_path):
    im = Image.new("P", (5, 4))
    im.putpalette([255, 0, 0, 0, 255, 0] + [0] * (256 * 3 - 6))
    im.putpixel((1, 1), 1)
    im.save(tmp_path / "p.png")
    out = load_rgb(tmp_path / "p.png")
    assert out.shape == (4, 5, 3)
    assert tuple(out[0, 0]) == (255, 0, 0) and tuple(out[1, 1]) == (0, 255, 0)


def test_palette_with_transparency_has_alpha(tmp_path):
    im = Image.new("P", (5, 4))
    im.putpalette([255, 0, 0, 0, 255, 0] + [0] * (256 * 3 - 6))
    im.putpixel((2, 3), 1)
    im.save(tmp_path / "pt.png", transparency=1)
    rgb, alpha = load_image_and_alpha(tmp_path / "pt.png")
    assert alpha is not None and alpha[3, 2] == 0 and alpha[0, 0] == 255
    assert tuple(rgb[0, 0]) == (255, 0, 0)


def test_16bit_greyscale_is_scaled_not_clipped(tmp_path):
    values = np.array([[0, 257 * 100, 65535, 257 * 3]], dtype=np.uint16)
    Image.fromarray(values).save(tmp_path / "w.png")  # a 16-bit greyscale PNG
    assert Image.open(tmp_path / "w.png").mode.startswith("I")
    out = load_rgb(tmp_path / "w.png")
    assert out.dtype == np.uint8
    np.testing.assert_array_equal(out[0, :, 0], [0, 100, 255, 3])
    np.testing.assert_array_equal(out[:, :, 0], out[:, :, 2])


def test_cmyk_jpeg(tmp_path):
    Image.new("CMYK", (8, 6), (0, 255, 255, 0)).save(tmp_path / "c.jpg", quality=95)  # pure red in CMYK
    out = load_rgb(tmp_path / "c.jpg")
    assert out.shape == (6, 8, 3) and out.dtype == np.uint8
    r, g, b = out.reshape(-1, 3).mean(axis=0)
    assert r > 200 and g < 60 and b < 60


def test_exif_orientation_is_applied(tmp_path):
    # A 2-row x 3-column image with one marked pixel at the top-left corner; EXIF orientation 6
    # (rotate 90 degrees clockwise to display) must give a 3 x 2 image with the mark top-right.
    pixels = np.zeros((2, 3, 3), np.uint8)
    pixels[0, 0] = (255, 255, 255)
    im = Image.fromarray(pixels)
    exif = Image.Exif()
    exif[0x0112] = 6
    im.save(tmp_path / "o.png", exif=exif)
    out = load_rgb(tmp_path / "o.png")
    assert out.shape == (3, 2, 3)
    assert tuple(out[0, 1]) == (255, 255, 255)
    assert out.sum() == 255 * 3


def test_float_image_is_a_clear_error(tmp_path):
    Image.fromarray(np.ones((3, 3), np.float32)).save(tmp_path / "f.tif")
    with pytest.raises(ImageError, match=r"f\.tif: floating-point"):
        load_rgb(tmp_path / "f.tif")


@pytest.mark.parametrize("content", [b"not an image at all", b""])
def test_garbage_file_error_starts_with_path(tmp_path, content):
    path = tmp_path / "bad.jpg"
    path.write_bytes(content)
    with pytest.raises(ImageError) as info:
        load_rgb(path)
    assert str(info.value).startswith(str(path))


def test_truncated_png_is_an_error(tmp_path):
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (64, 64, 3), dtype=np.uint8)).save(tmp_path / "t.png")
    data = (tmp_path / "t.png").read_bytes()
    (tmp_path / "t.png").write_bytes(data[: len(data) // 2])
    with pytest.raises(ImageError, match=r"t\.png"):
        load_rgb(tmp_path / "t.png")


def test_png_failing_its_crc_is_an_error(tmp_path):
    png_with_bad_crc(tmp_path / "c.png", _gradient())
    with pytest.raises(ImageError, match=r"c\.png: cannot decode image: .*IDAT"):
        load_rgb(tmp_path / "c.png")


def test_truncated_jpeg_is_an_error_even_if_pillow_was_told_to_accept_it(tmp_path, monkeypatch):
    truncated_jpeg(tmp_path / "t.jpg", _gradient(64, 64))
    monkeypatch.setattr(ImageFile, "LOAD_TRUNCATED_IMAGES", True)  # e.g. set by another library
    with pytest.raises(ImageError, match=r"t\.jpg: cannot decode image: image file is truncated"):
        load_rgb(tmp_path / "t.jpg")


def test_a_pillow_warning_while_decoding_is_an_error(tmp_path):
    tiff_with_overrunning_tag(tmp_path / "w.tif", _gradient())
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # even where warnings are silenced
        with pytest.raises(ImageError, match=r"w\.tif: cannot decode image: Tag data larger than file"):
            load_rgb(tmp_path / "w.tif")


def test_decoding_in_threads_keeps_warnings_strict_and_restores_the_filters(tmp_path):
    """The download stage decodes in threads: every thread must see the strict filters, and the
    process's own filters must be back once the last decode ends."""
    Image.fromarray(_gradient()).save(tmp_path / "good.png")
    tiff_with_overrunning_tag(tmp_path / "w.tif", _gradient())
    before = list(warnings.filters)
    paths = [tmp_path / ("w.tif" if i % 2 else "good.png") for i in range(200)]

    def outcome(path):
        try:
            return load_rgb(path).shape
        except ImageError:
            return "error"

    with concurrent.futures.ThreadPoolExecutor(max_workers=8) as pool:
        results = list(pool.map(outcome, paths))
    assert results == ["error" if i % 2 else (12, 20, 3) for i in range(200)]
    assert warnings.filters == before


def test_missing_file(tmp_path):
    with pytest.raises(ImageError, match="file not found"):
        load_rgb(tmp_path / "nope.png")


def test_downscale_only_when_larger():
    image = np.zeros((100, 40, 3), np.uint8)
    assert downscale_max_side(image, 100) is image
    small = downscale_max_side(image, 50)
    assert small.shape == (50, 20, 3) and small.dtype == np.uint8


def test_save_png_atomic_round_trip_and_permissions(tmp_path):
    rgb = _gradient()
    path = tmp_path / "sub" / "x.png"
    save_png_atomic(path, rgb)
    np.testing.assert_array_equal(load_rgb(path), rgb)
    assert sorted(p.name for p in path.parent.iterdir()) == ["x.png"]  # no temp file left
    mode = stat.S_IMODE(os.stat(path).st_mode)
    mask = os.umask(0)
    os.umask(mask)
    assert mode == 0o666 & ~mask  # like a plain open(), not mkstemp's 0600
    save_png_atomic(path, rgb[:, :, 0])  # overwrite with greyscale
    assert Image.open(path).mode == "L"


def test_sha256_file(tmp_path):
    (tmp_path / "a").write_bytes(b"abc")
    assert sha256_file(tmp_path / "a") == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"


def _umask():
    mask = os.umask(0)
    os.umask(mask)
    return mask


def test_write_text_atomic_writes_utf8_with_plain_permissions(tmp_path):
    path = tmp_path / "sub" / "r.md"
    write_text_atomic(path, "a\r\nb \u00e9\n")
    assert path.read_bytes() == "a\r\nb \u00e9\n".encode()  # line endings kept as given
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o666 & ~_umask()
    write_text_atomic(path, "new\n")
    assert path.read_text() == "new\n"
    assert [p.name for p in path.parent.iterdir()] == ["r.md"]  # no temp file left


def test_write_text_atomic_failure_keeps_the_old_file(tmp_path):
    path = tmp_path / "r.md"
    write_text_atomic(path, "old\n")
    with pytest.raises(UnicodeEncodeError):
        write_text_atomic(path, "bad \ud800")  # a lone surrogate cannot be encoded
    assert path.read_text() == "old\n"
    assert [p.name for p in tmp_path.iterdir()] == ["r.md"]


def test_replace_dir_swaps_folders_and_restores_on_failure(tmp_path, monkeypatch):
    out = tmp_path / "out"
    out.mkdir()
    (out / "old.txt").write_text("old")
    new = tmp_path / ".out.new"
    new.mkdir(mode=0o700)
    (new / "new.txt").write_text("new")
    replace_dir(new, out)
    assert [p.name for p in out.iterdir()] == ["new.txt"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]  # old folder and temp gone
    assert stat.S_IMODE(os.stat(out).st_mode) == 0o777 & ~_umask()
    # A failing final rename puts the previous folder back.
    other = tmp_path / ".out.other"
    other.mkdir()
    real_rename = os.rename

    def rename(src, dst):
        if str(src) == str(other):
            raise OSError("disk gone")
        return real_rename(src, dst)

    monkeypatch.setattr(os, "rename", rename)
    with pytest.raises(OSError, match="disk gone"):
        replace_dir(other, out)
    assert [p.name for p in out.iterdir()] == ["new.txt"]


def test_png_batch_writes_all_outputs_at_commit(tmp_path):
    (tmp_path / "b.png").write_bytes(b"older")
    with PngBatch() as batch:
        batch.add(tmp_path / "a.png", _gradient())
        batch.add(tmp_path / "b.png", _gradient()[:, :, 0])
        assert not (tmp_path / "a.png").exists() and (tmp_path / "b.png").read_bytes() == b"older"
        assert batch.commit() == [tmp_path / "a.png", tmp_path / "b.png"]
    np.testing.assert_array_equal(load_rgb(tmp_path / "a.png"), _gradient())
    assert Image.open(tmp_path / "b.png").mode == "L"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.png", "b.png"]
    assert stat.S_IMODE(os.stat(tmp_path / "a.png").st_mode) == 0o666 & ~_umask()


def test_png_batch_without_commit_writes_nothing(tmp_path):
    with pytest.raises(RuntimeError, match="the third fill failed"):
        with PngBatch() as batch:
            batch.add(tmp_path / "a.png", _gradient())
            batch.add(tmp_path / "b.png", _gradient())
            raise RuntimeError("the third fill failed")
    assert list(tmp_path.iterdir()) == []


def test_png_batch_failing_rename_undoes_the_others(tmp_path, monkeypatch):
    (tmp_path / "a.png").write_bytes(b"older a")
    real_replace = os.replace

    def replace(src, dst):
        if str(dst).endswith("c.png"):
            raise OSError("disk gone")
        return real_replace(src, dst)

    with PngBatch() as batch:
        for name in ("a.png", "b.png", "c.png"):
            batch.add(tmp_path / name, _gradient())
        monkeypatch.setattr(os, "replace", replace)
        with pytest.raises(OSError, match="disk gone"):
            batch.commit()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.png"]  # no b.png, no temp or backup file
    assert (tmp_path / "a.png").read_bytes() == b"older a"  # put back


def test_remove_stale_temp_dirs_removes_only_a_dead_runs_own_folders(tmp_path):
    out = tmp_path / "photos"
    dead = subprocess.Popen(["true"])
    dead.wait()
    stale = [
        tmp_path / f".photos.work-{dead.pid}-abc_1234",
        tmp_path / f".photos.old-{dead.pid}-zzzzzzzz",
        tmp_path / ".photos.new-k2j4h5g6",
    ]  # the last one: named by an earlier version, without a pid
    kept = [
        tmp_path / f".photos.work-{os.getpid()}-abcdefgh",  # a live process's
        tmp_path / f".other.work-{dead.pid}-abcdefgh",  # another output's
        tmp_path / f".photos.work-{dead.pid}-abc",  # not a temp folder name
        tmp_path / "photos",
    ]
    for folder in stale + kept:
        folder.mkdir()
        (folder / "x").write_text("x")
    (tmp_path / f".photos.new-{dead.pid}-aaaaaaaa").write_text("a file, not a folder")
    (tmp_path / f".photos.new-{dead.pid}-bbbbbbbb").symlink_to(tmp_path / "photos")
    assert sorted(remove_stale_temp_dirs(out)) == sorted(stale)
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(
        [p.name for p in kept] + [f".photos.new-{dead.pid}-aaaaaaaa", f".photos.new-{dead.pid}-bbbbbbbb"]
    )
    assert (tmp_path / "photos" / "x").is_file()
    made = make_temp_dir(out, "work")
    assert made.parent == tmp_path and made.name.startswith(f".photos.work-{os.getpid()}-")
    assert remove_stale_temp_dirs(out) == [] and made.is_dir()  # this process is alive


def test_remove_stale_temp_dirs_puts_back_an_output_a_killed_replace_dir_moved_aside(tmp_path):
    dead = subprocess.Popen(["true"])
    dead.wait()
    aside = tmp_path / f".photos.old-{dead.pid}-abcdefgh" / "old"  # killed between its two renames
    aside.mkdir(parents=True)
    (aside / "manifest.csv").write_text("previous")
    (tmp_path / f".photos.new-{dead.pid}-abcdefgh").mkdir()
    assert len(remove_stale_temp_dirs(tmp_path / "photos")) == 2
    assert sorted(p.name for p in tmp_path.iterdir()) == ["photos"]
    assert (tmp_path / "photos" / "manifest.csv").read_text() == "previous"
