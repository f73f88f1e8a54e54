"""`image-completion serve` against an adversarial but realistic user: 20 fills at once,
decompression bombs, a page of another site (DNS rebinding, cross-origin posts), malformed
requests, slow and idle connections. Every bad input is made here, in the test.

The server runs in its own process (classical methods only, no model: it starts in seconds), so
its memory is measured alone: /proc/PID/status VmRSS before, VmHWM (the peak, reset through
/proc/PID/clear_refs) after.
"""

from __future__ import annotations

import base64
import contextlib
import io
import json
import re
import signal
import socket
import struct
import subprocess
import sys
import threading
import time
import zlib
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from skimage import data

from conftest import error_of, http_exchange, trickle_until_closed
from image_completion.app.web.guard import BYTES_PER_PIXEL

MAX_PIXELS = 4_000_000
SERVER = """
import json, signal, sys, time
# Ctrl-C as a terminal delivers it: a runner started in the background (`cmd &`) hands its children
# SIGINT ignored, and Python then installs no KeyboardInterrupt handler.
signal.signal(signal.SIGINT, signal.default_int_handler)
from image_completion.app.fill import Filler
from image_completion.app.web.server import Limits, serve
from image_completion.app.web.transport import Transport

class SlowFiller(Filler):
    def fill(self, image, hole, method):
        print("slow fill started", file=sys.stderr, flush=True)  # the test waits for this line
        time.sleep(60)  # a long fill: in flight when the server is stopped
        return image

limits = Limits(max_pixels=int(sys.argv[1]), fills_at_once=1, waiting=4, wait_s=60,
                transport=Transport(**json.loads(sys.argv[2])))
serve(SlowFiller() if sys.argv[3] == "slow" else Filler(), port=0, limits=limits)
"""
MIB = 1024 * 1024
# small limits for the connection rules: a head within 1 s, a kept-alive connection silent 1 s at most
CROWDED = {
    "idle_timeout": 5,
    "request_timeout": 8,
    "header_timeout": 1,
    "keepalive_timeout": 1,
    "per_address": 4,
    "max_connections": 8,
}


class Served:
    def __init__(self, process: subprocess.Popen, url: str, log: Path):
        self.process, self.url, self.log = process, url, log
        self.host, port = url.removeprefix("http://").rstrip("/").rsplit(":", 1)
        self.port = int(port)

    def memory(self, field: str) -> int:
        """VmRSS (now) or VmHWM (peak since reset_peak) of the server process, in bytes."""
        text = Path(f"/proc/{self.process.pid}/status").read_text()
        return int(re.search(rf"^{field}:\s+(\d+) kB", text, re.M).group(1)) * 1024

    def reset_peak(self) -> None:
        Path(f"/proc/{self.process.pid}/clear_refs").write_text("5")


