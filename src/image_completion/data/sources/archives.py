"""Safe handling of tar members from downloaded archives.

An archive from the network is untrusted until proven otherwise: a member with an absolute
path, a ``..`` component, a link pointing outside the target, or a device/FIFO makes the whole
archive unusable (``UnsafeArchiveError``), rather than being silently skipped.
"""

from __future__ import annotations

import posixpath
import tarfile

from image_completion.data.sources import DownloadError


class UnsafeArchiveError(DownloadError):
    """An archive member that could write outside the target directory or create a device."""


def _escapes(path: str) -> bool:
    """True if a relative POSIX path leaves its root (absolute, or climbs above it with '..')."""
    if path.startswith("/") or path.startswith("\\") or (len(path) > 1 and path[1] == ":"):
        return True
    normal = posixpath.normpath(path)
    return normal == ".." or normal.startswith("../")


def check_member(member: tarfile.TarInfo, archive: str) -> None:
    """Raises ``UnsafeArchiveError`` (naming ``archive`` and the member) for an unsafe member."""
    name = member.name
    if _escapes(name) or ".." in name.replace("\\", "/").split("/"):
        raise UnsafeArchiveError(f"{archive}: unsafe member path {name!r} (absolute or with '..')")
    if member.ischr() or member.isblk() or member.isfifo() or member.isdev():
        raise UnsafeArchiveError(f"{archive}: member {name!r} is a device or FIFO")
    if member.issym():
        target = posixpath.join(posixpath.dirname(name), member.linkname)
        if member.linkname.startswith("/") or _escapes(target):
            raise UnsafeArchiveError(f"{archive}: symlink {name!r} -> {member.linkname!r} points outside the target")
    elif member.islnk():
        if _escapes(member.linkname):
            raise UnsafeArchiveError(f"{archive}: hard link {name!r} -> {member.linkname!r} points outside the target")
    elif not (member.isfile() or member.isdir()):
        raise UnsafeArchiveError(f"{archive}: member {name!r} has unsupported type {member.type!r}")
