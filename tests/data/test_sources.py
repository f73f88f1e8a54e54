"""Sources of the download stage: safe archives, resumable HTTP, and each source against local data.

Online sources run against tests/http_fixture.py (a server on 127.0.0.1) serving small
archives built here; the Debian source gets small .deb files built with ``dpkg-deb -b``.
"""

import os
import pickle
import shutil
import subprocess
import tarfile

import numpy as np
import pytest
from PIL import Image

from conftest import cifar_archive, jpeg_bytes, make_tar, sha
from image_completion.data.sources import DownloadError, cifar10, debian, folder, places365, skimage_photos
from image_completion.data.sources.archives import UnsafeArchiveError, check_member
from image_completion.data.sources.http import ChecksumError, ResumableReader, UrlError, check_url, download_file

FAST = {"retries": 3, "timeout": 5.0, "backoff": 0.0}


# ----------------------------------------------------------------------------- archives


def _info(name, kind=tarfile.REGTYPE, linkname=""):
    info = tarfile.TarInfo(name)
    info.type = kind
    info.linkname = linkname
    return info


@pytest.mark.parametrize(
    "info, message",
    [
        (_info("/etc/passwd"), "absolute"),
        (_info("a/../../x"), "'..'"),
        (_info("a/../b"), "'..'"),
        (_info("link", tarfile.SYMTYPE, "/etc/passwd"), "symlink"),
        (_info("a/link", tarfile.SYMTYPE, "../../outside"), "symlink"),
        (_info("hard", tarfile.LNKTYPE, "../outside"), "hard link"),
        (_info("dev", tarfile.CHRTYPE), "device"),
        (_info("blk", tarfile.BLKTYPE), "device"),
        (_info("fifo", tarfile.FIFOTYPE), "device or FIFO"),
    ],
)
def test_unsafe_members_are_rejected(info, message):
    with pytest.raises(UnsafeArchiveError, match=message) as err:
        check_member(info, "arch.tar")
    assert str(err.value).startswith("arch.tar: ")


def test_safe_members_pass():
    for info in (
        _info("a/b.jpg"),
        _info("a", tarfile.DIRTYPE),
        _info("a/l", tarfile.SYMTYPE, "b.jpg"),
        _info("a/h", tarfile.LNKTYPE, "a/b.jpg"),
    ):
        check_member(info, "arch.tar")


def test_reader_resumes_after_dropped_connections(http_server):
    data = bytes(range(256)) * 200  # 51200 bytes
    url = http_server.add("/f.bin", data, drop_after=[10000, 7])
    reader = ResumableReader(url, **FAST)
    got = reader.read()
    assert got == data and reader.digest.hexdigest() == sha(data)
    assert reader.connections == 3
    assert [r for _, r in http_server.requests] == [None, "bytes=10000-", "bytes=10007-"]


def test_reader_gives_up_after_retries(http_server):
    url = http_server.add("/f.bin", b"x" * 5000, drop_after=[100, 0, 0, 0, 0, 0])
    with pytest.raises(DownloadError, match="failed 4 times in a row at byte 100"):
        ResumableReader(url, **FAST).read()


def test_reader_copes_with_server_ignoring_range(http_server):
    data = b"0123456789" * 1000
    url = http_server.add("/f.bin", data, drop_after=[3000], ranges=False)
    reader = ResumableReader(url, **FAST)
    assert reader.read() == data and reader.digest.hexdigest() == sha(data)


def test_reader_404_is_a_clear_error(http_server):
    with pytest.raises(DownloadError, match="HTTP 404"):
        ResumableReader(http_server.url("/missing"), **FAST).read()


def test_download_file_resumes_a_part_file_across_runs(http_server, tmp_path):
    data = np.random.default_rng(0).integers(0, 256, 30000, dtype=np.uint8).tobytes()
    url = http_server.add("/a.tar.gz", data)
    dest = tmp_path / "a.tar.gz"
    (tmp_path / "a.tar.gz.part").write_bytes(data[:12345])  # left by an interrupted run
    assert download_file(url, dest, sha(data), **FAST) == dest
    assert dest.read_bytes() == data and not (tmp_path / "a.tar.gz.part").exists()
    assert http_server.requests == [("/a.tar.gz", "bytes=12345-")]
    download_file(url, dest, sha(data), **FAST)  # verified file present: no new request
    assert len(http_server.requests) == 1