@contextlib.contextmanager
def server_process(folder: Path, transport: dict, filler: str = "classical"):
    """The server in its own process (``filler`` "slow": every fill takes 60 s); yields ``Served``."""
    log = folder / "server.log"
    with open(log, "w") as err:
        args = [sys.executable, "-c", SERVER, str(MAX_PIXELS), json.dumps(transport), filler]
        process = subprocess.Popen(args, stderr=err, stdout=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 120
        while not (match := re.search(r"serving on (http://\S+/)", log.read_text())):
            assert process.poll() is None and time.monotonic() < deadline, log.read_text()
            time.sleep(0.1)
        yield Served(process, match.group(1), log)
    finally:
        process.terminate()
        process.wait(timeout=30)
    assert "Traceback" not in log.read_text()  # nothing anywhere made the server fail


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    if not Path("/proc/self/clear_refs").exists():
        pytest.fail("these tests measure memory through /proc (Linux)")
    with server_process(tmp_path_factory.mktemp("server"), {"idle_timeout": 2, "request_timeout": 4}) as running:
        yield running


@pytest.fixture(scope="module")
def crowded(tmp_path_factory):
    """A server with small connection limits (``CROWDED``)."""
    with server_process(tmp_path_factory.mktemp("crowded"), CROWDED) as running:
        yield running


def exchange(served: Served, method: str, path: str, headers: dict, body: bytes = b"", timeout: float = 120):
    return http_exchange((served.host, served.port), method, path, headers, body, timeout)


def own(served: Served, kind: str = "application/json") -> dict:
    """The headers the page itself sends (the browser adds Host, Origin and Sec-Fetch-Site)."""
    host = f"127.0.0.1:{served.port}"
    return {"Host": host, "Origin": f"http://{host}", "Sec-Fetch-Site": "same-origin", "Content-Type": kind}


def png_bytes(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, format="PNG")
    return buffer.getvalue()


def fill_request(height: int, width: int) -> tuple[bytes, np.ndarray, np.ndarray]:
    """A JSON fill body for a photo of ``height x width`` with a hole; (body, photo, hole)."""
    rng = np.random.default_rng(0)
    image = np.asarray(Image.fromarray(data.astronaut()).resize((width, height), Image.Resampling.BILINEAR))
    image = np.clip(image + rng.integers(-8, 9, image.shape), 0, 255).astype(np.uint8)  # a photo-like PNG size
    hole = np.zeros((height, width), bool)
    hole[height // 3 : height // 3 + 60, width // 3 : width // 3 + 80] = True
    payload = {
        "image": base64.b64encode(png_bytes(image)).decode(),
        "mask": base64.b64encode(png_bytes(np.where(hole, 255, 0).astype(np.uint8))).decode(),
        "method": "telea",
    }
    return json.dumps(payload).encode(), image, hole


def png_chunk(kind: bytes, payload: bytes) -> bytes:
    return struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", zlib.crc32(kind + payload))


def bomb_png(width: int, height: int, rows: int | None = None) -> bytes:
    """A valid greyscale PNG of ``width x height`` black pixels: a few hundred KB that decode to
    width*height bytes (``rows``: only that many rows of data, the header still declares all)."""
    row = b"\0" * (width + 1)  # filter byte "none", then the pixels
    packer = zlib.compressobj(9)
    idat = b"".join(packer.compress(row) for _ in range(height if rows is None else rows)) + packer.flush()
    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + png_chunk(b"IHDR", header) + png_chunk(b"IDAT", idat) + png_chunk(b"IEND", b"")


def inflated_size(png: bytes) -> int:
    """Bytes the PNG's image data inflates to (counted in 1 MiB steps, never held at once)."""
    idat = png[8 + 25 + 8 : -12 - 4]
    unpacker, total = zlib.decompressobj(), 0
    while idat:
        total += len(unpacker.decompress(idat, MIB))
        idat = unpacker.unconsumed_tail
    return total


# ---- many users at once --------------------------------------------------------------------------


def test_twenty_fills_at_once_get_200_or_503_and_memory_stays_bounded(served):
    height, width = 900, 1200
    body, image, hole = fill_request(height, width)
    assert exchange(served, "POST", "/api/fill", own(served), body)[0] == 200  # warm-up: libraries loaded
    before = served.memory("VmRSS")
    served.reset_peak()
    start = threading.Barrier(20)

    def one_fill(_):
        start.wait()
        return exchange(served, "POST", "/api/fill", own(served), body)

    with ThreadPoolExecutor(20) as pool:
        answers = list(pool.map(one_fill, range(20)))
    growth = served.memory("VmHWM") - before
    statuses = [status for status, _, _ in answers]
    assert set(statuses) <= {200, 503}, statuses  # no reset connection (it would raise), no 500
    assert statuses.count(200) >= 1 and statuses.count(503) >= 1, statuses  # 1 running + 4 waiting at most
    for status, headers, answer in answers:
        if status == 503:
            assert headers["Retry-After"].isdigit() and int(headers["Retry-After"]) >= 1
            assert error_of(answer).startswith("server busy")
        else:
            result = np.asarray(Image.open(io.BytesIO(answer)))
            assert result.shape == image.shape and (result[~hole] == image[~hole]).all()
    # The bound: one fill at a time, each at most BYTES_PER_PIXEL per pixel of its photo, plus 64 MiB
    # for buffers; 20 (or waitress's 8 threads) decoding at once would take many times that.
    bound = BYTES_PER_PIXEL * height * width + 64 * MIB
    assert growth < bound, f"server memory grew {growth / MIB:.0f} MiB under load; bound {bound / MIB:.0f} MiB"
    # and it still answers: the page, and a fill
    assert exchange(served, "GET", "/api/info", {"Host": "localhost"})[0] == 200
    assert exchange(served, "POST", "/api/fill", own(served), body)[0] == 200


def test_idle_and_trickling_connections_do_not_lock_out_the_user(served):
    """30 connections that say nothing or trickle a header byte by byte; a fill still goes through,
    and the server closes them all (idle timeout 2 s, request timeout 4 s)."""
    conns = [socket.create_connection((served.host, served.port)) for _ in range(30)]
    stop = threading.Event()

    def trickle():
        while not stop.wait(0.5):
            for conn in conns[:15]:
                try:
                    conn.sendall(b"x")
                except OSError:
                    pass

    trickler = threading.Thread(target=trickle, daemon=True)
    try:
        for conn in conns[:15]:
            conn.sendall(b"POST /api/fill HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: ")
        trickler.start()
        time.sleep(1.5)  # in place: older than the Door's SETTLE_S, so the idle ones make room for the user
        body, _, _ = fill_request(120, 160)
        started = time.monotonic()
        assert exchange(served, "POST", "/api/fill", own(served), body, timeout=30)[0] == 200
        assert time.monotonic() - started < 20
        closed_by = time.monotonic() + 15
        for conn in conns:  # a recv that times out (TimeoutError) fails the test
            conn.settimeout(max(0.1, closed_by - time.monotonic()))
            try:
                while conn.recv(65536):
                    pass
            except ConnectionResetError:
                pass  # closed too
    finally:
        stop.set()
        for conn in conns:
            conn.close()
        trickler.join(10)


# ---- decompression bombs -------------------------------------------------------------------------


def test_decompression_bombs_get_413_naming_the_limit_without_being_decoded(served):
    bomb = bomb_png(12000, 12000)
    assert len(bomb) < 200_000 and inflated_size(bomb) == 12000 * 12001  # 144 MB of pixels, a real bomb
    with pytest.warns(Image.DecompressionBombWarning):  # above Pillow's warning limit, below its refusal
        assert Image.open(io.BytesIO(bomb)).size == (12000, 12000)
    b64 = base64.b64encode(bomb).decode()
    small_mask = base64.b64encode(png_bytes(np.full((4, 4), 255, np.uint8))).decode()
    small_photo = base64.b64encode(png_bytes(np.zeros((4, 4, 3), np.uint8))).decode()
    attempts = [  # three at once, as a hostile page would send them
        ("/api/decode", own(served, "application/octet-stream") | {"X-Filename": "bomb.png"}, bomb, "bomb.png"),
        ("/api/fill", own(served), json.dumps({"image": b64, "mask": small_mask, "method": "telea"}).encode(), "photo"),
        ("/api/fill", own(served), json.dumps({"image": small_photo, "mask": b64, "method": "telea"}).encode(), "painted mask"),
    ]
    before = served.memory("VmRSS")
    served.reset_peak()
    with ThreadPoolExecutor(3) as pool:
        answers = list(pool.map(lambda a: exchange(served, "POST", a[0], a[1], a[2]), attempts))
    growth = served.memory("VmHWM") - before
    for (_, _, _, what), (status, _, body) in zip(attempts, answers):
        assert status == 413
        error = error_of(body)
        assert error.startswith(f"{what}: 12000x12000") and f"limit is {MAX_PIXELS} pixels" in error
        assert "--max-pixels" in error
    assert growth < 64 * MIB, f"{growth / MIB:.0f} MiB: the bombs were decoded"
    # beyond Pillow's own refusal limit (400 million pixels): still 413 naming our limit
    status, _, body = exchange(served, "POST", "/api/decode", own(served, "image/png"), bomb_png(20000, 20000, rows=10))
    assert status == 413 and f"limit is {MAX_PIXELS} pixels" in error_of(body)


# ---- a page of another site ----------------------------------------------------------------------


def test_dns_rebinding_foreign_host_is_refused(served):
    """attacker.example resolves to 127.0.0.1 after the page has loaded: its requests say Host: attacker.example."""
    foreign = {"Host": f"attacker.example:{served.port}"}
    for method, path, headers, body in [
        ("GET", "/", foreign, b""),
        ("GET", "/api/info", foreign, b""),
        (
            "POST",
            "/api/fill",
            foreign | {"Origin": f"http://attacker.example:{served.port}", "Content-Type": "application/json"},
            fill_request(60, 80)[0],
        ),
    ]:
        status, _, answer = exchange(served, method, path, headers, body)
        assert status == 403 and error_of(answer).startswith(f"Host 'attacker.example:{served.port}'")


def test_cross_origin_posts_are_refused(served):
    body = fill_request(60, 80)[0]
    host = {"Host": f"127.0.0.1:{served.port}"}
    # fetch(..., {method: "POST", mode: "no-cors", body}) from another page: a simple request, no preflight
    simple = host | {
        "Origin": "http://attacker.example",
        "Content-Type": "text/plain;charset=UTF-8",
        "Sec-Fetch-Site": "cross-site",
    }
    status, _, answer = exchange(served, "POST", "/api/fill", simple, body)
    assert status == 403 and error_of(answer).startswith("Origin 'http://attacker.example'")
    # the same with a correct content type: still refused by its Origin
    status, _, answer = exchange(served, "POST", "/api/fill", simple | {"Content-Type": "application/json"}, body)
    assert status == 403 and "Origin" in error_of(answer)
    # a text/plain post without Origin (an old browser, a form): refused by its content type
    for kind in ["text/plain", "application/x-www-form-urlencoded"]:
        status, _, answer = exchange(served, "POST", "/api/fill", host | {"Content-Type": kind}, body)
        assert status == 415 and error_of(answer).startswith("Content-Type") and "application/json" in error_of(answer)


# ---- malformed requests --------------------------------------------------------------------------


def raw(served: Served, request: bytes) -> tuple[int, str]:
    with socket.create_connection((served.host, served.port), timeout=30) as conn:
        conn.sendall(request)
        answer = b""
        while chunk := conn.recv(65536):
            answer += chunk
    head, _, body = answer.partition(b"\r\n\r\n")
    return int(head.split()[1]), error_of(body)


def test_nested_json_and_bad_content_length_are_400(served):
    nested = b"[" * 200_000 + b"]" * 200_000
    status, _, answer = exchange(served, "POST", "/api/fill", own(served), nested)
    assert status == 400 and "nested too deeply" in error_of(answer)
    nested_inside = b'{"image": "", "mask": ' + b'{"a": ' * 100_000 + b"1" + b"}" * 100_000 + b"}"
    status, _, answer = exchange(served, "POST", "/api/fill", own(served), nested_inside)
    assert status == 400 and "nested too deeply" in error_of(answer)
    for length in [b"twelve", b"-1", b"0x10", b"12, 13"]:
        request = (
            b"POST /api/fill HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
            b"Content-Length: " + length + b"\r\n\r\n{}"
        )
        status, error = raw(served, request)
        assert status == 400 and "Content-Length" in error, (length, error)
    assert exchange(served, "GET", "/api/info", {"Host": "127.0.0.1"})[0] == 200


# ---- connection exhaustion: slow heads, idle connections, one address's crowd ----------------------

BUSY_HEAD = b"POST /api/fill HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{"


def connect(served: Served, source: str) -> socket.socket:
    return socket.create_connection((served.host, served.port), timeout=10, source_address=(source, 0))


def answer_of(conn: socket.socket) -> tuple[int, bytes]:
    """(status, body) of what the server sends on ``conn`` until it closes it."""
    answer = b""
    while chunk := conn.recv(65536):
        answer += chunk
    head, _, body = answer.partition(b"\r\n\r\n")
    return int(head.split()[1]), body


def info_status(served: Served, source: str = "127.0.0.1") -> int:
    with connect(served, source) as conn:
        conn.sendall(b"GET /api/info HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
        return answer_of(conn)[0]


def test_a_slow_head_is_cut_at_the_header_timeout(crowded):
    """A head trickled a byte every 0.2 s is never idle, but must arrive whole within 1 s."""
    with connect(crowded, "127.0.0.4") as conn:
        conn.sendall(b"GET /api/info HTTP/1.1\r\nHost: 127.0.0.1\r\n")
        closed, elapsed, _ = trickle_until_closed(conn, b"x", interval=0.2, limit=10)
    assert closed and 0.8 < elapsed < 3  # not the 8 s request timeout, nor the 5 s idle one


def test_a_kept_alive_connection_is_closed_at_the_keepalive_timeout(crowded):
    with connect(crowded, "127.0.0.4") as conn:
        conn.sendall(b"GET /api/info HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        started = time.monotonic()
        conn.settimeout(10)
        while conn.recv(65536):  # the answer, then the close
            pass
    assert time.monotonic() - started < 3  # 1 s silent after its answer, not the 5 s of a request


def test_the_address_limit_refuses_the_next_connection_and_others_are_served(crowded):
    """4 connections from 127.0.0.2 each in the middle of a request: a 5th from there gets 503,
    127.0.0.1 gets 200; with 4 more from 127.0.0.3 the server is full (8) and busy: 503 too."""
    busy = []
    try:
        for source in ["127.0.0.2"] * 4:
            busy.append(connect(crowded, source))
            busy[-1].sendall(BUSY_HEAD)
        time.sleep(0.5)  # the server has read them
        assert info_status(crowded, "127.0.0.2") == 503
        assert info_status(crowded) == 200
        for source in ["127.0.0.3"] * 4:
            busy.append(connect(crowded, source))
            busy[-1].sendall(BUSY_HEAD)
        time.sleep(0.5)
        with connect(crowded, "127.0.0.1") as conn:
            conn.sendall(b"GET /api/info HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
            status, body = answer_of(conn)
        assert status == 503 and error_of(body).startswith("server busy")
    finally:
        for conn in busy:
            conn.close()
    time.sleep(0.3)
    assert info_status(crowded) == 200


def test_a_full_server_cuts_a_crowds_idle_or_slow_connection_for_a_new_client(crowded):
    """8 connections (the limit): 4 idle from 127.0.0.2, 4 trickling heads from 127.0.0.3; a
    client from 127.0.0.1 is answered at once, and the crowd's connections are the ones cut."""
    crowd = [connect(crowded, "127.0.0.2") for _ in range(4)] + [connect(crowded, "127.0.0.3") for _ in range(4)]
    try:
        for conn in crowd[4:]:
            conn.sendall(b"GET /api/info HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: ")
        time.sleep(0.3)
        started = time.monotonic()
        assert [info_status(crowded) for _ in range(3)] == [200] * 3
        assert time.monotonic() - started < 1  # before any timeout (1 s) could have made room
    finally:
        for conn in crowd:
            conn.close()


# ---- HEAD, a bare LF, stopping with a fill in flight --------------------------------------------


def test_head_is_answered_like_get_without_a_body(served):
    with connect(served, "127.0.0.1") as conn:
        conn.sendall(b"HEAD / HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
        status, body = answer_of(conn)
    assert status == 200 and body == b""
    assert exchange(served, "HEAD", "/api/info", {"Host": "127.0.0.1"})[0] == 200
    assert exchange(served, "HEAD", "/api/fill", {"Host": "127.0.0.1"})[0] == 405


def test_a_request_with_bare_lf_line_ends_gets_400_at_once(served):
    for request in [b"GET /api/info HTTP/1.1\nHost: 127.0.0.1\n\n", b"GET /api/info HTTP/1.1\r\nHost: 127.0.0.1\n\n"]:
        started = time.monotonic()
        with connect(served, "127.0.0.1") as conn:
            conn.sendall(request)
            status, body = answer_of(conn)
        assert status == 400 and "LF" in error_of(body)
        assert time.monotonic() - started < 1.5  # not the 2 s idle nor the 4 s request timeout


def test_stopping_the_server_answers_the_fills_in_flight_503_and_exits_at_once(tmp_path):
    """Ctrl-C (SIGINT) with one fill running (60 s) and one waiting: both get 503 and the process
    ends within seconds, without waiting for the fill."""
    body, _, _ = fill_request(60, 80)
    with server_process(tmp_path, {}, filler="slow") as slow, ThreadPoolExecutor(2) as pool:
        fills = [pool.submit(exchange, slow, "POST", "/api/fill", own(slow), body, 30)]
        deadline = time.monotonic() + 60  # a fixed sleep was too short on a loaded machine (the suite's 2 cores)
        while "slow fill started" not in slow.log.read_text():
            assert time.monotonic() < deadline and not fills[0].done(), slow.log.read_text()
            time.sleep(0.1)
        fills.append(pool.submit(exchange, slow, "POST", "/api/fill", own(slow), body, 30))
        time.sleep(1.5)  # one runs, the second waits for the slot
        stopped = time.monotonic()
        slow.process.send_signal(signal.SIGINT)
        answers = [fill.result() for fill in fills]
        assert slow.process.wait(timeout=10) == 128 + signal.SIGINT
        assert time.monotonic() - stopped < 6
    for status, _, answer in answers:
        assert status == 503 and error_of(answer).startswith("server stopping")
