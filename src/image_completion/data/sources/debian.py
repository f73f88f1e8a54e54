"""The default source: 68 real photographs shipped inside six Debian bookworm packages.

Photos listed in ``image_completion/data/sources/debian-photos.tsv`` are fetched with ``apt-get download``,
unpacked with ``dpkg-deb -x`` (nothing is installed) and checked against their sha256.
"""

from __future__ import annotations

import csv
import dataclasses
import fnmatch
import importlib.resources
import logging
import os
import posixpath
import subprocess
from collections.abc import Callable, Sequence
from pathlib import Path

from image_completion.data.sources import DownloadError, Photo, Skipped, SourceResult, safe_stem
from image_completion.images import sha256_file

LOG = logging.getLogger(__name__)
SOURCE = "debian"
TABLE_COLUMNS = ("package", "version", "path_in_package", "sha256", "width", "height", "sea_or_water")
# Licences from each package's debian/copyright (bookworm), used when a photo's own
# DEP-5 paragraph cannot be found in the unpacked package.
PACKAGE_LICENCES = {
    "plasma-workspace-wallpapers": "GPL-2+",
    "mate-backgrounds": "GPL-2+",
    "lomiri-wallpapers-16.04": "CC-BY-4.0, CC-BY-SA-4.0 or CC0-1.0 (per file, see its copyright file)",
    "lomiri-wallpapers-20.04": "CC-BY-SA-3.0",
    "lxqt-themes": "LGPL-2.1+",
    "tuxpaint-data": "GPL-2+",
}

# (package names, directory to put the .deb files in) -> {package: .deb path}; a package that
# could not be fetched is simply absent from the result (its photos then count as missing).
FetchDebs = Callable[[Sequence[str], Path], dict[str, Path]]


@dataclasses.dataclass(frozen=True)
class TableRow:
    package: str
    version: str
    path_in_package: str
    sha256: str
    width: int
    height: int
    sea_or_water: bool


def read_photo_table(path: str | Path | None = None) -> list[TableRow]:
    """Reads the photo table (default: the copy shipped in the package)."""
    if path is None:
        text = importlib.resources.files("image_completion.data.sources").joinpath("debian-photos.tsv").read_text()
        where = "image_completion/data/sources/debian-photos.tsv"
    else:
        text = Path(path).read_text()
        where = str(path)
    reader = csv.DictReader(text.splitlines(), delimiter="\t")
    if tuple(reader.fieldnames or ()) != TABLE_COLUMNS:
        raise DownloadError(f"{where}: bad columns {reader.fieldnames}; expected {list(TABLE_COLUMNS)}")
    rows = []
    for line_no, rec in enumerate(reader, start=2):
        if rec["sea_or_water"] not in ("yes", "no"):
            raise DownloadError(f"{where}, line {line_no}: sea_or_water must be yes or no, got {rec['sea_or_water']!r}")
        try:
            rows.append(
                TableRow(
                    rec["package"],
                    rec["version"],
                    rec["path_in_package"],
                    rec["sha256"].lower(),
                    int(rec["width"]),
                    int(rec["height"]),
                    rec["sea_or_water"] == "yes",
                )
            )
        except (TypeError, ValueError) as err:
            raise DownloadError(f"{where}, line {line_no}: {err}") from None
    if not rows:
        raise DownloadError(f"{where}: no photos listed")
    return rows


def _run(cmd: list[str], cwd: Path | None = None) -> subprocess.CompletedProcess:
    try:
        return subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, check=False)
    except FileNotFoundError:
        raise DownloadError(
            f"{cmd[0]} not found: data.source 'debian' needs a Debian-based system with apt and dpkg; "
            "use data.source skimage, folder, places365 or cifar10 elsewhere"
        ) from None


