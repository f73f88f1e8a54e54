"""How fast `image-completion serve` answers a well-behaved client under connection exhaustion.

    python -m image_completion.bench.server_load [--seconds 60] [--slow 110] [--idle 150] [--addresses 20]

Starts the server (default limits, classical methods) in its own process on 127.0.0.1, then
opens ``--slow`` clients that trickle one header byte every 5 s and ``--idle`` keep-alive
connections that send one request and stay silent, from ``--addresses`` loopback addresses
(127.0.0.2 on); each reconnects as soon as it is closed (reconnecting is free). Meanwhile a
well-behaved client on 127.0.0.1 sends GET / every 0.25 s. Prints its latency (median, max) and
its failures (no answer within 30 s, a reset, any status but 200). Linux only (127/8 sources).
"""

from __future__ import annotations

import argparse
import http.client
import multiprocessing
import re
import selectors
import socket
import statistics
import subprocess
import sys
import threading
import time

from image_completion.bench.machine import cpu_features, usable_cores

SERVER = """
from image_completion.app.fill import Filler
from image_completion.app.web.server import serve
serve(Filler(), port=0)
"""
TRICKLE_S = 5.0
SLOW_HEAD = b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: "


class Crowd:
    """The slow and idle clients, run by one process (not to share the measuring client's GIL)
    over non-blocking sockets; ``connections`` and ``stop`` are shared with the parent."""

    def __init__(self, port: int, slow: int, idle: int, addresses: int, connections, stop):
        self.port = port
        self.kinds = ["slow"] * slow + ["idle"] * idle
        self.sources = [f"127.0.0.{2 + i % addresses}" for i in range(len(self.kinds))]
        self.socks: list[socket.socket | None] = [None] * len(self.kinds)
        self.next_byte = [0.0] * len(self.kinds)
        self.sent = [0] * len(self.kinds)
        self.connections = connections
        self.selector = selectors.DefaultSelector()
        self.stop = stop

    def _open(self, i: int) -> None:
        try:
            sock = socket.create_connection(("127.0.0.1", self.port), timeout=1, source_address=(self.sources[i], 0))
            sock.setblocking(False)
            sock.send(SLOW_HEAD[:1] if self.kinds[i] == "slow" else b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        except OSError:
            return  # tried again on the next turn
        self.socks[i], self.sent[i], self.next_byte[i] = sock, 1, time.monotonic() + TRICKLE_S
        self.selector.register(sock, selectors.EVENT_READ, i)
        self.connections.value += 1

    def _close(self, i: int) -> None:
        self.selector.unregister(self.socks[i])
        self.socks[i].close()
        self.socks[i] = None

    def _turn(self) -> None:
        now = time.monotonic()
        for i, sock in enumerate(self.socks):
            if sock is None:
                self._open(i)
            elif self.kinds[i] == "slow" and now >= self.next_byte[i]:
                byte = SLOW_HEAD[self.sent[i] : self.sent[i] + 1] or b"a"
                try:
                    sock.send(byte)
                except OSError:
                    self._close(i)
                    continue
                self.sent[i] += 1
                self.next_byte[i] = now + TRICKLE_S
        for key, _ in self.selector.select(timeout=0.1):
            try:
                data = key.fileobj.recv(65536)
            except BlockingIOError:
                continue
            except OSError:
                data = b""
            if not data:  # closed by the server: reconnect on the next turn
                self._close(key.data)

    def run(self) -> None:
        while not self.stop.is_set():
            self._turn()
        for i, sock in enumerate(self.socks):
            if sock is not None:
                self._close(i)


def _crowd(*args) -> None:
    Crowd(*args).run()


def good_client(port: int, seconds: float) -> tuple[list[float], list[str]]:
    """GET / every 0.25 s for ``seconds``: the latencies of 200 answers, and what went wrong otherwise."""
    latencies, failures = [], []
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        started = time.monotonic()
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30, source_address=("127.0.0.1", 0))
        try:
            conn.request("GET", "/", headers={"Host": f"127.0.0.1:{port}"})
            response = conn.getresponse()
            response.read()
            if response.status == 200:
                latencies.append(time.monotonic() - started)
            else:
                failures.append(f"status {response.status}")
        except OSError as err:
            failures.append(type(err).__name__)
        finally:
            conn.close()
        time.sleep(max(0.0, 0.25 - (time.monotonic() - started)))
    return latencies, failures


def start_server() -> tuple[subprocess.Popen, int]:
    process = subprocess.Popen([sys.executable, "-c", SERVER], stderr=subprocess.PIPE, text=True)
    line = process.stderr.readline()
    match = re.search(r"serving on http://127\.0\.0\.1:(\d+)/", line)
    if not match:
        process.kill()
        raise SystemExit(f"server_load: the server did not start: {line.strip()}")
    threading.Thread(target=process.stderr.read, daemon=True).start()  # drain the log
    return process, int(match.group(1))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m image_completion.bench.server_load", description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=60.0, help="how long the load lasts (default 60)")
    parser.add_argument("--slow", type=int, default=110, help="clients trickling a header byte every 5 s (default 110)")
    parser.add_argument("--idle", type=int, default=150, help="idle keep-alive connections (default 150)")
    parser.add_argument("--addresses", type=int, default=20, help="loopback addresses they come from (default 20)")
    args = parser.parse_args(argv)
    if not (args.seconds > 0 and args.slow >= 0 and args.idle >= 0 and 1 <= args.addresses <= 250):
        parser.error("--seconds must be above 0, --slow and --idle 0 or more, --addresses 1..250 (127.0.0.2 on)")
    process, port = start_server()
    connections, stop = multiprocessing.Value("q", 0), multiprocessing.Event()
    loader = multiprocessing.Process(target=_crowd, args=(port, args.slow, args.idle, args.addresses, connections, stop))
    try:
        loader.start()
        time.sleep(min(10.0, args.seconds / 4))  # the crowd is in place before measuring
        before = connections.value
        latencies, failures = good_client(port, args.seconds)
        reconnects = connections.value - before
    finally:
        stop.set()
        loader.join(10)
        process.terminate()
        process.wait(30)
    print(f"CPU: {cpu_features()['model']}, {usable_cores()} usable cores")
    print(f"load: {args.slow} slow-header clients + {args.idle} idle keep-alive connections from {args.addresses} addresses")
    print(f"  their connections opened during the {args.seconds:g} s measured: {reconnects}")
    timing = f", median {statistics.median(latencies) * 1000:.0f} ms, max {max(latencies) * 1000:.0f} ms" if latencies else ""
    print(f"well-behaved GET /: {len(latencies)} answered 200{timing}")
    print(f"  failures: {len(failures)}" + (f" ({', '.join(sorted(set(failures)))})" if failures else ""))
    return 0 if latencies and not failures else 1


if __name__ == "__main__":
    sys.exit(main())
