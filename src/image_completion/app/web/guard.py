"""What the local server accepts: from whom (Host, Origin), what (Content-Type, body, JSON), how much
(pixels per image, fills at once). Every check raises ``RequestError(status, one-line message)``.
The reasons behind each rule are in docs/architecture.md, section "The local web page".
"""

from __future__ import annotations

import io
import json
import math
import os
import queue
import re
import threading
import time
from concurrent.futures import Future
from contextlib import contextmanager
from pathlib import Path
from typing import Callable, TypeVar

from PIL import Image

from image_completion.app.fill import BYTES_PER_PIXEL

# Every answer carries these: the page loads nothing from elsewhere, may not be framed, and the
# browser must not guess content types (style-src is 'self' only: no inline styles either).
SECURITY_HEADERS = (
    (
        "Content-Security-Policy",
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' blob:; connect-src 'self' blob:; "
        "base-uri 'none'; form-action 'none'; frame-ancestors 'none'",
    ),
    ("X-Content-Type-Options", "nosniff"),
    ("X-Frame-Options", "DENY"),
    ("Referrer-Policy", "no-referrer"),
    ("Cross-Origin-Opener-Policy", "same-origin"),
    ("Cross-Origin-Resource-Policy", "same-origin"),
    ("Cache-Control", "no-store"),
)
LOCAL_HOSTS = ("127.0.0.1", "localhost", "::1")
_HOST_HEADER = re.compile(r"(?:\[(?P<v6>[0-9a-f:.]+)\]|(?P<name>[a-z0-9._-]+))(?::(?P<port>[0-9]{1,5}))?")

MEMORY_SHARE = 4  # one fill may use a quarter of the machine's memory
PILLOW_MAX_PIXELS = 2 * Image.MAX_IMAGE_PIXELS  # Pillow refuses to open larger images at all
FALLBACK_MAX_PIXELS = 16_000_000  # when the machine's memory cannot be read
T = TypeVar("T")


class RequestError(Exception):
    """An answer other than 200: HTTP status, one-line message, extra headers."""

    def __init__(self, status: int, message: str, headers: tuple[tuple[str, str], ...] = ()):
        super().__init__(" ".join(message.split()))
        self.status = status
        self.headers = headers


# ---- who may ask -------------------------------------------------------------------------------


def host_name(header: str) -> str | None:
    """The host of a ``Host`` header, lower case, without port or IPv6 brackets; None if malformed."""
    match = _HOST_HEADER.fullmatch(header.strip().lower())
    if match is None or (match["port"] is not None and int(match["port"]) > 65535):
        return None
    return match["v6"] or match["name"]


def allowed_hosts(bound_host: str, extra: tuple[str, ...] = ()) -> frozenset[str]:
    """The loopback names, the host the server is bound to, and the names given with --allow-host."""
    names = [*LOCAL_HOSTS, bound_host, *extra]
    return frozenset(name.strip().strip("[]").lower() for name in names if name.strip())


def check_host(environ: dict, allowed: frozenset[str]) -> None:
    """A page reached under a foreign name (DNS rebinding) is refused: 403 naming the Host header."""
    header = environ.get("HTTP_HOST")
    if not header:
        raise RequestError(400, "missing Host header")
    if host_name(header) not in allowed:
        shown = ", ".join(f"[{h}]" if ":" in h else h for h in sorted(allowed))
        raise RequestError(403, f"Host {header[:100]!r} is not served here; allowed hosts: {shown} (serve --allow-host adds one)")


def check_same_origin(environ: dict) -> None:
    """A state-changing request from another web page (Origin or Sec-Fetch-Site says so) gets 403.

    Browsers send Origin with every POST; clients that are not browsers (curl, scripts) send
    neither header and are not web pages, so they pass.
    """
    origin = environ.get("HTTP_ORIGIN")
    own = "http://" + environ.get("HTTP_HOST", "")
    if origin is not None and origin.strip().lower() != own.lower():
        raise RequestError(
            403, f"Origin {origin[:100]!r} is not this page's origin {own}; requests from other web pages are refused"
        )
    site = environ.get("HTTP_SEC_FETCH_SITE")
    if site is not None and site.strip().lower() not in ("same-origin", "none"):
        raise RequestError(403, f"Sec-Fetch-Site {site[:40]!r}: requests from other web pages are refused")


# ---- what they send ----------------------------------------------------------------------------


def check_content_type(environ: dict, accepted: tuple[str, ...]) -> None:
    """415 unless the media type is one of ``accepted`` (``image/*`` accepts any image type).

    The types a cross-origin form can send without a CORS preflight (text/plain, form data)
    are never accepted, so another page cannot post here even without an Origin header.
    """
    given = environ.get("CONTENT_TYPE", "")
    media = given.split(";", 1)[0].strip().lower()
    ok = media in accepted or ("image/*" in accepted and re.fullmatch(r"image/[a-z0-9.+-]+", media))
    if not ok:
        raise RequestError(415, f"Content-Type {given[:60]!r} is not accepted here; send {' or '.join(accepted)}")


def content_length(environ: dict, limit: int) -> int:
    """The body's length in bytes: 400 if empty or not a number, 413 above ``limit``."""
    text = environ.get("CONTENT_LENGTH") or "0"
    if not re.fullmatch(r"[0-9]{1,15}", text):
        raise RequestError(400, f"Content-Length {text[:40]!r} is not a number of bytes")
    length = int(text)
    if length == 0:
        raise RequestError(400, "empty request body")
    if length > limit:
        raise RequestError(413, f"request body of {length} bytes exceeds the limit of {limit} bytes")
    return length


