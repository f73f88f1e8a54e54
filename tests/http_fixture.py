"""A loopback HTTP server for tests of code that downloads: in-memory files, Range requests,
and injected faults (a connection dropped after N body bytes).

    with FixtureServer() as server:
        server.add("/a.tar", data, drop_after=[1000])   # 1st request dies after 1000 bytes
        url = server.url("/a.tar")
        ...
        server.requests   # [(path, Range header or None), ...]

Or use the ``http_server`` pytest fixture (registered for every test module by ``tests/conftest.py``).
"""

from __future__ import annotations

import re
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: "_Server"

    def log_message(self, *args):  # keep pytest output clean
        pass

    def do_GET(self):  # noqa: N802 - http.server API
        fixture = self.server.fixture
        range_header = self.headers.get("Range")
        with fixture.lock:
            fixture.requests.append((self.path, range_header))
            entry = fixture.files.get(self.path)
            drop = entry["drop_after"].pop(0) if entry and entry["drop_after"] else None
        if entry is None:
            self.send_error(404, "not found")
            return
        data = entry["data"]
        start = 0
        match = re.fullmatch(r"bytes=(\d+)-", range_header or "")
        if match and entry["ranges"]:
            start = int(match.group(1))
            if start >= len(data):
                self.send_response(416)
                self.send_header("Content-Range", f"bytes */{len(data)}")
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            self.send_response(206)
            self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
        else:
            self.send_response(200)
        body = data[start:]
        self.send_header("Content-Type", "application/octet-stream")
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Accept-Ranges", "bytes" if entry["ranges"] else "none")
        self.end_headers()
        if drop is not None:
            # Send only part of the promised body, then cut the connection.
            self.wfile.write(body[:drop])
            self.wfile.flush()
            self.close_connection = True
            return
        self.wfile.write(body)


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    fixture: "FixtureServer"


class FixtureServer:
    """Serves registered byte strings on 127.0.0.1 (random port) from a background thread."""

    def __init__(self):
        self.files: dict[str, dict] = {}
        self.requests: list[tuple[str, str | None]] = []
        self.lock = threading.Lock()
        self._server = _Server(("127.0.0.1", 0), _Handler)
        self._server.fixture = self
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True)

    def add(self, path: str, data: bytes, *, drop_after: list[int] | None = None, ranges: bool = True) -> str:
        """Serves ``data`` at ``path``; request k (0-based) is cut after ``drop_after[k]`` body bytes.

        ``ranges=False`` makes the server ignore Range headers (answers 200 with everything).
        Returns the URL.
        """
        with self.lock:
            self.files[path] = {"data": bytes(data), "drop_after": list(drop_after or []), "ranges": ranges}
        return self.url(path)

    def url(self, path: str) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}{path}"

    def start(self) -> "FixtureServer":
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def __enter__(self) -> "FixtureServer":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


@pytest.fixture
def http_server():
    """A started ``FixtureServer``, stopped after the test."""
    with FixtureServer() as server:
        yield server