def apt_fetch_debs(packages: Sequence[str], dest: Path) -> dict[str, Path]:
    """Downloads the ``.deb`` files of ``packages`` into ``dest/debs`` with apt-get, rootless.

    A private ``Dir::State::Lists`` / ``Dir::Cache`` under ``dest/apt`` plus ``Debug::NoLocking``
    make this independent of the system's (possibly empty, root-owned) apt state; ``update``
    fills the private lists first. Packages are fetched one by one so one failure only loses
    that package's photos.
    """
    lists, cache, debs = dest / "apt" / "lists", dest / "apt" / "cache", dest / "debs"
    for d in (lists / "partial", cache / "archives" / "partial", debs):
        d.mkdir(parents=True, exist_ok=True)
    options = ["-q", "-o", f"Dir::State::Lists={lists}", "-o", f"Dir::Cache={cache}", "-o", "Debug::NoLocking=1"]
    if hasattr(os, "geteuid") and os.geteuid() == 0:
        options += ["-o", "APT::Sandbox::User=root"]  # the _apt user cannot write into our temp dir
    update = _run(["apt-get", *options, "update"])
    if update.returncode != 0:
        raise DownloadError(f"apt-get update failed (exit {update.returncode}): {update.stderr.strip()[-2000:]}")
    found = {}
    for package in packages:
        result = _run(["apt-get", *options, "download", package], cwd=debs)
        candidates = sorted(debs.glob(f"{package}_*.deb"))
        if result.returncode != 0 or not candidates:
            LOG.warning("apt-get download %s failed (exit %d): %s", package, result.returncode, result.stderr.strip()[-1000:])
            continue
        found[package] = candidates[-1]
    return found


def _dep5_paragraphs(text: str) -> list[dict[str, str]]:
    """Parses a machine-readable debian/copyright file into field dicts (continuation lines joined)."""
    paragraphs, current, key = [], {}, None
    for line in text.splitlines() + [""]:
        if not line.strip():
            if current:
                paragraphs.append(current)
            current, key = {}, None
        elif line[0] in " \t" and key:
            current[key] += "\n" + line.strip()
        elif ":" in line:
            key, value = line.split(":", 1)
            current[key.strip()] = value.strip()
    return paragraphs


def _dep5_lookup(copyright_text: str, path_in_package: str) -> tuple[str, str] | None:
    """(licence, copyright) of the last DEP-5 ``Files`` paragraph matching an installed file.

    ``Files`` patterns are relative to the source tree, not the install path, so a pattern
    matches when it matches a tail of the install path, or (without wildcards) its file name.
    """
    match = None
    name = posixpath.basename(path_in_package)
    for para in _dep5_paragraphs(copyright_text):
        if "Files" not in para or "License" not in para:
            continue
        for pattern in para["Files"].split():
            base = posixpath.basename(pattern)
            if (
                pattern == "*"
                or fnmatch.fnmatchcase(path_in_package, "*/" + pattern)
                or (not any(c in base for c in "*?[") and base == name)
            ):
                licence = para["License"].split("\n")[0].strip()
                match = (licence, " ".join(para.get("Copyright", "").split()))
                break
    return match


def _photo_name(row: TableRow) -> str:
    """Output stem: the file name, or for KDE wallpaper packages (.../Name/contents/images/WxH.jpg) the theme name."""
    parts = Path(row.path_in_package).parts
    stem = Path(row.path_in_package).stem
    if "contents" in parts:
        stem = parts[parts.index("contents") - 1]
    return "debian_" + safe_stem(stem)


def _output_names(table: list[TableRow]) -> list[str]:
    """The output stem of each row, refusing a table where two photos would get the same one."""
    names = [_photo_name(r) for r in table]
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise DownloadError(f"debian photo table: several photos map to the same output name: {duplicates}")
    return names


def _unpack(packages: list[str], debs: dict[str, Path], work: Path) -> tuple[dict[str, Path], dict[str, str]]:
    """Unpacks each fetched package under ``work/unpacked`` -> ({package: root}, {package: why it failed})."""
    unpacked: dict[str, Path] = {}
    unpack_errors: dict[str, str] = {}
    for package in packages:
        deb = debs.get(package)
        if deb is None:
            unpack_errors[package] = f"package {package} could not be downloaded"
            continue
        target = work / "unpacked" / package
        target.mkdir(parents=True, exist_ok=True)
        result = _run(["dpkg-deb", "-x", str(deb), str(target)])
        if result.returncode != 0:
            unpack_errors[package] = f"dpkg-deb -x {deb.name} failed: {result.stderr.strip()[-500:]}"
            continue
        unpacked[package] = target
    return unpacked, unpack_errors


def _verified_file(
    row: TableRow, name: str, unpacked: dict[str, Path], unpack_errors: dict[str, str]
) -> tuple[Path, str] | Skipped:
    """(file, sha256) of the row's photo in its unpacked package, or ``Skipped`` saying why not."""
    if row.package in unpack_errors:
        return Skipped(name, SOURCE, row.sha256, f"{row.path_in_package}: {unpack_errors[row.package]}")
    file = unpacked[row.package] / row.path_in_package.lstrip("/")
    if not file.is_file():
        return Skipped(name, SOURCE, row.sha256, f"{row.path_in_package}: not found in package {row.package}")
    got = sha256_file(file)
    if got != row.sha256:
        return Skipped(name, SOURCE, got, f"{row.path_in_package} ({row.package}): sha256 mismatch, expected {row.sha256}")
    return file, got


