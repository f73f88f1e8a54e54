"""The local web page: upload a photo, paint the hole, fill, compare, download.

A WSGI application (one HTML page with a ``<canvas>`` brush in ``static/``, and a JSON API:
/api/info, /api/decode, /api/fill) served by waitress (``transport.py``) within the rules of
``guard.py``. Every error is an answer ``{"error": "<one line>"}``. The API, the rules and the
reasons: docs/architecture.md, section "The local web page".
"""

from __future__ import annotations

import base64
import binascii
import dataclasses
import io
import json
import os
import re
import signal
import sys
import tempfile
import time
import traceback
import urllib.parse
from http import HTTPStatus
from importlib import resources
from pathlib import Path

import numpy as np
from PIL import Image

from image_completion.app.files import FillError, load_pair
from image_completion.app.fill import Filler
from image_completion.app.web.guard import (
    SECURITY_HEADERS,
    Gate,
    RequestError,
    allowed_hosts,
    check_content_type,
    check_declared_pixels,
    check_host,
    check_same_origin,
    content_length,
    default_max_pixels,
    parse_json,
)
from image_completion.app.web.transport import Server, Transport
from image_completion.images import ImageError, load_image_and_alpha

STATIC_FILES = {"index.html": "text/html", "app.js": "text/javascript", "style.css": "text/css"}
PHOTO_TYPES = ("application/octet-stream", "image/*")
SPARE_THREADS = 3  # beyond the heavy requests: the page, /api/info and quick 503 answers stay fast


@dataclasses.dataclass(frozen=True)
class Limits:
    """How much one server does at once; ``transport`` holds the connection limits and timeouts."""

    max_pixels: int = dataclasses.field(default_factory=default_max_pixels)
    fills_at_once: int = 1  # the model is shared and the machine is small
    waiting: int = 4  # heavy requests (decode, fill) that may wait for a slot; more get 503
    wait_s: float = 30.0  # how long one waits before it gets 503
    transport: Transport = Transport()


# ---- the work ----------------------------------------------------------------------------------


def _png_bytes(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(array)).save(buffer, format="PNG")
    return buffer.getvalue()


def _b64decode(value, what: str) -> bytes:
    if not isinstance(value, str) or not value:
        raise RequestError(400, f"{what}: missing (a base64 PNG string)")
    if value.startswith("data:"):
        value = value.split(",", 1)[-1]
    try:
        return base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        raise RequestError(400, f"{what}: not valid base64") from None


def _safe_suffix(name: str) -> str:
    suffix = Path(name).suffix.lower()
    return suffix if re.fullmatch(r"\.[a-z0-9]{1,8}", suffix) else ""


def _shown_name(header: str | None) -> str:
    """The X-Filename header as a file name fit for a one-line message."""
    name = urllib.parse.unquote(header or "upload")
    name = "".join(ch for ch in name if ch.isprintable()).strip()
    return name[:120] or "upload"


def _rename(message: str, tmp_path: Path, name: str) -> str:
    """Error messages name the temp file; show the user's file name instead."""
    return " ".join(message.replace(str(tmp_path), name).split())


def decode_upload(data: bytes, filename: str, max_pixels: int) -> dict:
    """The photo as the page paints on it: base64 PNG of its 8-bit RGB, and its alpha as a mask."""
    check_declared_pixels(data, filename, max_pixels)
    with tempfile.TemporaryDirectory(prefix="image-completion-") as tmp:
        path = Path(tmp) / f"upload{_safe_suffix(filename)}"
        path.write_bytes(data)
        try:
            image, alpha = load_image_and_alpha(path)
        except ImageError as err:
            raise RequestError(400, _rename(str(err), path, filename)) from None
        except Exception as err:  # noqa: BLE001 - Pillow on a crafted file: still a bad upload
            raise RequestError(400, f"{filename}: cannot decode image ({type(err).__name__})") from None
    mask = None
    if alpha is not None and (alpha < 128).any():
        mask = base64.b64encode(_png_bytes(np.where(alpha < 128, 255, 0).astype(np.uint8))).decode()
    return {
        "width": int(image.shape[1]),
        "height": int(image.shape[0]),
        "image": base64.b64encode(_png_bytes(image)).decode(),
        "mask": mask,
    }