def test_download_file_complete_part_gets_416(http_server, tmp_path):
    data = b"abc" * 1000
    url = http_server.add("/a", data)
    (tmp_path / "a.part").write_bytes(data)
    download_file(url, tmp_path / "a", sha(data), **FAST)
    assert (tmp_path / "a").read_bytes() == data


def test_download_file_checksum_mismatch_deletes_everything(http_server, tmp_path):
    url = http_server.add("/a", b"corrupted content")
    with pytest.raises(ChecksumError, match="sha256 mismatch"):
        download_file(url, tmp_path / "a", sha(b"the real content"), **FAST)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(
    "url, name",
    [
        ("https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz", "cifar-10-python.tar.gz"),
        ("HTTP://127.0.0.1:8080/a/b%20c.tar?x=1#y", "b c.tar"),
        ("http://[::1]/data.tar", "data.tar"),
    ],
)
def test_check_url_accepts_http_urls_and_gives_the_file_name(url, name):
    assert check_url(url, "data.x.url") == name


@pytest.mark.parametrize(
    "url, message",
    [
        ("https://host/data/..", "'..' path segment"),
        ("https://host/data/../x.tar", "'..' path segment"),
        ("https://host/data/%2E%2e", "'..' path segment"),
        ("https://host/data/", "plain file name"),
        ("https://host/data/.", "plain file name"),
        ("https://host", "plain file name"),
        ("https://host/a%2Fb", "plain file name"),
        ("https://host/a%5Cb", "plain file name"),
        ("file:///etc/passwd", "only http and https"),
        ("ftp://host/x.tar", "only http and https"),
        ("x.tar", "only http and https"),
        ("http:///x.tar", "names no host"),
        ("http://host:99999/x.tar", "not a valid URL"),
        ("http://host/x y.tar", "whitespace or control"),
        ("http://host/x.tar\n", "whitespace or control"),
        ("", "expected an http or https URL"),
        (None, "expected an http or https URL"),
    ],
)
def test_check_url_refuses_everything_else_naming_the_key(url, message):
    with pytest.raises(UrlError, match=message) as err:
        check_url(url, "data.x.url")
    assert str(err.value).startswith("data.x.url: ") and "\n" not in str(err.value)


def test_readers_refuse_non_http_urls(tmp_path):
    with pytest.raises(UrlError, match="only http and https"):
        ResumableReader((tmp_path / "f").as_uri())
    with pytest.raises(UrlError, match="'..' path segment"):
        download_file("http://127.0.0.1:9/a/..", tmp_path / "a", "0" * 64)
    assert list(tmp_path.iterdir()) == []


def test_download_file_rejects_malformed_checksum(tmp_path):
    with pytest.raises(DownloadError, match="not a sha256"):
        download_file("http://127.0.0.1:9/a", tmp_path / "a", "abc")


# ----------------------------------------------------------------------------- places365


def places_archive(n_beach=3, extra_members=()) -> tuple[bytes, dict]:
    members = [("places365_standard/train.txt", b"train/beach/00000001.jpg\n")]
    for i in range(n_beach):
        members.append((f"places365_standard/train/beach/{i:08d}.jpg", jpeg_bytes(10 + i)))
    members += [
        ("places365_standard/train/forest/00000001.jpg", jpeg_bytes(100)),
        ("places365_standard/train/coast/00000001.jpg", jpeg_bytes(150)),
        ("places365_standard/val/coast/Places365_val_00000007.jpg", jpeg_bytes(200)),
        ("places365_standard/train/field/wild/00000001.jpg", jpeg_bytes(220)),
        *extra_members,
    ]
    return make_tar(members), dict(members)


