"""images.py: every pixel format becomes 8-bit RGB, EXIF orientation, errors name the file."""

import os
import stat

import numpy as np
import pytest
from PIL import Image

from image_completion.images import (
    ImageError,
    downscale_max_side,
    load_image_and_alpha,
    load_rgb,
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


def test_missing_file(tmp_path):
    with pytest.raises(ImageError, match="file not found"):
        load_rgb(tmp_path / "nope.png")


def test_downscale_only_when_larger():
    image = np.zeros((100, 40, 3), np.uint8)
    assert downscale_max_side(image, 100) is image
    small = downscale_max_side(image, 50)
    assert small.shape == (50, 20, 3) and small.dtype == np.uint8
    with pytest.raises(ValueError):
        downscale_max_side(image, 0)


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


def test_save_png_atomic_rejects_bad_arrays_and_keeps_old_file(tmp_path):
    path = tmp_path / "x.png"
    save_png_atomic(path, _gradient())
    before = path.read_bytes()
    with pytest.raises(ImageError, match=r"x\.png: expected a uint8"):
        save_png_atomic(path, np.zeros((4, 4, 3), np.float32))
    with pytest.raises(ImageError, match="expected shape"):
        save_png_atomic(path, np.zeros((4, 4, 2), np.uint8))
    assert path.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["x.png"]


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