def _licence(row: TableRow, root: Path) -> tuple[str, str, Path | None]:
    """(licence, copyright holder, copyright file) of the row's photo, from its package's ``debian/copyright``.

    Falls back to ``PACKAGE_LICENCES`` and no holder when the file or a matching paragraph is missing.
    """
    copyright_file = root / "usr" / "share" / "doc" / row.package / "copyright"
    licence, holder = PACKAGE_LICENCES.get(row.package, "see the package's copyright file"), ""
    if not copyright_file.is_file():
        return licence, holder, None
    found = _dep5_lookup(copyright_file.read_text(errors="replace"), row.path_in_package)
    if found:
        licence, holder = found
    return licence, holder, copyright_file


def _verify_photos(
    table: list[TableRow],
    names: list[str],
    debs: dict[str, Path],
    unpacked: dict[str, Path],
    unpack_errors: dict[str, str],
    test_mode: str,
) -> tuple[list[Photo], list[Skipped], dict[str, Path]]:
    """Checks every photo of ``table`` -> (verified photos, dropped ones, copyright files to ship by name)."""
    photos, problems, licence_files = [], [], {}
    versions = {}
    for row, name in zip(table, names):
        checked = _verified_file(row, name, unpacked, unpack_errors)
        if isinstance(checked, Skipped):
            problems.append(checked)
            continue
        file, got = checked
        if row.package not in versions:  # one dpkg-deb call per package, not per photo
            versions[row.package] = _deb_version(debs[row.package])
        version = versions[row.package]
        licence, holder, copyright_file = _licence(row, unpacked[row.package])
        if copyright_file is not None:
            licence_files[f"{row.package}.copyright"] = copyright_file
        origin = f"Debian package `{row.package}` {version}, `{row.path_in_package}`"
        if holder:
            origin += f", (c) {holder}"
        photos.append(
            Photo(
                name=name,
                source=SOURCE,
                sha256=got,
                origin=origin,
                licence=licence,
                path=file,
                fixed_split="test" if (test_mode == "sea_or_water" and row.sea_or_water) else None,
                note="sea_or_water" if row.sea_or_water else "",
            )
        )
    return photos, problems, licence_files


def _report_problems(problems: list[Skipped], total: int, allow_missing: bool) -> None:
    """Raises ``DownloadError`` listing every dropped photo unless ``allow_missing``; then only logs them."""
    if problems and not allow_missing:
        listing = "\n  ".join(p.note for p in problems)
        raise DownloadError(
            f"{len(problems)} of {total} Debian photos are missing or failed verification "
            f"(set data.allow_missing: true to continue without them):\n  {listing}"
        )
    for p in problems:
        LOG.warning("dropping %s: %s", p.name, p.note)


def collect(
    work: Path, *, test_mode: str, allow_missing: bool, table: list[TableRow] | None = None, fetch: FetchDebs = apt_fetch_debs
) -> SourceResult:
    """Fetches, unpacks and verifies the photos of ``table`` (default: the shipped table).

    ``test_mode`` is ``data.debian_test``: ``sea_or_water`` fixes the sea/water photos as the
    test split, ``random`` leaves all photos to the random split. A missing or mismatching photo
    raises ``DownloadError`` naming every such photo, unless ``allow_missing`` (then it is
    returned as ``Skipped``).
    """
    assert test_mode in ("sea_or_water", "random"), test_mode  # config.DataParams.debian_test
    table = read_photo_table() if table is None else table
    names = _output_names(table)
    packages = sorted({r.package for r in table})
    debs = fetch(packages, work)
    unpacked, unpack_errors = _unpack(packages, debs, work)
    photos, problems, licence_files = _verify_photos(table, names, debs, unpacked, unpack_errors, test_mode)
    _report_problems(problems, len(table), allow_missing)
    attribution = (
        "Photographs shipped in Debian bookworm packages (fetched with `apt-get download`, unpacked with "
        "`dpkg-deb -x`, each verified against the sha256 in `image_completion/data/sources/debian-photos.tsv`). "
        "The licence of each photo is taken from its package's `debian/copyright` (copied to `licenses/`); "
        "redistribution of the derived PNGs must follow it."
    )
    return SourceResult(photos, problems, attribution, licence_files)


def _deb_version(deb: Path) -> str:
    result = _run(["dpkg-deb", "-f", str(deb), "Version"])
    return result.stdout.strip() if result.returncode == 0 else "(version unknown)"
