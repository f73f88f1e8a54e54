"""The errors of every boundary (files, params, the command line) and how an entry point ends on one.

One base type per kind of failure, which every module's own error derives from: ``InputError``
(a file or folder the user gave is missing or wrong: exit status 1) and ``ConfigError`` (a params
file or an option the params do not allow: exit status 2). ``run_main`` turns them, and ``OSError``
and ``MemoryError``, into one line ``PROG: error: ...`` naming the file or key, never a traceback.
A leaf module: it imports nothing of the package.
"""

from __future__ import annotations

import errno
import os
import stat
import sys
from pathlib import Path
from typing import BinaryIO, Callable, NoReturn


class ConfigError(ValueError):
    """A params file that does not match the schema, or a bad option: exit status 2 (``run_main``)."""


class InputError(Exception):
    """A file or folder a command reads is missing or wrong; the message starts with its path: exit
    status 1. Each module's error (``ImageError``, ``ManifestError``, ``StageError``...) derives from it."""


def open_regular(path: str | Path, error: type[Exception]) -> BinaryIO:
    """Opens ``path`` for binary reading; a named pipe, device or socket is ``error`` at once, never read.

    Opened non-blocking, so a pipe without a writer cannot hang the open; checked on the open
    file (fstat), so nothing can swap the file in between. A folder raises IsADirectoryError.
    """
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
    try:
        mode = os.fstat(fd).st_mode
        if stat.S_ISDIR(mode):
            raise IsADirectoryError(errno.EISDIR, os.strerror(errno.EISDIR), str(path))
        if not stat.S_ISREG(mode):
            raise error(f"{path}: not a regular file (a named pipe, device or socket)")
        os.set_blocking(fd, True)
        return os.fdopen(fd, "rb")
    except BaseException:
        os.close(fd)
        raise


def usage_error(prog: str, message: str) -> NoReturn:
    """Ends an entry point with one line ``PROG: error: MESSAGE`` on stderr and exit status 2
    (a usage error: a bad params file or a CLI value the params do not allow), not a traceback."""
    print(f"{prog}: error: {message}", file=sys.stderr)
    raise SystemExit(2)


QUOTE_LIMIT = 200  # characters of a user's value (or YAML text) an error message quotes


def clip(text: str, limit: int = QUOTE_LIMIT) -> str:
    """``text`` cut to ``limit`` characters, so no error line echoes a huge value."""
    return text if len(text) <= limit else f"{text[:limit]}... ({len(text)} characters)"


def one_line(err: BaseException) -> str:
    """The message of ``err`` on one line; an ``OSError`` as '<file>: <reason>'."""
    if isinstance(err, OSError) and err.filename is not None and err.strerror:
        return f"{err.filename}: {err.strerror}"
    if isinstance(err, MemoryError):
        return f"out of memory ({type(err).__name__}: {clip(str(err))})"
    return " ".join(str(err).split())


def run_main(main: Callable[[], int | None], prog: str) -> NoReturn:
    """Runs a stage's ``main`` and exits: 0, or one line ``PROG: error: ...`` with status 2 for a
    ``ConfigError`` and 1 for an ``InputError``, an ``OSError`` or a ``MemoryError``; no traceback."""
    try:
        status = main()
    except ConfigError as err:
        usage_error(prog, one_line(err))
    except (InputError, OSError, MemoryError) as err:
        print(f"{prog}: error: {one_line(err)}", file=sys.stderr)
        sys.exit(1)
    sys.exit(status or 0)