def parse_json(body: bytes) -> object:
    """The JSON value of ``body``; 400 for anything else (bad UTF-8 or syntax, deep nesting, huge numbers)."""
    try:
        return json.loads(body)
    except RecursionError:
        raise RequestError(400, "request body is not JSON this server reads: nested too deeply") from None
    except ValueError as err:  # JSONDecodeError, UnicodeDecodeError, int digit limit
        raise RequestError(400, f"request body is not JSON: {err}") from None


# ---- how much ----------------------------------------------------------------------------------


def machine_memory() -> int | None:
    """Bytes of memory this process may use: physical memory, or a smaller cgroup limit."""
    try:
        total = os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (AttributeError, ValueError, OSError):
        total = None
    for limit_file in ("/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory/memory.limit_in_bytes"):
        try:
            text = Path(limit_file).read_text().strip()
        except OSError:
            continue
        if text.isdigit() and (total is None or int(text) < total):
            total = int(text)
    return total


def default_max_pixels(memory: int | None = None) -> int:
    """Pixels one image may have: a quarter of the machine's memory at 128 bytes per pixel.

    For example 50 million pixels with 24 GiB, 16 million with 8 GiB; never more than Pillow's
    own refusal limit (179 million), never less than 1 million.
    """
    memory = machine_memory() if memory is None else memory
    if not memory:
        return FALLBACK_MAX_PIXELS
    return int(min(PILLOW_MAX_PIXELS, max(1_000_000, memory // MEMORY_SHARE // BYTES_PER_PIXEL)))


def check_declared_pixels(data: bytes, what: str, max_pixels: int) -> None:
    """413 naming the limit when the image *declares* more than ``max_pixels`` (read from its header,
    before anything is decoded). Data Pillow cannot open passes: the decoder's own error names it."""
    try:
        with Image.open(io.BytesIO(data)) as im:
            width, height = im.size
    except Image.DecompressionBombError:
        raise RequestError(
            413, f"{what}: declares more than {PILLOW_MAX_PIXELS} pixels; the limit is {max_pixels} pixels (serve --max-pixels)"
        ) from None
    except Exception:  # noqa: BLE001 - not an image Pillow knows: load_image_and_alpha says why
        return
    if width * height > max_pixels:
        raise RequestError(
            413, f"{what}: {width}x{height} is {width * height} pixels; the limit is {max_pixels} pixels (serve --max-pixels)"
        )


class Gate:
    """At most ``running`` heavy requests at once and ``waiting`` more queued, each for up to
    ``wait_s`` seconds; any other gets 503 with Retry-After (a guess from recent durations).
    After ``close()`` (the server stops) those running or waiting get 503 at once."""

    def __init__(self, running: int = 1, waiting: int = 4, wait_s: float = 30.0):
        self.running, self.waiting, self.wait_s = running, waiting, wait_s
        self._slots = threading.BoundedSemaphore(running)
        self._lock = threading.Lock()
        self._changed = threading.Condition()
        self._closed = False
        self._working = 0  # work on the worker threads now (abandoned work included)
        self._admitted = 0
        self._seconds = 1.0  # moving average of a request's duration
        # The work itself runs on these threads only, so its memory comes from the same few
        # malloc arenas each time instead of one more arena per server thread. They are daemon
        # threads: a stopping server does not wait for a fill it has already answered 503.
        self._jobs: queue.SimpleQueue = queue.SimpleQueue()
        for number in range(running):
            threading.Thread(target=self._work, name=f"fill-{number}", daemon=True).start()

    def _busy(self, why: str) -> RequestError:
        retry = min(60, max(1, math.ceil(self._seconds * (self._admitted + 1) / self.running)))
        return RequestError(503, f"server busy: {why}; retry in {retry} s", (("Retry-After", str(retry)),))

    def _stopping(self) -> RequestError:
        return RequestError(503, "server stopping: this request was not finished; retry once the server runs again")

    def _work(self) -> None:
        while True:
            future, work = self._jobs.get()
            with self._changed:
                self._working += 1
            if future.set_running_or_notify_cancel():
                try:
                    future.set_result(work())
                except BaseException as err:  # noqa: BLE001 - handed to the request's thread as it is
                    future.set_exception(err)
            with self._changed:
                self._working -= 1
                self._changed.notify_all()

    def working(self) -> bool:
        """Whether a worker thread is running some work now."""
        with self._changed:
            return self._working > 0

    def run(self, work: Callable[[], T]) -> T:
        """``work()`` on a worker thread once a slot is free; 503 (RequestError) if none gets free
        or the server stops first."""
        with self.slot():
            future: Future = Future()
            self._jobs.put((future, work))
            with self._changed:
                self._changed.wait_for(lambda: future.done() or self._closed)
            if not future.done():
                raise self._stopping()
            return future.result()

    def close(self) -> None:
        with self._changed:
            self._closed = True
            self._changed.notify_all()

    @contextmanager
    def slot(self):
        with self._lock:
            if self._admitted >= self.running + self.waiting:
                raise self._busy(f"{self.running} fill(s) running and {self.waiting} waiting")
            self._admitted += 1
        try:
            if not self._slots.acquire(timeout=self.wait_s):
                raise self._busy(f"no fill slot free within {self.wait_s:g} s")
            started = time.monotonic()
            try:
                if self._closed:
                    raise self._stopping()
                yield
            finally:
                self._slots.release()
                self._seconds = 0.7 * self._seconds + 0.3 * (time.monotonic() - started)
        finally:
            with self._lock:
                self._admitted -= 1
