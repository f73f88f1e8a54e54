"""Driving the page in a real headless Chromium (tests, and the README screenshot docs/web_page.png).

Uses Debian's ``chromium`` + ``chromium-driver`` through selenium with explicit paths, so
selenium-manager never downloads anything; Chromium runs with networking extras off and a
fresh profile. ``python tests/browser.py --photo P --out docs/web_page.png``
serves the page with the default model, paints a stroke, fills and saves a screenshot.
"""

from __future__ import annotations

import argparse
import base64
import io
import shutil
import tempfile
import threading
from contextlib import contextmanager
from pathlib import Path

import numpy as np
from PIL import Image

CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
CHROMIUM_FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
    "--window-size=1400,900",
)


def browser_available() -> bool:
    return CHROMIUM.exists() and CHROMEDRIVER.exists()


@contextmanager
def chromium():
    """A selenium Chrome driver on Debian's chromium, in a new empty profile."""
    from selenium import webdriver  # noqa: PLC0415 - selenium loads only where a browser test runs
    from selenium.webdriver.chrome.service import Service  # noqa: PLC0415 - selenium loads only where a browser test runs

    profile = tempfile.mkdtemp(prefix="chromium-profile-")
    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for flag in CHROMIUM_FLAGS:
        options.add_argument(flag)
    options.add_argument(f"--user-data-dir={profile}")
    driver = webdriver.Chrome(service=Service(str(CHROMEDRIVER)), options=options)
    try:
        yield driver
    finally:
        driver.quit()
        shutil.rmtree(profile, ignore_errors=True)


@contextmanager
def running_server(filler, limits=None, allow_hosts=()):
    """The page served on a free port of 127.0.0.1 in a background thread; yields the server.

    ``limits``: a ``server.Limits`` (default: the ones ``image-completion serve`` uses).
    """
    from image_completion.app.web.server import make_server  # noqa: PLC0415 - selenium loads only where a browser test runs

    server = make_server(filler, "127.0.0.1", 0, quiet=True, limits=limits, allow_hosts=allow_hosts)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)


def wait_status(driver, text: str, timeout: float = 60.0) -> str:
    """Waits until the page's status line contains ``text``; fails with the status shown."""
    from selenium.common.exceptions import TimeoutException  # noqa: PLC0415 - selenium loads only where a browser test runs
    from selenium.webdriver.common.by import By  # noqa: PLC0415 - selenium loads only where a browser test runs
    from selenium.webdriver.support.ui import WebDriverWait  # noqa: PLC0415 - selenium loads only where a browser test runs

    try:
        WebDriverWait(driver, timeout).until(lambda d: text in d.find_element(By.ID, "status").text)
    except TimeoutException:
        raise AssertionError(f"page status never showed {text!r}: {driver.find_element(By.ID, 'status').text!r}") from None
    return driver.find_element(By.ID, "status").text


def upload(driver, url: str, photo_path: Path) -> None:
    from selenium.webdriver.common.by import By  # noqa: PLC0415 - selenium loads only where a browser test runs

    driver.get(url)
    wait_status(driver, "Choose a photo")
    driver.find_element(By.ID, "photo").send_keys(str(Path(photo_path).resolve()))
    wait_status(driver, "Paint the hole")


def set_brush(driver, size: int) -> None:
    driver.execute_script(
        "const b = document.getElementById('brush'); b.value = arguments[0];b.dispatchEvent(new Event('input'));", size
    )


def paint(driver, points: list[tuple[float, float]]) -> None:
    """Drags the mouse through ``points`` given as fractions (x, y) of the displayed photo."""
    from selenium.webdriver.common.action_chains import ActionChains  # noqa: PLC0415 - selenium loads only where a browser test runs
    from selenium.webdriver.common.by import By  # noqa: PLC0415 - selenium loads only where a browser test runs

    canvas = driver.find_element(By.ID, "maskCanvas")
    width, height = canvas.size["width"], canvas.size["height"]
    # selenium 4 offsets are from the element's centre
    offsets = [(round((fx - 0.5) * width), round((fy - 0.5) * height)) for fx, fy in points]
    actions = ActionChains(driver).move_to_element_with_offset(canvas, *offsets[0]).click_and_hold()
    for (x0, y0), (x1, y1) in zip(offsets, offsets[1:]):
        actions = actions.move_by_offset(x1 - x0, y1 - y0)
    actions.release().perform()


def painted_pixels(driver) -> int:
    """Mask-canvas pixels painted (alpha >= 128) right now."""
    return driver.execute_script(
        "const c = document.getElementById('maskCanvas');"
        "const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;"
        "let n = 0; for (let i = 3; i < d.length; i += 4) if (d[i] >= 128) n++; return n;"
    )


def click(driver, element_id: str) -> None:
    from selenium.webdriver.common.by import By  # noqa: PLC0415 - selenium loads only where a browser test runs

    driver.find_element(By.ID, element_id).click()


def fill_and_fetch(driver, method: str | None = None, timeout: float = 120.0) -> tuple[np.ndarray, np.ndarray]:
    """Presses Fill; returns (the downloaded result uint8 (H, W, 3), the mask sent: bool (H, W))."""
    from selenium.webdriver.common.by import By  # noqa: PLC0415 - selenium loads only where a browser test runs
    from selenium.webdriver.support.ui import Select  # noqa: PLC0415 - selenium loads only where a browser test runs

    if method is not None:
        Select(driver.find_element(By.ID, "method")).select_by_value(method)
    click(driver, "fill")
    wait_status(driver, "Done", timeout)
    link = driver.find_element(By.ID, "download")
    assert link.is_displayed() and link.get_attribute("download").endswith("-filled.png")
    # The Download link's blob, read back through the page (what the user's browser would save).
    result_b64 = driver.execute_async_script(
        "const done = arguments[arguments.length - 1];"
        "fetch(document.getElementById('download').href).then(r => r.blob()).then(b => {"
        "  const f = new FileReader(); f.onload = () => done(f.result.split(',')[1]); f.readAsDataURL(b); });"
    )
    mask_b64 = driver.execute_script("return window.lastMaskPng;")
    result = np.asarray(Image.open(io.BytesIO(base64.b64decode(result_b64))).convert("RGB"))
    mask = np.asarray(Image.open(io.BytesIO(base64.b64decode(mask_b64))).convert("L")) >= 128
    return result, mask


def main(argv: list[str] | None = None) -> int:
    from image_completion.app.fill import PARAMS_FILE, Filler, default_model, load_generator  # noqa: PLC0415 - selenium loads only where a browser test runs

    parser = argparse.ArgumentParser(description="Screenshot of the fill page after a fill (README, 'Fill your own photo').")
    parser.add_argument("--photo", type=Path, required=True)
    parser.add_argument("--out", type=Path, required=True, help="screenshot PNG")
    parser.add_argument("--model", type=Path, default=None)
    parser.add_argument("--method", default="model")
    args = parser.parse_args(argv)
    filler = Filler(generator=load_generator(args.model or default_model(PARAMS_FILE)))
    with running_server(filler) as server, chromium() as driver:
        upload(driver, server.url, args.photo)
        set_brush(driver, 22)
        paint(driver, [(0.30, 0.35), (0.42, 0.38), (0.55, 0.36)])
        paint(driver, [(0.65, 0.70), (0.70, 0.62)])
        fill_and_fetch(driver, args.method)
        args.out.parent.mkdir(parents=True, exist_ok=True)
        driver.save_screenshot(str(args.out))
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
