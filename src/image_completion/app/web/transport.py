"""The HTTP side of the local server: waitress (a pure-Python WSGI server) with its settings, plus
three small additions: a deadline for receiving one whole request, a gentle close (an early
answer reaches a client still sending), and waitress's own error answers (unparsable request,
bad Content-Length, oversized headers or body) as one-line JSON with the security headers.
Why waitress: docs/architecture.md, section "The local web page".
"""

from __future__ import annotations

import dataclasses
import json
import logging
import socket
import threading
import time

from waitress import create_server, wasyncore
from waitress.channel import HTTPChannel
from waitress.server import BaseWSGIServer
from waitress.task import ErrorTask

from image_completion.app.web.guard import SECURITY_HEADERS


@dataclasses.dataclass(frozen=True)
class Transport:
    """Connection limits and timeouts."""

    backlog: int = 1024  # connections the kernel queues before anyone is refused
    connection_limit: int = 100  # open connections; more wait in the backlog
    request_timeout: float = 120.0  # seconds to receive one whole request (headers and body)
    idle_timeout: int = 15  # seconds a connection may stay silent before it is closed
    linger_s: float = 5.0  # after the last answer, seconds to read and drop what the client still sends
    max_body: int = 256 * 1024 * 1024
    max_header: int = 64 * 1024

    def waitress_settings(self, threads: int) -> dict:
        return dict(
            threads=threads,
            backlog=self.backlog,
            connection_limit=self.connection_limit,
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


def _channel_class(request_timeout: float, linger_s: float) -> type[HTTPChannel]:
    class Channel(HTTPChannel):
        """Closes a connection that takes longer than ``request_timeout`` to send one request, and
        closes gently: after the answer, what the client still sends is read and dropped for up to
        ``linger_s`` seconds, so an early answer (431, 413) reaches it instead of a reset."""

        error_task_class = _JsonErrorTask
        request_started = 0.0
        linger_until: float | None = None

        def received(self, data):
            if self.request is None:  # these bytes start a new request
                self.request_started = time.monotonic()
            return super().received(data)

        def readable(self):
            if self.linger_until is not None:
                if time.monotonic() > self.linger_until:
                    super().handle_close()
                    return False
                return True
            if self.request is not None and not self.requests and time.monotonic() - self.request_started > request_timeout:
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
            if self.linger_until is not None or not self.connected:
                return super().handle_close()
            try:
                self.socket.shutdown(socket.SHUT_WR)  # the answer is sent: tell the client
            except OSError:
                return super().handle_close()
            self.linger_until = time.monotonic() + linger_s
            return None

    return Channel


class Server:
    """``app`` served on ``host:port`` (0: a free port) by ``threads`` threads until ``shutdown()``
    or Ctrl-C. Requests are read and answers written by one event loop, so a slow client holds
    no thread; a thread runs the app once a whole request has arrived."""

    def __init__(self, app, host: str, port: int, transport: Transport, threads: int):
        self.app = app
        self._map: dict = {}
        self._stopping = threading.Event()
        self._stopped = threading.Event()
        self._server = create_server(app, map=self._map, host=host, port=port, **transport.waitress_settings(threads))
        channel = _channel_class(transport.request_timeout, transport.linger_s)
        for listener in self._listeners():
            listener.channel_class = channel
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
            self._server.task_dispatcher.shutdown(timeout=5)
            wasyncore.close_all(self._map)
            if hasattr(self.app, "close"):
                self.app.close()
            self._stopped.set()

    def shutdown(self, timeout: float = 10.0) -> None:
        """Stops ``serve_forever`` running in another thread, and waits until it has."""
        self._stopping.set()
        self._stopped.wait(timeout)

    def server_close(self) -> None:
        if not self._stopped.is_set():  # never served: only the sockets to close
            wasyncore.close_all(self._map)
            self._server.task_dispatcher.shutdown(timeout=1)