def test_places365_keeps_only_chosen_categories(http_server, tmp_path):
    data, members = places_archive()
    url = http_server.add("/p.tar", data)
    result = places365.collect(url, sha(data), ["beach", "coast", "field/wild"], 2, tmp_path, **FAST)
    names = sorted(p.name for p in result.photos)
    assert names == [
        "places365_beach_train_00000000",
        "places365_beach_train_00000001",
        "places365_coast_train_00000001",
        "places365_coast_val_Places365_val_00000007",
        "places365_field_wild_train_00000001",
    ]
    for photo in result.photos:
        member = photo.origin.split("`")[1]
        assert photo.path.read_bytes() == members[member] and photo.sha256 == sha(members[member])
    assert sorted(p.name for p in (tmp_path / "places365").iterdir()) == sorted(n + ".jpg" for n in names)
    assert "Zhou" in result.attribution


def test_places365_resumes_the_stream_after_a_drop(http_server, tmp_path):
    data, _ = places_archive(n_beach=6)
    url = http_server.add("/p.tar", data, drop_after=[len(data) // 3, len(data) // 4])
    result = places365.collect(url, sha(data), ["beach"], 100, tmp_path, **FAST)
    assert len(result.photos) == 6
    ranges = [r for _, r in http_server.requests]
    assert ranges[0] is None and len(ranges) == 3 and all(r.startswith("bytes=") for r in ranges[1:])


@pytest.mark.parametrize("damage", ["corrupted", "truncated"])
def test_places365_discards_data_of_a_bad_stream(http_server, tmp_path, damage):
    data, _ = places_archive()
    if damage == "corrupted":  # same size, one byte changed inside an image
        bad = bytearray(data)
        bad[3000] ^= 0xFF
        served = bytes(bad)
    else:  # the server sends (and announces) only the first part of the archive
        served = data[: len(data) // 2 + 100]
    url = http_server.add("/p.tar", served)
    with pytest.raises(DownloadError, match="sha256 mismatch|truncated or corrupt"):
        places365.collect(url, sha(data), ["beach"], 100, tmp_path, **FAST)
    assert list(tmp_path.iterdir()) == []  # nothing staged survives


def test_places365_rejects_path_traversal(http_server, tmp_path):
    evil = ("places365_standard/train/beach/../../../../evil.jpg", jpeg_bytes(1))
    data, _ = places_archive(extra_members=[evil])
    url = http_server.add("/p.tar", data)
    with pytest.raises(UnsafeArchiveError, match="evil.jpg"):
        places365.collect(url, sha(data), ["beach"], 100, tmp_path, **FAST)
    assert list(tmp_path.iterdir()) == [] and not (tmp_path.parent / "evil.jpg").exists()


def test_places365_unknown_category(http_server, tmp_path):
    data, _ = places_archive()
    url = http_server.add("/p.tar", data)
    with pytest.raises(DownloadError, match=r"no images of categories \['volcano'\].*beach"):
        places365.collect(url, sha(data), ["beach", "volcano"], 10, tmp_path, **FAST)


# ----------------------------------------------------------------------------- cifar10


def test_cifar10_images_in_file_order(http_server, tmp_path):
    data, pixels = cifar_archive()
    url = http_server.add("/cifar-10-python.tar.gz", data)
    result = cifar10.collect(url, sha(data), 5, tmp_path / "cache", **FAST)
    assert [p.name for p in result.photos] == [
        "cifar10_data_batch_1_00000",
        "cifar10_data_batch_1_00001",
        "cifar10_data_batch_2_00000",
        "cifar10_data_batch_2_00001",
        "cifar10_data_batch_3_00000",
    ]
    for photo, expected in zip(result.photos, pixels):
        assert photo.array.shape == (32, 32, 3) and photo.array.dtype == np.uint8
        np.testing.assert_array_equal(photo.array, expected)
    assert [p.note for p in result.photos[:2]] == ["airplane", "automobile"]
    assert (tmp_path / "cache" / "cifar-10-python.tar.gz").read_bytes() == data


def test_cifar10_resumes_after_drop_and_rejects_bad_checksum(http_server, tmp_path):
    data, _ = cifar_archive()
    url = http_server.add("/c.tar.gz", data, drop_after=[len(data) // 2])
    result = cifar10.collect(url, sha(data), 100, tmp_path / "cache", **FAST)
    assert len(result.photos) == 12 and len(http_server.requests) == 2
    with pytest.raises(ChecksumError):
        cifar10.collect(http_server.add("/d.tar.gz", data[:-10]), sha(data), 100, tmp_path / "c2", **FAST)
    assert list((tmp_path / "c2").iterdir()) == []


@pytest.mark.parametrize("protocol", range(pickle.HIGHEST_PROTOCOL + 1))
def test_cifar10_batches_of_every_pickle_protocol_pass_the_restricted_unpickler(tmp_path, protocol):
    data, pixels = cifar_archive(protocol=protocol)
    (tmp_path / "c.tar.gz").write_bytes(data)
    images, labels = cifar10.read_images(tmp_path / "c.tar.gz", 100)
    assert labels == ["airplane", "automobile", "bird"] and len(images) == 12
    np.testing.assert_array_equal(np.stack([image for _, _, image, _ in images]), pixels)


class _Runs:
    """Unpickling this calls ``function(*args)``."""

    def __init__(self, function, *args):
        self.call = (function, args)

    def __reduce__(self):
        return self.call


@pytest.mark.parametrize(
    "payload",
    [
        _Runs(os.mkdir, "MARKER"),
        _Runs(eval, "__import__('os').mkdir('MARKER')"),
        _Runs(subprocess.call, ["mkdir", "MARKER"]),
        _Runs(np.save, "MARKER", np.zeros(1)),
        _Runs(shutil.rmtree, "MARKER"),
    ],
)
def test_cifar10_pickle_that_would_run_code_is_refused_naming_the_file(http_server, tmp_path, monkeypatch, payload):
    monkeypatch.chdir(tmp_path)
    data, _ = cifar_archive(meta={b"label_names": [payload]})
    url = http_server.add("/cifar-10-python.tar.gz", data)
    with pytest.raises(DownloadError) as err:
        cifar10.collect(url, sha(data), 10, tmp_path / "cache", **FAST)  # the sha256 matches
    assert str(err.value).startswith(
        f"{tmp_path / 'cache' / 'cifar-10-python.tar.gz'}: cannot read cifar-10-batches-py/batches.meta: refusing to load "
    )
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cache"]  # no MARKER


def test_cifar10_url_ending_in_dot_dot_is_refused_naming_the_key(tmp_path):
    with pytest.raises(UrlError, match=r"^data\.cifar10\.url: .*'\.\.' path segment"):
        cifar10.collect("https://www.cs.toronto.edu/~kriz/..", "0" * 64, 10, tmp_path / "cache", **FAST)
    assert list(tmp_path.iterdir()) == []


def test_cifar10_rejects_a_non_cifar_archive(http_server, tmp_path):
    data = make_tar([("cifar-10-batches-py/readme.html", b"hi")], mode="w:gz")
    url = http_server.add("/c.tar.gz", data)
    with pytest.raises(DownloadError, match="not a CIFAR-10 python archive"):
        cifar10.collect(url, sha(data), 10, tmp_path, **FAST)


# ----------------------------------------------------------------------------- folder / skimage


def test_folder_collects_images_recursively(tmp_path, caplog):
    (tmp_path / "sub").mkdir()
    (tmp_path / ".hidden").mkdir()
    Image.new("RGB", (4, 4)).save(tmp_path / "a.jpg")
    Image.new("RGB", (4, 4)).save(tmp_path / "a.png")
    Image.new("RGB", (4, 4)).save(tmp_path / "sub" / "b.PNG")
    Image.new("RGB", (4, 4)).save(tmp_path / ".hidden" / "c.png")
    (tmp_path / "notes.txt").write_text("hello")
    result = folder.collect(tmp_path)
    assert [p.name for p in result.photos] == ["folder_a.jpg", "folder_a.png", "folder_sub__b.PNG"]
    assert all(p.sha256 == sha(p.path.read_bytes()) for p in result.photos)
    assert "notes.txt" in caplog.text


def test_folder_errors(tmp_path):
    with pytest.raises(DownloadError, match="not a directory"):
        folder.collect(tmp_path / "missing")
    with pytest.raises(DownloadError, match="no image files"):
        folder.collect(tmp_path)


def test_skimage_photos():
    result = skimage_photos.collect()
    assert len(result.photos) == 7 and len({p.group for p in result.photos}) == 6
    pair = [p for p in result.photos if p.group == "stereo_motorcycle"]
    assert len(pair) == 2 and all(p.path.is_file() for p in result.photos)


# ----------------------------------------------------------------------------- debian


def test_debian_collect_verifies_and_fixes_sea_test(tmp_path, fake_debs):
    fetch, table, photos, calls = fake_debs
    result = debian.collect(tmp_path / "work", test_mode="sea_or_water", allow_missing=False, table=table, fetch=fetch)
    assert calls == [["pkg-a", "pkg-b"]]
    by_name = {p.name: p for p in result.photos}
    assert sorted(by_name) == ["debian_Dune", "debian_Lake", "debian_hill", "debian_sea"]
    assert by_name["debian_sea"].fixed_split == "test" and by_name["debian_Lake"].fixed_split == "test"
    assert by_name["debian_hill"].fixed_split is None
    assert by_name["debian_sea"].path.read_bytes() == photos[("pkg-a", "/usr/share/backgrounds/sea.jpg")]
    # licence from the DEP-5 paragraph of that file, else the "Files: *" one
    assert by_name["debian_sea"].licence == "CC-BY-4.0" and "Sea Photographer" in by_name["debian_sea"].origin
    assert by_name["debian_hill"].licence == "GPL-2+" and "1.0-1" in by_name["debian_hill"].origin
    assert set(result.licence_files) == {"pkg-a.copyright", "pkg-b.copyright"}
    random = debian.collect(tmp_path / "w2", test_mode="random", allow_missing=False, table=table, fetch=fetch)
    assert all(p.fixed_split is None for p in random.photos)


def test_debian_mismatch_and_missing_are_named(tmp_path, fake_debs):
    fetch, table, _, _ = fake_debs
    bad = [table[0].__class__(**{**table[0].__dict__, "sha256": "0" * 64})] + table[1:]
    bad.append(debian.TableRow("pkg-a", "1.0-1", "/usr/share/backgrounds/gone.jpg", "1" * 64, 1, 1, False))
    with pytest.raises(DownloadError) as err:
        debian.collect(tmp_path / "w", test_mode="sea_or_water", allow_missing=False, table=bad, fetch=fetch)
    message = str(err.value)
    assert "2 of 5 Debian photos" in message and "sea.jpg (pkg-a): sha256 mismatch" in message
    assert "gone.jpg: not found in package pkg-a" in message and "allow_missing" in message


def test_debian_allow_missing_records_dropped_photos(tmp_path, fake_debs):
    fetch, table, _, _ = fake_debs
    table = table + [debian.TableRow("pkg-c", "1.0", "/usr/share/x.jpg", "2" * 64, 1, 1, False)]
    result = debian.collect(tmp_path / "w", test_mode="sea_or_water", allow_missing=True, table=table, fetch=fetch)
    assert len(result.photos) == 4
    assert [(s.name, s.note) for s in result.skipped] == [("debian_x", "/usr/share/x.jpg: package pkg-c could not be downloaded")]


def test_read_photo_table_shipped_copy():
    table = debian.read_photo_table()
    assert len(table) == 68 and sum(r.sea_or_water for r in table) == 12
    assert {r.package for r in table} == set(debian.PACKAGE_LICENCES)
    names = [debian._photo_name(r) for r in table]
    assert len(set(names)) == 68


def test_read_photo_table_bad_columns(tmp_path):
    (tmp_path / "t.tsv").write_text("package\tpath\n")
    with pytest.raises(DownloadError, match=r"t\.tsv: bad columns"):
        debian.read_photo_table(tmp_path / "t.tsv")


def test_apt_fetch_without_apt_is_a_clear_error(tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path))  # no apt-get on PATH
    with pytest.raises(DownloadError, match="apt-get not found"):
        debian.apt_fetch_debs(["pkg"], tmp_path)
