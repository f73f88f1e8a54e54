"""The local web page: its JSON API over HTTP, and the full round trip in headless Chromium."""

from __future__ import annotations

import base64
import io
import json
import urllib.error
import urllib.request

import numpy as np
import pytest
from PIL import Image
from skimage import data

from image_completion.fill import Filler, load_generator
from image_completion.web.browser import browser_available, running_server

SIZE = 32


def photo(name: str, height: int, width: int) -> np.ndarray:
    image = getattr(data, name)()
    return np.asarray(Image.fromarray(image).resize((width, height), Image.Resampling.BILINEAR))


def png_b64(array: np.ndarray) -> str:
    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, format="PNG")
    return base64.b64encode(buffer.getvalue()).decode()


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    """The page served with a tiny untrained generator (32 px, 4 base filters) and its card."""
    from image_completion.models import build_generator

    folder = tmp_path_factory.mktemp("model")
    build_generator("unet_scaled", SIZE, base_filters=4, decoder_filters=8).save(folder / "generator.keras")
    (folder / "model_card.json").write_text(json.dumps({"image_size": SIZE, "hole_value": 1.0}))
    filler = Filler(generator=load_generator(folder / "generator.keras"))
    with running_server(filler) as running:
        yield running


def request(server, path: str, body: bytes | None = None, headers: dict | None = None):
    """(status, content type, body bytes) of a GET (no body) or POST."""
    req = urllib.request.Request(server.url.rstrip("/") + path, data=body, headers=headers or {},
                                 method="POST" if body is not None else "GET")
    try:
        with urllib.request.urlopen(req, timeout=60) as response:
            return response.status, response.headers["Content-Type"], response.read()
    except urllib.error.HTTPError as err:
        return err.code, err.headers["Content-Type"], err.read()


def post_json(server, path: str, value) -> tuple[int, str, bytes]:
    return request(server, path, json.dumps(value).encode(), {"Content-Type": "application/json"})


# ---- the API ---------------------------------------------------------------------------------


def test_page_static_files_and_info(server):
    status, kind, body = request(server, "/")
    assert status == 200 and kind.startswith("text/html") and b'id="maskCanvas"' in body
    for name, kind_start in [("app.js", "text/javascript"), ("style.css", "text/css")]:
        status, kind, body = request(server, f"/static/{name}")
        assert status == 200 and kind.startswith(kind_start) and body
    # nothing outside the page is referenced: it works offline
    page = request(server, "/")[2] + request(server, "/static/app.js")[2] + request(server, "/static/style.css")[2]
    assert b"http://" not in page and b"https://" not in page
    status, _, body = request(server, "/api/info")
    assert status == 200
    assert json.loads(body) == {"methods": ["model", "telea", "ns", "biharmonic"], "image_size": SIZE,
                                "model": "generator.keras"}
    assert request(server, "/static/../fill.py")[0] == 404
    assert request(server, "/nothing")[0] == 404


def test_decode_applies_exif_and_returns_alpha_as_mask(server, tmp_path):
    image = photo("coffee", 30, 45)
    alpha = np.full((30, 45), 255, np.uint8)
    alpha[5:10, 6:20] = 0
    buffer = io.BytesIO()
    Image.fromarray(np.dstack([image, alpha])).save(buffer, format="PNG")
    status, _, body = request(server, "/api/decode", buffer.getvalue(), {"X-Filename": "cut%20out.png"})
    assert status == 200
    answer = json.loads(body)
    assert (answer["width"], answer["height"]) == (45, 30)
    decoded = np.asarray(Image.open(io.BytesIO(base64.b64decode(answer["image"]))))
    assert (decoded == image).all()
    mask = np.asarray(Image.open(io.BytesIO(base64.b64decode(answer["mask"]))))
    assert ((mask == 255) == (alpha == 0)).all()
    # EXIF orientation 6 (rotate 90 clockwise to display): the page paints on the upright photo
    exif = Image.Exif()
    exif[0x0112] = 6
    buffer = io.BytesIO()
    Image.fromarray(image).save(buffer, format="JPEG", exif=exif, quality=95)
    answer = json.loads(request(server, "/api/decode", buffer.getvalue(), {"X-Filename": "phone.jpg"})[2])
    assert (answer["width"], answer["height"], answer["mask"]) == (30, 45, None)


def test_decode_of_a_non_image_names_the_file(server):
    status, kind, body = request(server, "/api/decode", b"just text", {"X-Filename": "notes.txt"})
    assert status == 400 and kind == "application/json"
    error = json.loads(body)["error"]
    assert error.startswith("notes.txt: not a readable image") and "\n" not in error


def test_fill_round_trip_over_http(server):
    image = photo("astronaut", 53, 77)
    mask = np.zeros((53, 77), np.uint8)
    mask[10:30, 20:45] = 255
    status, kind, body = post_json(server, "/api/fill", {"image": png_b64(image), "mask": png_b64(mask), "method": "model"})
    assert status == 200 and kind == "image/png"
    result = np.asarray(Image.open(io.BytesIO(body)))
    hole = mask > 0
    assert result.shape == image.shape and (result[~hole] == image[~hole]).all()
    assert (result[hole] != image[hole]).any(axis=-1).mean() > 0.5