def _load_photo_and_mask(photo_bytes: bytes, mask_bytes: bytes) -> tuple[np.ndarray, np.ndarray]:
    with tempfile.TemporaryDirectory(prefix="image-completion-") as tmp:
        photo, mask = Path(tmp) / "photo.png", Path(tmp) / "mask.png"
        photo.write_bytes(photo_bytes)
        mask.write_bytes(mask_bytes)
        try:
            return load_pair(photo, mask)
        except (ImageError, FillError) as err:
            raise RequestError(400, _rename(_rename(str(err), photo, "photo"), mask, "painted mask")) from None
        except Exception as err:  # noqa: BLE001 - Pillow on a crafted file: still a bad upload
            raise RequestError(400, f"photo or painted mask: cannot decode image ({type(err).__name__})") from None


def fill_upload(payload, filler: Filler, max_pixels: int) -> bytes:
    """Fills the page's photo where its painted mask is white; returns the PNG bytes."""
    if not isinstance(payload, dict):
        raise RequestError(400, "request body must be a JSON object")
    method = payload.get("method", "model")
    if not isinstance(method, str) or method not in filler.methods():
        raise RequestError(400, f"unknown method {str(method)[:40]!r}; allowed: {filler.methods()}")
    photo_bytes = _b64decode(payload.get("image"), "photo")
    mask_bytes = _b64decode(payload.get("mask"), "mask")
    check_declared_pixels(photo_bytes, "photo", max_pixels)
    check_declared_pixels(mask_bytes, "painted mask", max_pixels)
    image, hole = _load_photo_and_mask(photo_bytes, mask_bytes)
    return _png_bytes(filler.fill(image, hole, method))


# ---- the HTTP application ----------------------------------------------------------------------


class App:
    """The WSGI application: routes, the rules of ``guard.py`` and one line of log per request."""

    def __init__(self, filler: Filler, limits: Limits, hosts: frozenset[str], quiet: bool = False):
        self.filler = filler
        self.limits = limits
        self.hosts = hosts
        self.quiet = quiet
        self.gate = Gate(limits.fills_at_once, limits.waiting, limits.wait_s)
        self.routes = {
            "/": ("GET", self._page),
            "/index.html": ("GET", self._page),
            "/api/info": ("GET", self._info),
            "/api/decode": ("POST", self._decode),
            "/api/fill": ("POST", self._fill),
        }
        self.routes.update({f"/static/{name}": ("GET", self._page) for name in STATIC_FILES})

    def __call__(self, environ, start_response):
        started = time.monotonic()
        try:
            status, headers, body = self._answer(environ)
        except RequestError as err:
            status, headers, body = err.status, [*err.headers, ("Content-Type", "application/json")], _error(err)
        except Exception as err:  # noqa: BLE001 - a bug or a model failure: answer, log, keep serving
            traceback.print_exc()
            status, headers = 500, [("Content-Type", "application/json")]
            body = _error(f"internal error ({type(err).__name__}); the server's log has the details")
        headers = [*headers, ("Content-Length", str(len(body))), *SECURITY_HEADERS]
        start_response(f"{status} {HTTPStatus(status).phrase}", headers)
        self._log(environ, status, started)
        return [b""] if environ["REQUEST_METHOD"] == "HEAD" else [body]  # HEAD: GET's headers, no body

    def _answer(self, environ) -> tuple[int, list, bytes]:
        check_host(environ, self.hosts)
        path = environ.get("PATH_INFO", "")
        method, handler = self.routes.get(path, (None, None))
        if handler is None:
            raise RequestError(404, f"{path[:100]}: not found")
        if environ["REQUEST_METHOD"] != method and (method, environ["REQUEST_METHOD"]) != ("GET", "HEAD"):
            allowed = "GET, HEAD" if method == "GET" else method
            raise RequestError(405, f"{path}: use {allowed}", (("Allow", allowed),))
        if method == "POST":
            check_same_origin(environ)
        return handler(environ, path)

    def _page(self, environ, path: str):
        name = "index.html" if path in ("/", "/index.html") else path.removeprefix("/static/")
        body = resources.files("image_completion.app.web").joinpath("static", name).read_bytes()
        return 200, [("Content-Type", STATIC_FILES[name] + "; charset=utf-8")], body

    def _info(self, environ, path: str):
        generator = self.filler.generator
        return _json(
            200,
            {
                "methods": self.filler.methods(),
                "image_size": generator.image_size if generator else None,
                "model": generator.path.name if generator else None,
            },
        )

    def _decode(self, environ, path: str):
        check_content_type(environ, PHOTO_TYPES)
        length = content_length(environ, self.limits.transport.max_body)
        filename = _shown_name(environ.get("HTTP_X_FILENAME"))
        read = environ["wsgi.input"].read
        work = lambda: json.dumps(decode_upload(read(length), filename, self.limits.max_pixels)).encode()  # noqa: E731
        return 200, [("Content-Type", "application/json")], self.gate.run(work)

    def _fill(self, environ, path: str):
        check_content_type(environ, ("application/json",))
        length = content_length(environ, self.limits.transport.max_body)
        read = environ["wsgi.input"].read
        work = lambda: fill_upload(parse_json(read(length)), self.filler, self.limits.max_pixels)  # noqa: E731
        return 200, [("Content-Type", "image/png")], self.gate.run(work)

    def close(self) -> None:
        self.gate.close()

    def _log(self, environ, status: int, started: float) -> None:
        if not self.quiet:
            line = (
                f"{environ.get('REMOTE_ADDR', '-')} {environ.get('REQUEST_METHOD')} "
                f"{environ.get('PATH_INFO', '')[:100]!r} {status} {time.monotonic() - started:.2f} s"
            )
            print(f"image-completion: {line}", file=sys.stderr, flush=True)


