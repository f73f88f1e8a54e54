"""The HTTP side of the local server: waitress (a pure-Python WSGI server) with its settings, plus
what it lacks: connection limits per address and in all that make room by closing idle or
half-sent connections (``Door``), deadlines for a request's head, its whole and a silent
kept-alive connection, a 400 for a head with bare LFs, a gentle close (an early answer reaches a
client still sending), a stop that answers the requests in flight, and waitress's own error
answers as one-line JSON with the security headers.
Why waitress: docs/architecture.md, section "The local web page".
"""

from __future__ import annotations

import collections
import dataclasses
import json
import logging
import re
import socket
import threading
import time

from waitress import create_server, wasyncore
from waitress.channel import HTTPChannel
from waitress.server import BaseWSGIServer
from waitress.task import ErrorTask
from waitress.utilities import BadRequest

from image_completion.app.web.guard import SECURITY_HEADERS


@dataclasses.dataclass(frozen=True)
class Transport:
    """Connection limits and timeouts (the rules: ``Door`` and ``Channel``)."""

    backlog: int = 1024  # connections the kernel queues before anyone is refused
    max_connections: int = 200  # open at once; beyond it an idle or half-sent one is closed, else 503
    per_address: int = 16  # open at once from one client address; the same rule within it
    header_timeout: float = 5.0  # seconds to receive a request's whole head, from its first byte
    keepalive_timeout: float = 5.0  # seconds a connection with no request under way may stay silent
    idle_timeout: int = 15  # seconds a request (its body) may stay silent before it is closed
    request_timeout: float = 120.0  # seconds to receive one whole request (head and body)
    linger_s: float = 5.0  # after the last answer, seconds to read and drop what the client still sends
    max_body: int = 256 * 1024 * 1024
    max_header: int = 64 * 1024

    def waitress_settings(self, threads: int) -> dict:
        return dict(
            threads=threads,
            backlog=self.backlog,
            connection_limit=self.max_connections + Door.REFUSING + 16,  # never reached: Door decides first
            channel_timeout=self.idle_timeout,
            cleanup_interval=max(1, self.idle_timeout // 3),
            max_request_body_size=self.max_body,
            max_request_header_size=self.max_header,
            # a response waits in a temp file for a slow reader instead of blocking a thread
            outbuf_high_watermark=2 * self.max_body,
            ident="image-completion",
            expose_tracebacks=False,
            log_socket_errors=False,
            asyncore_use_poll=True,
            clear_untrusted_proxy_headers=True,
        )


class _JsonErrorTask(ErrorTask):
    """waitress's own 4xx answers, as ``{"error": "<one line>"}`` with the security headers."""

    def execute(self):
        error = self.request.error
        body = json.dumps({"error": " ".join(f"{error.reason}: {error.body}".split())}).encode()
        self.status = f"{error.code} {error.reason}"
        self.response_headers.extend([("Content-Type", "application/json"), *SECURITY_HEADERS])
        self.set_close_on_finish()
        self.content_length = len(body)
        self.write(body)


_BARE_LF = re.compile(rb"(?<!\r)\n")


class Channel(HTTPChannel):
    """A connection with deadlines (``Transport``'s timeouts; one that runs out is cut: closed
    at once), a 400 for a request head with a bare LF, and a gentle close: after the answer,
    what the client still sends is read and dropped for up to ``linger_s`` seconds, so an
    early answer (431, 413) reaches it instead of a reset."""

    transport: Transport  # set by Door for its server
    error_task_class = _JsonErrorTask
    request_started = 0.0
    linger_until: float | None = None
    cut = False
    refused = False  # answered 503 by the Door

    def stage(self) -> str:
        """Its stage: "done" (closing), "idle" (no request under way), "head" (a head arriving) or "busy"."""
        if self.cut or self.linger_until is not None:
            return "done"
        if self.requests or self.total_outbufs_len:  # an answer still being made or sent
            return "busy"
        if self.will_close or self.close_when_flushed:
            return "done"
        if self.request is None:
            return "idle"
        return "busy" if self.request.headers_finished else "head"

    def since(self) -> float:
        """Monotonic time of the request's first byte (stage "head"), else of the last byte read or sent."""
        if self.request is not None:
            return self.request_started
        return time.monotonic() - (time.time() - self.last_activity)

    def cut_off(self) -> None:
        self.cut = self.will_close = True

    def received(self, data):
        if self.request is None:  # these bytes start a new request
            self.request_started = time.monotonic()
        result = super().received(data)
        head = self.request
        if (
            head is not None
            and not head.headers_finished
            and _BARE_LF.search(head.header_plus, max(0, len(head.header_plus) - len(data) - 1))
        ):
            self._refuse_head(head)
        return result

    def _refuse_head(self, head) -> None:
        """A head with a bare LF never ends (waitress waits for CRLF CRLF): 400 now."""
        head.parse_header(b"GET / HTTP/1.0\r\n")
        head.error = BadRequest("request lines must end in CRLF, not a bare LF")
        head.completed = head.headers_finished = True
        with self.requests_lock:
            self.requests.append(head)
            self.request = None
            if len(self.requests) == 1:
                self.server.add_task(self)

    def readable(self):
        if self.linger_until is not None:
            if time.monotonic() > self.linger_until:
                super().handle_close()
                return False
            return True
        stage, waited = self.stage(), time.monotonic() - self.since()
        if (stage == "head" and waited > self.transport.header_timeout) or (
            stage == "idle" and waited > self.transport.keepalive_timeout
        ):
            self.cut_off()
            return False
        if self.request is not None and not self.requests and waited > self.transport.request_timeout:
            self.will_close = True
            return False
        return super().readable()

    def writable(self):
        return self.linger_until is None and super().writable()

    def handle_read(self):
        if self.linger_until is None:
            return super().handle_read()
        self.recv(self.adj.recv_bytes)  # dropped; at the end of input recv() calls handle_close
        return None

    def handle_close(self):
        if self.cut or self.linger_until is not None or not self.connected:
            return super().handle_close()
        try:
            self.socket.shutdown(socket.SHUT_WR)  # the answer is sent: tell the client
        except OSError:
            return super().handle_close()
        self.linger_until = time.monotonic() + self.transport.linger_s
        return None


def _host(channel) -> str:
    return channel.addr[0] if isinstance(channel.addr, tuple) else str(channel.addr)


def _refusal(message: str) -> bytes:
    """A whole 503 answer with ``{"error": message}``, the security headers and Connection: close."""
    body = json.dumps({"error": message}).encode()
    headers = [
        ("Content-Type", "application/json"),
        ("Content-Length", str(len(body))),
        ("Connection", "close"),
        ("Retry-After", "1"),
        ("Server", "image-completion"),
        *SECURITY_HEADERS,
    ]
    head = "HTTP/1.1 503 Service Unavailable\r\n" + "".join(f"{k}: {v}\r\n" for k, v in headers) + "\r\n"
    return head.encode("latin-1") + body


class Door:
    """Admits each new connection within ``per_address`` connections from one address and
    ``max_connections`` in all, making room when it can:

    - an address at its limit loses its own connection that is closing, else the one idle
      longest, else the one whose request head started first (idle or started at least
      ``SETTLE_S`` ago: a younger one's request may be on its way);
    - a full server does the same, of any age, to the address holding the most connections,
      if it holds more than the newcomer's address would (so a busy crowd cannot lock out a
      client with few connections).

    Otherwise (every such connection is busy with a request) the new one is answered 503 and
    closed gently; at most ``REFUSING`` at once, the oldest is cut beyond."""

    RANK = {"done": 0, "idle": 1, "head": 2}
    SETTLE_S = 1.0
    REFUSING = 64

    def __init__(self, transport: Transport, channels: dict):
        self.transport = transport
        self.channels = channels  # the event loop's map: every listener's connections
        self.channel_class = type("Channel", (Channel,), {"transport": transport})
        self._refused: list = []

    def __call__(self, server, sock, addr, adj, map=None):
        channel = self.channel_class(server, sock, addr, adj, map=map)
        open_ = [c for c in self.channels.values() if isinstance(c, HTTPChannel) and not (c.cut or c.refused)]
        open_.remove(channel)
        by_host = collections.Counter(_host(c) for c in open_)
        host, t = _host(channel), self.transport
        if by_host[host] >= t.per_address:
            settled = time.monotonic() - self.SETTLE_S
            own = [c for c in open_ if _host(c) == host and (c.stage() == "done" or c.since() < settled)]
            if not self._cut_one(own):
                self._refuse(channel, f"server busy: already {t.per_address} connections from {host}; retry in 1 s")
                return channel
            by_host[host] -= 1
        if sum(by_host.values()) >= t.max_connections:
            heavy = [c for c in open_ if by_host[_host(c)] > by_host[host] + 1]
            if not self._cut_one(heavy, key=lambda c: -by_host[_host(c)]):
                self._refuse(channel, f"server busy: already {t.max_connections} connections; retry in 1 s")
        return channel

    def _cut_one(self, group: list, key=lambda c: 0) -> bool:
        """Cuts the first of ``group`` not busy by (``key``, closing/idle/head, oldest); False if none."""
        candidates = [c for c in group if not c.cut and c.stage() in self.RANK]
        if candidates:
            min(candidates, key=lambda c: (key(c), self.RANK[c.stage()], c.since())).cut_off()
        return bool(candidates)

    def _refuse(self, channel, message: str) -> None:
        channel.refused = True
        channel.write_soon(_refusal(message))
        channel.close_when_flushed = True
        self._refused = [c for c in self._refused if c.connected] + [channel]
        if len(self._refused) > self.REFUSING:
            self._refused.pop(0).cut_off()


class Server:
    """``app`` served on ``host:port`` (0: a free port) by ``threads`` threads until ``shutdown()``
    or Ctrl-C. Requests are read and answers written by one event loop, so a slow client holds
    no thread; a thread runs the app once a whole request has arrived."""

    def __init__(self, app, host: str, port: int, transport: Transport, threads: int, stop_grace_s: float = 3.0):
        self.app = app
        self.stop_grace_s = stop_grace_s
        self._map: dict = {}
        self._stopping = threading.Event()
        self._stopped = threading.Event()
        self._server = create_server(app, map=self._map, host=host, port=port, **transport.waitress_settings(threads))
        self.door = Door(transport, self._map)
        for listener in self._listeners():
            listener.channel_class = self.door
        logging.getLogger("waitress.queue").setLevel(logging.ERROR)  # the app answers 503 itself

    def _listeners(self) -> list[BaseWSGIServer]:
        return [d for d in self._map.values() if isinstance(d, BaseWSGIServer)]

    @property
    def url(self) -> str:
        listener = self._listeners()[0]
        host = listener.effective_host
        return f"http://[{host}]:{listener.effective_port}/" if ":" in host else f"http://{host}:{listener.effective_port}/"

    def serve_forever(self, poll_s: float = 0.2) -> None:
        try:
            while not self._stopping.is_set():
                wasyncore.loop(timeout=poll_s, use_poll=True, map=self._map, count=1)
        finally:
            self._stop()

    def _stop(self) -> None:
        """Stops accepting; the app's ``close`` answers the requests in flight (the server's 503),
        and the loop runs up to ``stop_grace_s`` more seconds to send those answers."""
        try:
            for listener in self._listeners():
                listener.accepting = False
            if hasattr(self.app, "close"):
                self.app.close()
            deadline = time.monotonic() + self.stop_grace_s
            while time.monotonic() < deadline and any(
                isinstance(c, HTTPChannel) and (c.requests or c.total_outbufs_len) for c in self._map.values()
            ):  # a request being answered, or an answer being sent
                wasyncore.loop(timeout=0.05, use_poll=True, map=self._map, count=1)
        finally:
            self._server.task_dispatcher.shutdown(timeout=1)
            wasyncore.close_all(self._map)
            self._stopped.set()

    def shutdown(self, timeout: float = 10.0) -> None:
        """Stops ``serve_forever`` running in another thread, and waits until it has."""
        self._stopping.set()
        self._stopped.wait(timeout)

    def server_close(self) -> None:
        if not self._stopped.is_set():  # never served: only the sockets to close
            wasyncore.close_all(self._map)
            self._server.task_dispatcher.shutdown(timeout=1)
