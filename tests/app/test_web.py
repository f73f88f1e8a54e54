"""The local web page: its JSON API over HTTP, and the full round trip in headless Chromium."""

from __future__ import annotations

import base64
import io
import json
import socket
import threading
import time
import urllib.error
import urllib.request

import numpy as np
import pytest
from PIL import Image

from browser import browser_available, running_server
from conftest import error_of, http_exchange, trickle_until_closed
from conftest import skimage_photo as photo
from image_completion.app.cli import main
from image_completion.app.fill import Filler, load_generator
from image_completion.app.web.guard import Gate, RequestError, allowed_hosts, default_max_pixels, host_name
from image_completion.app.web.server import Limits
from image_completion.app.web.transport import Transport

SIZE = 32
OCTET = {"Content-Type": "application/octet-stream"}


def png_b64(array: np.ndarray) -> str:
    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, format="PNG")
    return base64.b64encode(buffer.getvalue()).decode()


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    """The page served with a tiny untrained generator (32 px, 4 base filters) and its card."""
    from image_completion.core.models import build_generator

    folder = tmp_path_factory.mktemp("model")
    build_generator("unet_scaled", SIZE, base_filters=4, decoder_filters=8).save(folder / "generator.keras")
    (folder / "model_card.json").write_text(json.dumps({"image_size": SIZE, "hole_value": 1.0}))
    filler = Filler(generator=load_generator(folder / "generator.keras"))
    with running_server(filler) as running:
        yield running


def request(server, path: str, body: bytes | None = None, headers: dict | None = None):
    """(status, content type, body bytes) of a GET (no body) or POST."""
    req = urllib.request.Request(
        server.url.rstrip("/") + path, data=body, headers=headers or {}, method="POST" if body is not None else "GET"
    )
    try:
        with urllib.request.urlopen(req, timeout=60) as response:
            return response.status, response.headers["Content-Type"], response.read()
    except urllib.error.HTTPError as err:
        return err.code, err.headers["Content-Type"], err.read()


def post_json(server, path: str, value) -> tuple[int, str, bytes]:
    return request(server, path, json.dumps(value).encode(), {"Content-Type": "application/json"})


def address(server) -> tuple[str, int]:
    host, port = server.url.removeprefix("http://").rstrip("/").rsplit(":", 1)
    return host, int(port)


def exchange(server, method: str, path: str, headers: dict, body: bytes = b""):
    return http_exchange(address(server), method, path, headers, body, timeout=60)


def raw(server, data: bytes, timeout: float = 30) -> bytes:
    """Sends ``data`` as it is on a new connection; everything the server answers until it closes."""
    with socket.create_connection(address(server), timeout=timeout) as conn:
        conn.sendall(data)
        answer = b""
        while chunk := conn.recv(65536):
            answer += chunk
    return answer


