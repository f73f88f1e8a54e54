"""Fixtures and helpers shared by the test modules (import helpers with ``from conftest import ...``)."""

import dataclasses
import hashlib
import http.client
import io
import json
import pickle
import shutil
import struct
import subprocess
import tarfile
import time
import zlib
from pathlib import Path

import numpy as np
import pytest
import yaml
from PIL import Image
from skimage import data

from http_fixture import http_server  # noqa: F401 - the loopback HTTP server fixture
from image_completion.config import EvalMaskShapes, MaskShapes, load_params
from image_completion.data.sources import cifar10, debian

ROOT = Path(__file__).resolve().parents[1]


def skimage_photo(name: str, height: int, width: int) -> np.ndarray:
    """A real photo bundled with scikit-image (not in the data set), resized: uint8 (H, W, 3)."""
    image = getattr(data, name)()
    return np.asarray(Image.fromarray(image).resize((width, height), Image.Resampling.BILINEAR))


def box_hole(height: int, width: int, top: int, left: int, h: int, w: int) -> np.ndarray:
    """A bool (H, W) mask with one rectangular hole (True)."""
    hole = np.zeros((height, width), bool)
    hole[top : top + h, left : left + w] = True
    return hole


# ---- HTTP requests to the local server


def trickle_until_closed(conn, chunk: bytes, interval: float, limit: float) -> tuple[bool, float, int]:
    """Sends ``chunk`` every ``interval`` seconds on a connected socket until the server closes it
    (or ``limit`` seconds pass): (closed, seconds until then, chunks sent). A slow client's view of
    the server's timeouts."""
    conn.settimeout(interval)
    started, sent, closed = time.monotonic(), 0, False
    while not closed and time.monotonic() - started < limit:
        try:
            conn.sendall(chunk)
            sent += 1
            closed = conn.recv(1) == b""
        except TimeoutError:
            continue
        except OSError:  # reset or broken pipe: closed too
            closed = True
    return closed, time.monotonic() - started, sent


def http_exchange(
    address: tuple[str, int], method: str, path: str, headers: dict, body: bytes = b"", timeout: float = 120
) -> tuple[int, object, bytes]:
    """(status, headers, body) of one request sent with exactly ``headers`` (no Host, Content-Type...
    added; Content-Length only when a body is sent without one)."""
    conn = http.client.HTTPConnection(*address, timeout=timeout)
    try:
        conn.putrequest(method, path, skip_host=True, skip_accept_encoding=True)
        for name, value in headers.items():
            conn.putheader(name, value)
        if body and "Content-Length" not in headers:
            conn.putheader("Content-Length", str(len(body)))
        conn.endheaders(body or None)
        response = conn.getresponse()
        return response.status, response.headers, response.read()
    finally:
        conn.close()


def error_of(body: bytes) -> str:
    """The one-line message of an error answer ``{"error": ...}``."""
    error = json.loads(body)["error"]
    assert isinstance(error, str) and error and "\n" not in error and "Traceback" not in error
    return error


# ---- params


def make_mask_params(**changes) -> MaskShapes:
    """The training masks' shapes (``masks.train``)."""
    return dataclasses.replace(load_params(ROOT / "params.yaml").masks.train, **changes)


def make_eval_mask_params(**changes) -> EvalMaskShapes:
    """The evaluation masks' shapes and buckets (``masks.eval``)."""
    return dataclasses.replace(load_params(ROOT / "params.yaml").masks.eval, **changes)


# ---- files a reader must refuse


def png_with_bad_crc(path: Path, pixels: np.ndarray) -> None:
    """A PNG whose pixel data was changed after its CRC was computed.

    The changed data is a valid zlib stream, so a decoder that skips the CRC shows wrong pixels
    without any error; only the (now wrong) IDAT CRC tells.
    """
    buf = io.BytesIO()
    Image.fromarray(pixels).save(buf, format="PNG")
    data = buf.getvalue()
    start = data.index(b"IDAT") - 4
    (length,) = struct.unpack(">I", data[start : start + 4])
    raw = bytearray(zlib.decompress(data[start + 8 : start + 8 + length]))
    raw[1] ^= 0xFF  # the first pixel byte (after the first row's filter byte)
    body = zlib.compress(bytes(raw))
    old_crc = data[start + 8 + length : start + 12 + length]
    path.write_bytes(data[:start] + struct.pack(">I", len(body)) + b"IDAT" + body + old_crc + data[start + 12 + length :])


def truncated_jpeg(path: Path, pixels: np.ndarray, keep: float = 0.6) -> None:
    buf = io.BytesIO()
    Image.fromarray(pixels).save(buf, format="JPEG", quality=90)
    path.write_bytes(buf.getvalue()[: int(len(buf.getvalue()) * keep)])


def tiff_with_overrunning_tag(path: Path, pixels: np.ndarray) -> None:
    """A TIFF whose ImageDescription tag claims more bytes than the file has (Pillow warns, then skips it)."""
    buf = io.BytesIO()
    Image.fromarray(pixels).save(buf, format="TIFF", description="x" * 40)
    data = bytearray(buf.getvalue())
    (ifd,) = struct.unpack("<I", data[4:8])
    (count,) = struct.unpack("<H", data[ifd : ifd + 2])
    for entry in range(ifd + 2, ifd + 2 + 12 * count, 12):
        if struct.unpack("<H", data[entry : entry + 2])[0] == 270:  # ImageDescription
            data[entry + 4 : entry + 8] = struct.pack("<I", len(data) + 1000)
    path.write_bytes(bytes(data))