def _json(status: int, value) -> tuple[int, list, bytes]:
    return status, [("Content-Type", "application/json")], json.dumps(value).encode()


def _error(message) -> bytes:
    return json.dumps({"error": " ".join(str(message).split())}).encode()


# ---- starting it -------------------------------------------------------------------------------


def make_server(
    filler: Filler,
    host: str = "127.0.0.1",
    port: int = 8000,
    quiet: bool = False,
    limits: Limits | None = None,
    allow_hosts: tuple[str, ...] = (),
) -> Server:
    """A ready (bound, not yet serving) server; ``port`` 0 picks a free port (see ``.url``)."""
    assert 0 <= port <= 65535, port  # cli.py's --port type checks it
    limits = limits or Limits()
    app = App(filler, limits, allowed_hosts(host, allow_hosts), quiet=quiet)
    try:
        return Server(app, host, port, limits.transport, limits.fills_at_once + limits.waiting + SPARE_THREADS)
    except (OSError, ValueError) as err:  # port in use, no permission, unknown host...
        raise FillError(f"{host}:{port}: cannot listen there: {getattr(err, 'strerror', None) or err}") from None


def serve(
    filler: Filler, host: str = "127.0.0.1", port: int = 8000, limits: Limits | None = None, allow_hosts: tuple[str, ...] = ()
) -> None:
    """Serves the page until Ctrl-C (KeyboardInterrupt, raised again once the requests in flight
    are answered 503; or the process ends with status 128 + the signal if a fill still runs)."""
    server = make_server(filler, host, port, limits=limits, allow_hosts=allow_hosts)
    limits = server.app.limits
    print(f"image-completion: serving on {server.url} (Ctrl-C to stop)", file=sys.stderr, flush=True)
    print(
        f"image-completion: photos up to {limits.max_pixels} pixels (--max-pixels), {limits.fills_at_once} "
        f"fill at a time and {limits.waiting} waiting",
        file=sys.stderr,
        flush=True,
    )
    try:
        server.serve_forever()  # on Ctrl-C it answers the requests in flight 503 before it returns
    except KeyboardInterrupt as stop:
        print("image-completion: stopped; requests in flight were answered 503 (server stopping)", file=sys.stderr, flush=True)
        if server.app.gate.working():
            # An abandoned fill still runs in native code (OpenCV, SciPy, TensorFlow), which cannot be
            # stopped and crashes the interpreter's shutdown (segfault): end the process here.
            sys.stdout.flush()
            os._exit(128 + (stop.args[0] if stop.args else signal.SIGINT))
        raise