def fill_body(height: int = 53, width: int = 77) -> bytes:
    image = photo("astronaut", height, width)
    mask = np.zeros((height, width), np.uint8)
    mask[height // 4 : height // 2, width // 4 : width // 2] = 255
    return json.dumps({"image": png_b64(image), "mask": png_b64(mask), "method": "telea"}).encode()


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
    assert json.loads(body) == {
        "methods": ["model", "telea", "ns", "biharmonic", "fsr", "blend"],
        "image_size": SIZE,
        "model": "generator.keras",
    }
    assert request(server, "/static/../fill.py")[0] == 404
    assert request(server, "/nothing")[0] == 404


def test_decode_applies_exif_and_returns_alpha_as_mask(server, tmp_path):
    image = photo("coffee", 30, 45)
    alpha = np.full((30, 45), 255, np.uint8)
    alpha[5:10, 6:20] = 0
    buffer = io.BytesIO()
    Image.fromarray(np.dstack([image, alpha])).save(buffer, format="PNG")
    status, _, body = request(server, "/api/decode", buffer.getvalue(), {**OCTET, "X-Filename": "cut%20out.png"})
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
    answer = json.loads(
        request(server, "/api/decode", buffer.getvalue(), {"Content-Type": "image/jpeg", "X-Filename": "phone.jpg"})[2]
    )
    assert (answer["width"], answer["height"], answer["mask"]) == (30, 45, None)


def test_decode_of_a_non_image_names_the_file(server):
    status, kind, body = request(server, "/api/decode", b"just text", {**OCTET, "X-Filename": "notes.txt"})
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


# ---- the server's rules ------------------------------------------------------------------------


@pytest.fixture(scope="module")
def small_server():
    """Classical methods only, a budget of 5000 pixels, short timeouts, one fill at a time and none waiting."""
    limits = Limits(
        max_pixels=5000, waiting=0, wait_s=0.1, transport=Transport(idle_timeout=1, keepalive_timeout=1, request_timeout=2)
    )
    with running_server(Filler(), limits=limits, allow_hosts=("photos.lan",)) as running:
        yield running


def parse_raw(answer: bytes) -> tuple[int, dict, bytes]:
    head, _, body = answer.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    headers = {k.strip().lower(): v.strip() for k, v in (line.split(":", 1) for line in lines[1:])}
    return int(lines[0].split()[1]), headers, body


def check_security_headers(headers) -> None:
    get = (lambda name: headers.get(name.lower())) if isinstance(headers, dict) else headers.get
    policy = get("Content-Security-Policy")
    assert "frame-ancestors 'none'" in policy and "default-src 'none'" in policy and "script-src 'self'" in policy
    assert get("X-Content-Type-Options") == "nosniff"
    assert get("X-Frame-Options") == "DENY"
    assert get("Referrer-Policy") == "no-referrer"
    server_header = get("Server") or ""
    assert not any(word in server_header.lower() for word in ("python", "waitress", "/")), server_header
    assert not any(ch.isdigit() for ch in server_header), server_header


def test_every_answer_has_the_security_headers_and_no_version_banner(server):
    host = {"Host": "127.0.0.1"}
    for method, path, headers, body, status in [
        ("GET", "/", host, b"", 200),
        ("GET", "/static/app.js", host, b"", 200),
        ("GET", "/api/info", host, b"", 200),
        ("GET", "/nothing", host, b"", 404),
        ("GET", "/api/fill", host, b"", 405),
        ("GET", "/", {"Host": "evil.example"}, b"", 403),
        ("POST", "/api/fill", {**host, "Content-Type": "text/plain"}, b"{}", 415),
        ("POST", "/api/fill", {**host, "Content-Type": "application/json"}, b"{nope", 400),
    ]:
        got, response_headers, _ = exchange(server, method, path, headers, body)
        assert got == status, (method, path)
        check_security_headers(response_headers)
    # the server's own answers to what it cannot parse carry them too
    got, headers, body = parse_raw(raw(server, b"POST /api/fill HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: x\r\n\r\n"))
    assert got == 400
    check_security_headers(headers)


@pytest.mark.parametrize(
    "host", ["127.0.0.1", "127.0.0.1:{port}", "localhost", "LOCALHOST:{port}", "[::1]", "[::1]:{port}", "photos.lan:{port}"]
)
def test_known_hosts_are_served(small_server, host):
    status, _, body = exchange(small_server, "GET", "/api/info", {"Host": host.format(port=address(small_server)[1])})
    assert status == 200 and json.loads(body)["methods"] == ["telea", "ns", "biharmonic", "fsr", "blend"]


@pytest.mark.parametrize(
    "host",
    [
        "evil.example",
        "evil.example:{port}",
        "127.0.0.1.evil.example",
        "localhost.",
        "[::2]:{port}",
        "127.0.0.1:99999",
        "127.0.0.1:{port}@evil.example",
        "other.lan",
    ],
)
def test_foreign_hosts_are_refused(small_server, host):
    """DNS rebinding: a page of evil.example whose name now points to 127.0.0.1 sends Host: evil.example."""
    status, headers, body = exchange(small_server, "GET", "/api/info", {"Host": host.format(port=address(small_server)[1])})
    assert status == 403
    error = error_of(body)
    assert error.startswith("Host ") and "--allow-host" in error
    check_security_headers(headers)
    status, _, body = exchange(small_server, "GET", "/api/info", {})  # HTTP/1.1 requires one
    assert status == 400 and "Host" in error_of(body)


def test_host_names_and_the_allowed_set():
    assert host_name("LocalHost:8000") == "localhost" and host_name("[::1]:80") == "::1"
    assert host_name("[::1]") == "::1" and host_name("127.0.0.1") == "127.0.0.1"
    for bad in ["a:b:c", "127.0.0.1:99999", "x@y", "", "[::1", "host:port", "a b"]:
        assert host_name(bad) is None, bad
    assert allowed_hosts("0.0.0.0", ("Photos.LAN",)) == {"127.0.0.1", "localhost", "::1", "0.0.0.0", "photos.lan"}
    assert allowed_hosts("[::]") == {"127.0.0.1", "localhost", "::1", "::"}


@pytest.mark.parametrize("path", ["/api/fill", "/api/decode"])
@pytest.mark.parametrize(
    "headers, named",
    [
        ({"Origin": "http://evil.example"}, "Origin"),
        ({"Origin": "null"}, "Origin"),  # sandboxed frames, file:// pages
        ({"Origin": "http://localhost:{other}"}, "Origin"),  # another local web app
        ({"Origin": "http://127.0.0.1:{other}"}, "Origin"),
        ({"Origin": "https://127.0.0.1:{port}"}, "Origin"),
        ({"Sec-Fetch-Site": "cross-site"}, "Sec-Fetch-Site"),
        ({"Sec-Fetch-Site": "same-site"}, "Sec-Fetch-Site"),
    ],
)
def test_posts_from_other_origins_are_refused(server, path, headers, named):
    port = address(server)[1]
    headers = {k: v.format(port=port, other=port + 1) for k, v in headers.items()}
    kind = "application/json" if path == "/api/fill" else "application/octet-stream"
    status, _, body = exchange(server, "POST", path, {"Host": f"127.0.0.1:{port}", "Content-Type": kind, **headers}, fill_body())
    assert status == 403
    error = error_of(body)
    assert error.startswith(named) and "other web pages" in error


def test_posts_from_the_page_itself_pass(server):
    port = address(server)[1]
    for host in [f"127.0.0.1:{port}", f"localhost:{port}"]:
        headers = {
            "Host": host,
            "Origin": f"http://{host}",
            "Sec-Fetch-Site": "same-origin",
            "Content-Type": "application/json; charset=utf-8",
        }
        status, response_headers, body = exchange(server, "POST", "/api/fill", headers, fill_body())
        assert status == 200 and response_headers["Content-Type"] == "image/png"


@pytest.mark.parametrize(
    "path, kind, wanted",
    [
        ("/api/fill", "text/plain", "application/json"),  # what a cross-origin fetch can send without preflight
        ("/api/fill", "application/x-www-form-urlencoded", "application/json"),  # an HTML form
        ("/api/fill", "multipart/form-data; boundary=x", "application/json"),
        ("/api/fill", None, "application/json"),
        ("/api/decode", "text/plain", "application/octet-stream"),
        ("/api/decode", "multipart/form-data; boundary=x", "application/octet-stream"),
    ],
)
def test_json_and_photo_endpoints_require_their_content_type(server, path, kind, wanted):
    headers = {"Host": "127.0.0.1"} | ({"Content-Type": kind} if kind else {})
    status, _, body = exchange(server, "POST", path, headers, fill_body())
    assert status == 415
    error = error_of(body)
    assert error.startswith("Content-Type") and wanted in error


def test_wrong_methods_are_405_and_there_is_no_cors(server):
    host = {"Host": "127.0.0.1"}
    status, headers, _ = exchange(server, "GET", "/api/fill", host)
    assert status == 405 and headers["Allow"] == "POST"
    status, headers, _ = exchange(server, "POST", "/", {**host, "Content-Type": "application/json"}, b"{}")
    assert status == 405 and headers["Allow"] == "GET, HEAD"
    # a CORS preflight gets no Access-Control-Allow-* header: the browser will not send the real request
    preflight = {
        **host,
        "Origin": "http://evil.example",
        "Access-Control-Request-Method": "POST",
        "Access-Control-Request-Headers": "content-type",
    }
    status, headers, _ = exchange(server, "OPTIONS", "/api/fill", preflight)
    assert status in (403, 405) and not any(name.lower().startswith("access-control") for name in headers)


@pytest.mark.parametrize(
    "body, needle",
    [
        (b"[" * 100_000 + b"]" * 100_000, "nested too deeply"),
        (b'{"image": ' + b"[" * 50_000 + b"]" * 50_000 + b"}", "nested too deeply"),
        (b"[1, 2]", "must be a JSON object"),
        (b'"text"', "must be a JSON object"),
        (b"\xff\xfe{}", "not JSON"),
        (b"1" * 5000, "not JSON"),  # more digits than Python converts
        (b'{"image": "AAAA", "mask": "AAAA", "method": ["telea"]}', "unknown method"),
        (b'{"image": 5, "mask": "AAAA", "method": "telea"}', "photo: missing"),
        (b'{"image": "not base64!", "mask": "AAAA", "method": "telea"}', "photo: not valid base64"),
        (
            b'{"image": "' + base64.b64encode(b"not a png") + b'", "mask": "AAAA", "method": "telea"}',
            "photo: not a readable image",
        ),
        ("truncated", "photo: "),  # the rest of the wording is images.py's
    ],
)
def test_malformed_fill_bodies_are_400(server, body, needle):
    if body == "truncated":
        payload = json.loads(fill_body())
        png = base64.b64decode(payload["image"])
        payload["image"] = base64.b64encode(png[: len(png) // 2]).decode()
        body = json.dumps(payload).encode()
    status, _, answer = exchange(server, "POST", "/api/fill", {"Host": "127.0.0.1", "Content-Type": "application/json"}, body)
    assert status == 400
    assert needle in error_of(answer)


@pytest.mark.parametrize(
    "request_bytes, needle",
    [
        (
            b"POST /api/fill HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: abc\r\n\r\n",
            "Content-Length",
        ),
        (
            b"POST /api/fill HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: -5\r\n\r\n",
            "Content-Length",
        ),
        (
            b"POST /api/fill HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: 1e3\r\n\r\n",
            "Content-Length",
        ),
        (
            b"POST /api/fill HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: 2\r\n"
            b"Content-Length: 3\r\n\r\n{}",
            "Content-Length",
        ),
        (
            b"POST /api/fill HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: 0\r\n"
            b"Connection: close\r\n\r\n",
            "empty request body",
        ),
        (b"GARBAGE\r\n\r\n", "Bad Request"),
        (b"GET /api/info HTTP/1.1\r\nHost: 127.0.0.1\r\nno colon here\r\n\r\n", "Bad Request"),
        (b"GET /api/info HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Big: " + b"a" * 100_000 + b"\r\n\r\n", "Header"),
    ],
)
def test_malformed_http_is_a_4xx_json_answer(server, request_bytes, needle):
    status, headers, body = parse_raw(raw(server, request_bytes))
    assert status in (400, 431) and headers["content-type"] == "application/json"
    assert needle in error_of(body)
    assert request(server, "/api/info")[0] == 200  # and the server goes on


def test_a_body_over_the_size_limit_gets_413_even_while_it_is_still_being_sent(server):
    head = (
        b"POST /api/decode HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/octet-stream\r\n"
        b"Content-Length: 300000000\r\n\r\n"
    )
    with socket.create_connection(address(server), timeout=30) as conn:
        conn.sendall(head + b"\0" * 4 * 1024 * 1024)  # the server answers after the headers; we go on sending
        answer = b""
        while chunk := conn.recv(65536):
            answer += chunk
    status, headers, body = parse_raw(answer)
    assert status == 413 and "268435456" in error_of(body)
    check_security_headers(headers)


def test_pixel_budget_is_checked_before_decoding(small_server):
    ok = {"Host": "127.0.0.1", "Content-Type": "application/json"}
    image, mask = photo("astronaut", 50, 100), np.zeros((50, 100), np.uint8)  # exactly 5000 pixels
    mask[10:20, 10:30] = 255
    payload = {"image": png_b64(image), "mask": png_b64(mask), "method": "telea"}
    assert exchange(small_server, "POST", "/api/fill", ok, json.dumps(payload).encode())[0] == 200
    big = photo("astronaut", 51, 100)  # 5100 pixels
    status, _, body = exchange(small_server, "POST", "/api/fill", ok, json.dumps({**payload, "image": png_b64(big)}).encode())
    assert status == 413
    error = error_of(body)
    assert error.startswith("photo: 100x51 is 5100 pixels") and "limit is 5000 pixels" in error and "--max-pixels" in error
    big_mask = png_b64(np.zeros((51, 100), np.uint8))
    status, _, body = exchange(small_server, "POST", "/api/fill", ok, json.dumps({**payload, "mask": big_mask}).encode())
    assert status == 413 and error_of(body).startswith("painted mask: 100x51")
    buffer = io.BytesIO()
    Image.fromarray(big).save(buffer, format="PNG")
    status, _, body = exchange(
        small_server, "POST", "/api/decode", {"Host": "127.0.0.1", **OCTET, "X-Filename": "big%20one.png"}, buffer.getvalue()
    )
    assert status == 413 and error_of(body).startswith("big one.png: 100x51 is 5100 pixels")


def test_default_pixel_budget_follows_the_machines_memory():
    gib = 1024**3
    assert default_max_pixels(24 * gib) == 24 * gib // 4 // 128 == 50_331_648
    assert default_max_pixels(8 * gib) == 16_777_216
    assert default_max_pixels(256 * 1024**2) == 1_000_000  # never below a million
    assert default_max_pixels(1024 * gib) == 2 * Image.MAX_IMAGE_PIXELS  # never above Pillow's refusal
    assert 1_000_000 <= default_max_pixels() <= 2 * Image.MAX_IMAGE_PIXELS


def test_gate_answers_503_with_retry_after_when_full():
    gate = Gate(running=1, waiting=1, wait_s=1.0)
    inside, release = threading.Event(), threading.Event()

    def hold():
        with gate.slot():
            inside.set()
            release.wait(30)

    def wait_in_line(outcome: list):
        try:
            with gate.slot():
                outcome.append("got in")
        except RequestError as err:
            outcome.append(err)

    holder = threading.Thread(target=hold)
    holder.start()
    assert inside.wait(10)
    outcome: list = []
    waiter = threading.Thread(target=wait_in_line, args=(outcome,))
    started = time.monotonic()
    waiter.start()  # takes the one waiting place...
    time.sleep(0.2)
    with pytest.raises(RequestError) as full:  # ...so this one is refused at once
        with gate.slot():
            pass
    assert full.value.status == 503 and "1 fill(s) running and 1 waiting" in str(full.value)
    retry = dict(full.value.headers)["Retry-After"]
    assert retry.isdigit() and 1 <= int(retry) <= 60
    waiter.join(10)  # the waiting one gave up after 1 s
    assert 0.9 < time.monotonic() - started < 8
    assert outcome[0].status == 503 and "no fill slot free within 1 s" in str(outcome[0])
    assert dict(outcome[0].headers)["Retry-After"].isdigit()
    release.set()
    holder.join(10)
    with gate.slot():  # free again
        pass


def seconds_until_closed(conn: socket.socket, limit: float = 15.0) -> float:
    """Reads (and drops) what the server sends until it closes the connection."""
    started = time.monotonic()
    conn.settimeout(limit)
    while conn.recv(65536):
        pass
    return time.monotonic() - started


def test_idle_connections_are_closed(small_server):
    with socket.create_connection(address(small_server)) as conn:  # says nothing at all
        assert seconds_until_closed(conn) < 6  # keep-alive timeout 1 s
    with socket.create_connection(address(small_server)) as conn:  # a kept-alive connection after one request
        conn.sendall(b"GET /api/info HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        assert seconds_until_closed(conn) < 6


def test_a_request_trickled_slowly_is_cut_at_the_request_timeout(small_server):
    with socket.create_connection(address(small_server)) as conn:
        conn.sendall(b"POST /api/fill HTTP/1.1\r\nHost: 127.0.0.1\r\n")
        # a header line every 0.3 s: never idle 1 s
        closed, elapsed, sent = trickle_until_closed(conn, b"X-Slow: x\r\n", interval=0.3, limit=15)
    assert closed and 1.5 < elapsed < 8 and sent > 4  # cut by the 2 s request timeout, not the 1 s idle one


# ---- the browser round trip ------------------------------------------------------------------

needs_browser = pytest.mark.skipif(not browser_available(), reason="chromium/chromedriver not installed")


@pytest.mark.browser
@needs_browser
def test_browser_upload_paint_undo_fill_download(server, tmp_path):
    pytest.importorskip("selenium", reason="selenium not installed (pip install selenium)")
    from browser import (
        chromium,
        click,
        fill_and_fetch,
        paint,
        painted_pixels,
        set_brush,
        upload,
        wait_status,
    )

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

    done = subprocess.run(
        [sys.executable, "-m", "image_completion.app.cli", "serve", "--model", tmp_path / "no.keras"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 1
    error = done.stderr.strip()
    assert "\n" not in error and error.startswith(f"image-completion: error: {tmp_path / 'no.keras'}: model file not found")
    assert "--model PATH" in error  # the wording of the rest is fill.py's
    model = server.app.filler.generator.path
    process = subprocess.Popen(
        [sys.executable, "-m", "image_completion.app.cli", "serve", "--model", model, "--port", "0"],
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        line = process.stderr.readline()  # the first line says where it serves
        match = re.fullmatch(r"image-completion: serving on (http://127\.0\.0\.1:\d+/) \(Ctrl-C to stop\)\n", line)
        assert match, line
        assert process.stderr.readline() == (
            f"image-completion: photos up to {default_max_pixels()} pixels (--max-pixels), 1 fill at a time and 4 waiting\n"
        )
        with urllib.request.urlopen(match.group(1) + "api/info", timeout=30) as response:
            assert json.loads(response.read())["methods"][0] == "model"
    finally:
        process.terminate()
        process.wait(timeout=30)
        process.stderr.close()


@pytest.mark.parametrize(
    "option, value, needle",
    [
        ("--port", "99999", "argument --port: must be a TCP port 0..65535 (0 picks a free one), got '99999'"),
        ("--port", "-1", "argument --port: must be a TCP port 0..65535"),
        ("--port", "http", "argument --port: must be a TCP port 0..65535"),
        ("--max-pixels", "0", "argument --max-pixels: must be a number of pixels 1.."),
        ("--max-pixels", "lots", "argument --max-pixels: must be a number of pixels 1.."),
        ("--max-pixels", "999999999999", "argument --max-pixels: must be a number of pixels 1.."),
    ],
)
def test_serve_options_out_of_range_are_usage_errors(capsys, option, value, needle):
    with pytest.raises(SystemExit) as exit_:
        main(["serve", option, value])
    assert exit_.value.code == 2
    err = capsys.readouterr().err
    assert err.splitlines()[-1].startswith(f"image-completion serve: error: {needle}")
    assert "Traceback" not in err


def test_serve_help_says_how_the_pixel_budget_is_sized(capsys):
    with pytest.raises(SystemExit):
        main(["serve", "--help"])
    help_text = " ".join(capsys.readouterr().out.split())
    assert "a quarter of this machine's memory at 128 bytes per pixel" in help_text
    assert f"here {default_max_pixels()}" in help_text
