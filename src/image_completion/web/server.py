"""The local web page: upload a photo, paint the hole, fill, compare, download.

Served by Python's standard ``http.server`` (no extra dependency, nothing fetched at run time):
one HTML page with a ``<canvas>`` brush (``static/``) and a small JSON API:

    GET  /                 the page; GET /static/app.js, /static/style.css
    GET  /api/info         {"methods": [...], "image_size": S, "model": "<file name>"}
    POST /api/decode       body: the photo file's bytes (header X-Filename: its URL-encoded name)
                           -> {"width", "height", "image": base64 PNG (8-bit RGB, EXIF applied),
                               "mask": base64 PNG of the transparent pixels (white = hole) or null}
    POST /api/fill         body: {"image": base64 PNG, "mask": base64 PNG (white = hole), "method"}
                           -> the filled PNG (image/png), the photo's size, known pixels unchanged

Decoding on the server (not in the browser) makes the page accept every format ``images.py``
reads (TIFF, 16-bit, CMYK...) and paint on exactly the pixels that will be filled (EXIF
orientation applied once, in one place). Errors are 4xx answers ``{"error": "<one line>"}``.
"""

from __future__ import annotations

import base64
import binascii
import io
import json
import re
import sys
import tempfile
import threading
import traceback
import urllib.parse
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from importlib import resources
from pathlib import Path

import numpy as np
from PIL import Image

from image_completion.fill import METHODS, FillError, Filler, load_pair
from image_completion.images import ImageError, load_image_and_alpha

MAX_UPLOAD_BYTES = 256 * 1024 * 1024  # a 12-megapixel photo as base64 PNG is ~50 MB
STATIC_FILES = {"index.html": "text/html", "app.js": "text/javascript", "style.css": "text/css"}


class RequestError(Exception):
    def __init__(self, status: HTTPStatus, message: str):
        super().__init__(message)
        self.status = status


def _png_bytes(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(array)).save(buffer, format="PNG")
    return buffer.getvalue()


def _b64decode(value, what: str) -> bytes:
    if not isinstance(value, str) or not value:
        raise RequestError(HTTPStatus.BAD_REQUEST, f"{what}: missing")
    if value.startswith("data:"):
        value = value.split(",", 1)[-1]
    try:
        return base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        raise RequestError(HTTPStatus.BAD_REQUEST, f"{what}: not valid base64") from None


def _safe_suffix(name: str) -> str:
    suffix = Path(name).suffix.lower()
    return suffix if re.fullmatch(r"\.[a-z0-9]{1,8}", suffix) else ""


def _rename(message: str, tmp_path: Path, name: str) -> str:
    """Error messages name the temp file; show the user's file name instead."""
    return " ".join(message.replace(str(tmp_path), name).split())


def decode_upload(data: bytes, filename: str) -> dict:
    """The photo as the page paints on it: base64 PNG of its 8-bit RGB, and its alpha as a mask."""
    with tempfile.TemporaryDirectory(prefix="image-completion-") as tmp:
        path = Path(tmp) / f"upload{_safe_suffix(filename)}"
        path.write_bytes(data)
        try:
            image, alpha = load_image_and_alpha(path)
        except ImageError as err:
            raise RequestError(HTTPStatus.BAD_REQUEST, _rename(str(err), path, filename)) from None
    mask = None
    if alpha is not None and (alpha < 128).any():
        mask = base64.b64encode(_png_bytes(np.where(alpha < 128, 255, 0).astype(np.uint8))).decode()
    return {
        "width": int(image.shape[1]),
        "height": int(image.shape[0]),
        "image": base64.b64encode(_png_bytes(image)).decode(),
        "mask": mask,
    }


def fill_upload(payload: dict, filler: Filler, lock: threading.Lock) -> bytes:
    """Fills the page's photo where its painted mask is white; returns the PNG bytes."""
    if not isinstance(payload, dict):
        raise RequestError(HTTPStatus.BAD_REQUEST, "request body must be a JSON object")
    method = payload.get("method", "model")
    if method not in filler.methods():
        raise RequestError(HTTPStatus.BAD_REQUEST, f"unknown method {method!r}; allowed: {filler.methods()}")
    photo_bytes = _b64decode(payload.get("image"), "photo")
    mask_bytes = _b64decode(payload.get("mask"), "mask")
    with tempfile.TemporaryDirectory(prefix="image-completion-") as tmp:
        photo, mask = Path(tmp) / "photo.png", Path(tmp) / "mask.png"
        photo.write_bytes(photo_bytes)
        mask.write_bytes(mask_bytes)
        try:
            image, hole = load_pair(photo, mask)
        except (FillError, ImageError) as err:
            message = _rename(_rename(str(err), photo, "photo"), mask, "painted mask")
            raise RequestError(HTTPStatus.BAD_REQUEST, message) from None
    with lock:  # one fill at a time: the model is shared and the machine is small
        filled = filler.fill(image, hole, method)
    return _png_bytes(filled)


class FillServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, address, filler: Filler, quiet: bool = False):
        self.filler = filler
        self.quiet = quiet
        self.fill_lock = threading.Lock()
        super().__init__(address, FillHandler)

    @property
    def url(self) -> str:
        host, port = self.server_address[:2]
        return f"http://{host}:{port}/"


class FillHandler(BaseHTTPRequestHandler):
    server: FillServer
    server_version = "image-completion"

    def log_message(self, format, *args):  # noqa: A002 (the base class's name)
        if not self.server.quiet:
            super().log_message(format, *args)

    def _send(self, status: HTTPStatus, body: bytes, content_type: str) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        self.end_headers()
        self.wfile.write(body)

    def _send_json(self, status: HTTPStatus, value) -> None:
        self._send(status, json.dumps(value).encode(), "application/json")

    def _body(self) -> bytes:
        length = int(self.headers.get("Content-Length") or 0)
        if length <= 0:
            raise RequestError(HTTPStatus.BAD_REQUEST, "empty request body")
        if length > MAX_UPLOAD_BYTES:
            raise RequestError(HTTPStatus.REQUEST_ENTITY_TOO_LARGE,
                               f"upload of {length} bytes exceeds {MAX_UPLOAD_BYTES} bytes")
        return self.rfile.read(length)

    def do_GET(self):  # noqa: N802 (http.server's name)
        path = urllib.parse.urlparse(self.path).path
        if path in ("/", "/index.html"):
            name = "index.html"
        elif path.startswith("/static/") and path[len("/static/"):] in STATIC_FILES:
            name = path[len("/static/"):]
        elif path == "/api/info":
            filler = self.server.filler
            generator = filler.generator
            self._send_json(HTTPStatus.OK, {
                "methods": filler.methods(),
                "image_size": generator.image_size if generator else None,
                "model": generator.path.name if generator else None,
            })
            return
        else:
            self._send_json(HTTPStatus.NOT_FOUND, {"error": f"{path}: not found"})
            return
        body = resources.files("image_completion.web").joinpath("static", name).read_bytes()
        self._send(HTTPStatus.OK, body, STATIC_FILES[name] + "; charset=utf-8")

    def do_POST(self):  # noqa: N802
        path = urllib.parse.urlparse(self.path).path
        try:
            if path == "/api/decode":
                filename = urllib.parse.unquote(self.headers.get("X-Filename") or "upload")
                self._send_json(HTTPStatus.OK, decode_upload(self._body(), filename))
            elif path == "/api/fill":
                try:
                    payload = json.loads(self._body())
                except (json.JSONDecodeError, UnicodeDecodeError) as err:
                    raise RequestError(HTTPStatus.BAD_REQUEST, f"request body is not JSON: {err}") from None
                self._send(HTTPStatus.OK, fill_upload(payload, self.server.filler, self.server.fill_lock), "image/png")
            else:
                raise RequestError(HTTPStatus.NOT_FOUND, f"{path}: not found")
        except RequestError as err:
            self._send_json(err.status, {"error": str(err)})
        except Exception as err:  # a bug or a model failure: answer, log the traceback, keep serving
            self.log_error("fill failed: %r", err)
            traceback.print_exc()
            self._send_json(HTTPStatus.INTERNAL_SERVER_ERROR, {"error": f"internal error: {err}"})


def make_server(filler: Filler, host: str = "127.0.0.1", port: int = 8000, quiet: bool = False) -> FillServer:
    """A ready (bound, not yet serving) server; ``port`` 0 picks a free port (see ``.url``)."""
    unknown = set(filler.methods()) - set(METHODS)
    if unknown:
        raise ValueError(f"unknown methods {sorted(unknown)}; allowed: {list(METHODS)}")
    try:
        return FillServer((host, port), filler, quiet=quiet)
    except OSError as err:  # port in use, no permission, unknown host...
        raise FillError(f"{host}:{port}: cannot listen there: {err.strerror or err}") from None


def serve(filler: Filler, host: str = "127.0.0.1", port: int = 8000) -> None:
    """Serves the page until Ctrl-C."""
    server = make_server(filler, host, port)
    print(f"image-completion: serving on {server.url} (Ctrl-C to stop)", file=sys.stderr, flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
