"""Resumable, checksummed HTTP downloads (standard library only).

``ResumableReader`` streams a URL with HTTP Range resumption and a running sha256;
``download_file`` resumes a ``.part`` file across runs. ``check_url`` vets every URL.
"""

from __future__ import annotations

import hashlib
import http.client
import io
import logging
import os
import re
import socket
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

from image_completion.config import SHA256_PATTERN, url_file_name
from image_completion.data.sources import DownloadError

LOG = logging.getLogger(__name__)
USER_AGENT = "image-completion/0.1 (+https://github.com/; research data download)"
_SHA256 = re.compile(SHA256_PATTERN)
# Errors after which a reconnect with Range can succeed (a dropped or stalled connection).
_TRANSIENT = (
    http.client.IncompleteRead,
    http.client.RemoteDisconnected,
    ConnectionError,
    TimeoutError,
    socket.timeout,
    urllib.error.URLError,
    http.client.HTTPException,
    OSError,
)


class ChecksumError(DownloadError):
    """Downloaded bytes whose sha256 differs from the pinned one."""


class UrlError(DownloadError):
    """A URL that is not an http(s) URL of a plain file name; the message starts with its params key."""


def check_url(url: str, where: str) -> str:
    """Checks a download URL against ``config.url_file_name`` (the rule, defined once); returns its
    file name. ``where`` (the params key, e.g. ``data.cifar10.url``) starts the ``UrlError``'s message."""
    try:
        return url_file_name(url)
    except ValueError as err:
        raise UrlError(f"{where}: {err}") from None


def check_sha256(value: str, where: str) -> str:
    """Validates a pinned sha256 (64 lowercase hex digits)."""
    if not isinstance(value, str) or not _SHA256.match(value):
        raise DownloadError(f"{where}: {value!r} is not a sha256 (64 lowercase hex digits)")
    return value


class ResumableReader(io.RawIOBase):
    """Reads ``url`` from byte ``start`` on, reconnecting with HTTP Range after a dropped connection.

    ``digest`` (a hashlib object) is updated with every byte returned, so after the last read it
    holds the hash of bytes [0, end) when it was primed with bytes [0, start).
    """

    def __init__(self, url: str, *, start: int = 0, digest=None, retries: int = 5, timeout: float = 60.0, backoff: float = 1.0):
        super().__init__()
        check_url(url, "URL")  # urllib would also open file:// and ftp:// URLs
        self.url = url
        self.position = start
        self.digest = digest if digest is not None else hashlib.sha256()
        self.retries = retries
        self.timeout = timeout
        self.backoff = backoff
        self.total: int | None = None  # full size in bytes when the server says so
        self.connections = 0  # how many requests were made (tests check resumption)
        self._response = None

    def readable(self) -> bool:
        return True

    def _connect(self) -> None:
        headers = {"User-Agent": USER_AGENT}
        if self.position:
            headers["Range"] = f"bytes={self.position}-"
        request = urllib.request.Request(self.url, headers=headers)
        self.connections += 1
        try:
            response = urllib.request.urlopen(request, timeout=self.timeout)
        except urllib.error.HTTPError as err:
            if err.code == 416 and self.position and self.total in (None, self.position):
                # Range starts at the end: everything is already here.
                self.total = self.position
                self._response = io.BytesIO(b"")
                return
            if 400 <= err.code < 500:
                raise DownloadError(f"{self.url}: HTTP {err.code} {err.reason}") from None
            raise
        length = response.headers.get("Content-Length")
        if self.position and response.status == 206:
            match = re.match(r"bytes (\d+)-(\d+)/(\d+|\*)", response.headers.get("Content-Range", ""))
            if not match or int(match.group(1)) != self.position:
                response.close()
                raise DownloadError(
                    f"{self.url}: server answered Range {self.position}- with "
                    f"Content-Range {response.headers.get('Content-Range')!r}"
                )
            if match.group(3) != "*":
                self.total = int(match.group(3))
        else:
            if self.position:
                # The server ignored Range and sends everything again: skip what we already have.
                LOG.warning("%s: server ignored the Range request; re-reading %d bytes", self.url, self.position)
                to_skip = self.position
                while to_skip:
                    chunk = response.read(min(to_skip, 1 << 20))
                    if not chunk:
                        raise http.client.IncompleteRead(b"")
                    to_skip -= len(chunk)
            if length is not None:
                self.total = int(length)
        self._response = response

    def readinto(self, buffer) -> int:
        failures = 0
        while True:
            try:
                if self._response is None:
                    self._connect()
                n = self._response.readinto(buffer)
                if n == 0 and self.total is not None and self.position < self.total:
                    raise http.client.IncompleteRead(b"", self.total - self.position)
            except DownloadError:
                raise
            except _TRANSIENT as err:
                self._drop()
                failures += 1
                if failures > self.retries:
                    raise DownloadError(
                        f"{self.url}: connection failed {failures} times in a row at byte {self.position}: {err!r}"
                    ) from None
                LOG.warning(
                    "%s: connection dropped at byte %d (%r); resuming with Range (try %d of %d)",
                    self.url,
                    self.position,
                    err,
                    failures,
                    self.retries,
                )
                time.sleep(self.backoff * failures)
                continue
            if n:
                self.digest.update(memoryview(buffer)[:n])
                self.position += n
            return n

    def _drop(self) -> None:
        if self._response is not None:
            try:
                self._response.close()
            except OSError:
                pass
        self._response = None

    def close(self) -> None:
        self._drop()
        super().close()

    def drain(self, chunk: int = 1 << 20) -> None:
        """Reads (and hashes) whatever is left, so the digest covers the whole file."""
        buffer = bytearray(chunk)
        while self.readinto(buffer):
            pass


def download_file(url: str, dest: Path, sha256: str, *, retries: int = 5, timeout: float = 60.0, backoff: float = 1.0) -> Path:
    """Downloads ``url`` to ``dest`` through ``dest.part``, resuming a previous ``.part`` with Range.

    Returns ``dest`` once its sha256 equals ``sha256``; on a mismatch the ``.part`` file is
    deleted (it cannot be trusted to resume from) and ``ChecksumError`` is raised.
    """
    check_url(url, "URL")
    check_sha256(sha256, url)
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    if dest.exists():
        from image_completion.images import sha256_file  # noqa: PLC0415 - images imports PIL: loaded only when a cached file is checked

        if sha256_file(dest) == sha256:
            LOG.info("%s: already downloaded and verified", dest)
            return dest
        LOG.warning("%s: cached file does not match its sha256 any more; downloading again", dest)
        dest.unlink()
    part = dest.with_name(dest.name + ".part")
    digest = hashlib.sha256()
    start = 0
    if part.exists():
        with open(part, "rb") as fh:
            while block := fh.read(1 << 20):
                digest.update(block)
                start += len(block)
        LOG.info("%s: resuming a previous download at byte %d", url, start)
    reader = ResumableReader(url, start=start, digest=digest, retries=retries, timeout=timeout, backoff=backoff)
    buffer = bytearray(1 << 20)
    try:
        with open(part, "ab") as fh:
            while n := reader.readinto(buffer):
                fh.write(memoryview(buffer)[:n])
                fh.flush()  # a kill leaves a .part that holds exactly the hashed prefix
    finally:
        reader.close()
    got = digest.hexdigest()
    if got != sha256:
        part.unlink(missing_ok=True)
        raise ChecksumError(
            f"{url}: sha256 mismatch: expected {sha256}, got {got} ({reader.position} bytes); the download was deleted"
        )
    os.replace(part, dest)
    return dest