@pytest.mark.parametrize(
    "case, needle",
    [
        ("size", "painted mask: mask size 70x53 differs from the photo's 77x53"),
        ("empty", "painted mask: the mask has no hole"),
        ("full", "painted mask: the mask covers the whole photo"),
        ("method", "unknown method 'magic'"),
        ("base64", "mask: not valid base64"),
        ("notjson", "request body is not JSON"),
    ],
)
def test_fill_errors_are_400_with_one_line(server, case, needle):
    image = photo("astronaut", 53, 77)
    mask = np.zeros((53, 77), np.uint8)
    mask[5:9, 5:9] = 255
    payload = {"image": png_b64(image), "mask": png_b64(mask), "method": "model"}
    if case == "size":
        payload["mask"] = png_b64(mask[:, :70])
    elif case == "empty":
        payload["mask"] = png_b64(np.zeros_like(mask))
    elif case == "full":
        payload["mask"] = png_b64(np.full_like(mask, 255))
    elif case == "method":
        payload["method"] = "magic"
    elif case == "base64":
        payload["mask"] = "***"
    if case == "notjson":
        status, _, body = request(server, "/api/fill", b"{nope", {"Content-Type": "application/json"})
    else:
        status, _, body = post_json(server, "/api/fill", payload)
    assert status == 400
    error = json.loads(body)["error"]
    assert needle in error and "\n" not in error
    assert "/tmp" not in error  # the server's temp files are not shown to the user


# ---- the browser round trip ------------------------------------------------------------------

needs_browser = pytest.mark.skipif(not browser_available(), reason="chromium/chromedriver not installed")


@pytest.mark.browser
@needs_browser
def test_browser_upload_paint_undo_fill_download(server, tmp_path):
    pytest.importorskip("selenium", reason="selenium not installed (pip install selenium)")
    from image_completion.web.browser import (
        chromium, click, fill_and_fetch, paint, painted_pixels, set_brush, upload, wait_status)

    image = photo("chelsea", 113, 151)  # non-square, larger than the model's 32 px
    path = tmp_path / "cat.png"
    Image.fromarray(image).save(path)
    with chromium() as driver:
        upload(driver, server.url, path)
        assert painted_pixels(driver) == 0
        set_brush(driver, 30)
        paint(driver, [(0.1, 0.1), (0.2, 0.15)])
        assert painted_pixels(driver) > 0
        click(driver, "undo")  # the stroke is gone again
        assert painted_pixels(driver) == 0
        paint(driver, [(0.1, 0.1), (0.2, 0.15)])
        click(driver, "clear")
        assert painted_pixels(driver) == 0
        # the hole: one horizontal stroke across the middle of the photo
        paint(driver, [(0.3, 0.5), (0.5, 0.5), (0.7, 0.5)])
        result, hole = fill_and_fetch(driver, "model")
        driver.save_screenshot(str(tmp_path / "page.png"))
        assert result.shape == image.shape
        assert hole.shape == image.shape[:2]
        # the mask is where the stroke went: around the middle row, from 30 % to 70 % of the width
        rows, cols = np.nonzero(hole)
        assert 0.25 * 151 < cols.min() < 0.35 * 151 and 0.65 * 151 < cols.max() < 0.75 * 151
        assert abs(rows.mean() - 56) < 3 and hole[56, int(0.3 * 151) + 2 : int(0.7 * 151) - 2].all()
        assert (result[~hole] == image[~hole]).all()  # known pixels unchanged
        assert (result[hole] != image[hole]).any(axis=-1).mean() > 0.5  # the hole changed
        # a classical method from the same page
        result, hole2 = fill_and_fetch(driver, "telea")
        assert (hole2 == hole).all() and (result[~hole] == image[~hole]).all()
        # a bad upload shows the server's message
        (tmp_path / "notes.png").write_text("text")
        from selenium.webdriver.common.by import By

        driver.find_element(By.ID, "photo").send_keys(str(tmp_path / "notes.png"))
        assert wait_status(driver, "notes.png: not a readable image")


# ---- the `serve` command -----------------------------------------------------------------------


def test_serve_command_starts_the_page_and_missing_model_is_an_error(server, tmp_path):
    import re
    import subprocess
    import sys

    done = subprocess.run([sys.executable, "-m", "image_completion.cli", "serve", "--model", tmp_path / "no.keras"],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 1
    assert done.stderr.strip() == (f"image-completion: error: {tmp_path / 'no.keras'}: model file not found; "
                                   "run `dvc repro` in the repository to train the default generator "
                                   "(models/stage2/generator.keras), or pass --model PATH to a saved generator (.keras)")
    model = server.filler.generator.path
    process = subprocess.Popen([sys.executable, "-m", "image_completion.cli", "serve", "--model", model, "--port", "0"],
                               stderr=subprocess.PIPE, text=True)
    try:
        line = process.stderr.readline()  # the first line says where it serves
        match = re.fullmatch(r"image-completion: serving on (http://127\.0\.0\.1:\d+/) \(Ctrl-C to stop\)\n", line)
        assert match, line
        with urllib.request.urlopen(match.group(1) + "api/info", timeout=30) as response:
            assert json.loads(response.read())["methods"][0] == "model"
    finally:
        process.terminate()
        process.wait(timeout=30)
        process.stderr.close()