# ---- the download sources: archives, packages, weights


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def jpeg_bytes(value: int, size=(8, 6)) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", size, (value, 255 - value, 40)).save(buf, format="JPEG")
    return buf.getvalue()


def make_tar(members: list[tuple[str, bytes]], mode="w", extra: list[tarfile.TarInfo] = ()) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode=mode) as tar:
        for name, data in members:
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
        for info in extra:
            tar.addfile(info)
    return buf.getvalue()


def cifar_archive(per_batch=2, protocol=None, meta=None) -> tuple[bytes, np.ndarray]:
    rng = np.random.default_rng(1)
    members, all_pixels = [], []
    meta = meta or {b"label_names": [b"airplane", b"automobile", b"bird"]}
    members.append(("cifar-10-batches-py/batches.meta", pickle.dumps(meta, protocol=protocol)))
    for batch in cifar10.BATCHES:
        data = rng.integers(0, 256, (per_batch, 3072), dtype=np.uint8)
        all_pixels.append(data.reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1))
        content = {
            b"data": data,
            b"labels": list(range(per_batch)),
            b"batch_label": batch.encode(),
            b"filenames": [f"{batch}_{i}.png".encode() for i in range(per_batch)],
        }
        members.append((f"cifar-10-batches-py/{batch}", pickle.dumps(content, protocol=protocol)))
    return make_tar(members, mode="w:gz"), np.concatenate(all_pixels)


COPYRIGHT = """Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/

Files: *
Copyright: 2020 Someone
License: GPL-2+

Files: 16.04/sea.jpg
Copyright: 2018, Sea Photographer
License: CC-BY-4.0
"""


def build_deb(tmp_path: Path, package: str, files: dict[str, bytes]) -> Path:
    root = tmp_path / "build" / package
    (root / "DEBIAN").mkdir(parents=True)
    (root / "DEBIAN" / "control").write_text(
        f"Package: {package}\nVersion: 1.0-1\nArchitecture: all\nMaintainer: Test <t@example.org>\nDescription: test photos\n"
    )
    for path, content in {**files, f"/usr/share/doc/{package}/copyright": COPYRIGHT.encode()}.items():
        target = root / path.lstrip("/")
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(content)
    deb = tmp_path / "build" / f"{package}_1.0-1_all.deb"
    subprocess.run(["dpkg-deb", "--root-owner-group", "-Zgzip", "-b", str(root), str(deb)], check=True, capture_output=True)
    return deb


@pytest.fixture
def fake_debs(tmp_path):
    """Two small packages and the matching photo table; returns (fetch, table, photo bytes)."""
    photos = {
        ("pkg-a", "/usr/share/backgrounds/sea.jpg"): jpeg_bytes(30, (40, 30)),
        ("pkg-a", "/usr/share/backgrounds/hill.jpg"): jpeg_bytes(60, (40, 30)),
        ("pkg-b", "/usr/share/wallpapers/Dune/contents/images/640x480.jpg"): jpeg_bytes(90, (30, 40)),
        ("pkg-b", "/usr/share/wallpapers/Lake/contents/images/640x480.jpg"): jpeg_bytes(120, (30, 40)),
    }
    debs = {}
    for package in ("pkg-a", "pkg-b"):
        debs[package] = build_deb(tmp_path, package, {p: d for (pk, p), d in photos.items() if pk == package})
    table = [
        debian.TableRow(pk, "1.0-1", path, sha(data), 40, 30, sea == "sea")
        for (pk, path), data in photos.items()
        for sea in [("sea" if "sea" in path or "Lake" in path else "")]
    ]
    calls = []

    def fetch(packages, dest):
        calls.append(list(packages))
        (dest / "debs").mkdir(parents=True, exist_ok=True)
        return {p: Path(shutil.copy(debs[p], dest / "debs")) for p in packages if p in debs}

    return fetch, table, photos, calls


def random_vgg_no_top(size: int = 32):
    """A VGG16 without top, random weights (seed 7), for (size, size, 3) images."""
    import keras  # noqa: PLC0415 - only the tests that need it pay for the import

    keras.utils.set_random_seed(7)
    return keras.applications.VGG16(include_top=False, weights=None, input_shape=(size, size, 3))


def write_keras_legacy_h5(model, path):
    """The format of Keras' downloaded ImageNet file (legacy HDF5 weights), written by Keras."""
    import h5py  # noqa: PLC0415
    from keras.src.legacy.saving import legacy_h5_format  # noqa: PLC0415

    with h5py.File(path, "w") as f:
        legacy_h5_format.save_weights_to_hdf5_group(f, model)


@pytest.fixture(scope="session")
def tiny_params_file(tmp_path_factory):
    """The benchmark tests' params: the shipped params.yaml at tiny sizes (32x32 crops, 4 filters,
    batch 2, no backbone weights)."""
    raw = yaml.safe_load((ROOT / "params.yaml").read_text())
    raw["base"]["image_size"] = 32
    raw["model"].update(base_filters=4, decoder_filters=8, dense_units=8, backbone_weights="none")
    raw["train"].update(batch_size=2, images_per_epoch=8, validation_images=2)
    raw["compare"].update(image_size=16, base_filters=4, batch_size=2, images_per_epoch=4, epochs=1, validation_images=2)
    raw["evaluate"]["batch_size"] = 2
    path = tmp_path_factory.mktemp("bench") / "params.yaml"
    path.write_text(yaml.safe_dump(raw))
    return path
