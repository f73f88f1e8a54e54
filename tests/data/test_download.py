"""download.py: the whole stage (normalise, skip, split, manifest, attribution, atomic output)."""

import hashlib
import logging
import os
import subprocess
from pathlib import Path

import numpy as np
import pytest
import yaml
from PIL import Image

from conftest import cifar_archive
from image_completion.config import Cifar10Params, DataParams, Places365Params
from image_completion.data import download
from image_completion.data.download import make_photos, split_groups
from image_completion.data.manifest import photo_paths, read_manifest
from image_completion.data.sources import DownloadError
from image_completion.errors import run_main
from image_completion.images import load_rgb
from image_completion.stages import download as download_stage


def data_params(**overrides) -> DataParams:
    values = dict(
        source="skimage",
        allow_missing=False,
        max_side=1024,
        val_fraction=0.1,
        test_fraction=0.2,
        debian_test="sea_or_water",
        folder=None,
        places365=Places365Params("http://127.0.0.1:9/p.tar", None, ["beach"], 10),
        cifar10=Cifar10Params("http://127.0.0.1:9/c.tar.gz", "0" * 64, 10),
    )
    values.update(overrides)
    return DataParams(**values)


def test_split_groups_deterministic_and_seed_dependent():
    groups = [f"g{i:02d}" for i in range(40)]
    a = split_groups(groups, {}, 0.2, 0.1, seed=1)
    assert a == split_groups(list(reversed(groups)), {}, 0.2, 0.1, seed=1)  # order does not matter
    assert a != split_groups(groups, {}, 0.2, 0.1, seed=2)
    counts = {s: sum(v == s for v in a.values()) for s in ("train", "validation", "test")}
    assert counts == {"test": 8, "validation": 3, "train": 29}


def test_split_groups_fixed_test_and_minimums():
    groups = ["a", "b", "c", "sea1", "sea2"]
    s = split_groups(groups, {"sea1": "test", "sea2": "test"}, 0.2, 0.1, seed=0)
    assert s["sea1"] == s["sea2"] == "test"
    assert sorted(s[g] for g in "abc") == ["train", "train", "validation"]  # no random test when fixed
    s = split_groups(["a", "b", "c"], {}, 0.01, 0.01, seed=0)
    assert sorted(s.values()) == ["test", "train", "validation"]  # at least one of each
    with pytest.raises(DownloadError, match="too few usable photos"):
        split_groups(["a", "b"], {}, 0.2, 0.1, seed=0)


def test_skimage_stage_output(tmp_path):
    out = tmp_path / "data" / "photos"
    rows = make_photos(data_params(max_side=300), 1234, out)
    assert sorted(p.name for p in out.iterdir()) == ["ATTRIBUTION.md", "images", "manifest.csv"]
    assert read_manifest(out / "manifest.csv") == rows
    assert len(rows) == 7 and {r.split for r in rows} == {"train", "validation", "test"}
    pair = {r.split for r in rows if "motorcycle" in r.file}
    assert len(pair) == 1  # the stereo pair never straddles splits
    for row in rows:
        image = load_rgb(out / row.file)
        assert image.shape == (row.height, row.width, 3) and max(image.shape[:2]) <= 300
        assert Image.open(out / row.file).mode == "RGB"
    astronaut = next(r for r in rows if "astronaut" in r.file)
    assert (astronaut.width, astronaut.height) == (300, 300)
    src = download.skimage_photos.data_dir() / "astronaut.png"
    assert astronaut.sha256 == hashlib.sha256(src.read_bytes()).hexdigest()  # of the original file
    assert "CC0" in (out / "ATTRIBUTION.md").read_text()
    assert not [p for p in out.parent.iterdir() if p.name.startswith(".")]  # no temp dirs left
    # same seed -> same split; the test split is the seed's, not a fixed list
    again = make_photos(data_params(max_side=300), 1234, tmp_path / "again")
    assert [(r.file, r.split) for r in again] == [(r.file, r.split) for r in rows]
    splits_by_seed = {tuple(r.split for r in make_photos(data_params(max_side=64), s, tmp_path / f"s{s}")) for s in range(4)}
    assert len(splits_by_seed) > 1
    assert len(photo_paths(out / "manifest.csv", "train")) == sum(r.split == "train" for r in rows)


def _mixed_folder(root):
    root.mkdir()
    rng = np.random.default_rng(0)
    Image.fromarray(rng.integers(0, 256, (30, 50, 3), dtype=np.uint8)).save(root / "rgb.jpg")
    Image.fromarray(rng.integers(0, 256, (20, 20), dtype=np.uint8), mode="L").save(root / "grey.png")
    Image.fromarray(rng.integers(0, 256, (20, 24, 4), dtype=np.uint8), mode="RGBA").save(root / "rgba.png")
    Image.fromarray(rng.integers(0, 65535, (16, 16), dtype=np.uint16)).save(root / "wide.png")
    Image.new("CMYK", (12, 10), (0, 50, 200, 0)).save(root / "cmyk.jpg")
    pal = Image.new("P", (10, 10))
    pal.putpalette(list(range(256)) * 3)
    pal.save(root / "palette.gif")
    (root / "broken.jpg").write_bytes(b"\xff\xd8\xff garbage")
    (root / "empty.png").write_bytes(b"")


def test_folder_stage_skips_unreadable_and_converts_everything(tmp_path, caplog):
    _mixed_folder(tmp_path / "mine")
    with caplog.at_level(logging.WARNING):
        rows = make_photos(data_params(source="folder", folder=str(tmp_path / "mine"), max_side=16), 7, tmp_path / "photos")
    used = [r for r in rows if r.split != "skipped"]
    skipped = [r for r in rows if r.split == "skipped"]
    assert len(used) == 6
    assert sorted(r.file for r in skipped) == ["folder_broken.jpg", "folder_empty.png"]
    assert all(r.width == r.height == 0 and "mine/" in r.note for r in skipped)
    assert "broken.jpg" in caplog.text and "empty.png" in caplog.text
    for row in used:
        with Image.open(tmp_path / "photos" / row.file) as im:
            assert im.mode == "RGB" and max(im.size) <= 16 and im.size == (row.width, row.height)
    rgb = next(r for r in used if "rgb.jpg" in r.file)
    assert (rgb.width, rgb.height) == (16, 10)  # 50x30 scaled to a longer side of 16
    text = (tmp_path / "photos" / "ATTRIBUTION.md").read_text()
    assert "folder_broken.jpg" in text and "user-provided" in text


def test_a_run_removes_the_temp_folders_of_a_killed_run(tmp_path, caplog):
    out = tmp_path / "photos"
    dead = subprocess.Popen(["true"])
    dead.wait()
    for kind in ("work", "new", "old"):
        (tmp_path / f".photos.{kind}-{dead.pid}-abcdefgh" / "images").mkdir(parents=True)
    (tmp_path / f".photos.work-{os.getpid()}-abcdefgh").mkdir()  # a live run's: kept
    with caplog.at_level(logging.INFO):
        make_photos(data_params(max_side=32), 1, out)
    assert sorted(p.name for p in tmp_path.iterdir()) == [f".photos.work-{os.getpid()}-abcdefgh", "photos"]
    assert caplog.text.count("left behind by a run that was killed") == 3


def test_no_usable_image_is_an_error_and_keeps_previous_output(tmp_path):
    out = tmp_path / "photos"
    make_photos(data_params(max_side=32), 1, out)
    before = (out / "manifest.csv").read_text()
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "a.jpg").write_bytes(b"nope")
    with pytest.raises(DownloadError, match="no usable image at all"):
        make_photos(data_params(source="folder", folder=str(bad)), 1, out)
    assert (out / "manifest.csv").read_text() == before  # the old output is untouched
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bad", "photos"]  # no temp dirs left


def test_debian_stage_with_fake_packages(tmp_path, fake_debs):
    fetch, table, _, _ = fake_debs
    extra = table[0].__class__("pkg-a", "1.0-1", "/usr/share/backgrounds/gone.jpg", "1" * 64, 1, 1, False)
    table = table + [extra]
    params = data_params(source="debian", allow_missing=True)
    rows = make_photos(params, 3, tmp_path / "photos", fetch_debs=fetch, debian_table=table)
    splits = {r.file: r.split for r in rows}
    assert splits["images/debian_sea.png"] == splits["images/debian_Lake.png"] == "test"
    assert sorted(s for f, s in splits.items() if "sea" not in f and "Lake" not in f) == ["skipped", "train", "validation"]
    skipped = next(r for r in rows if r.split == "skipped")
    assert skipped.file == "debian_gone" and "not found in package pkg-a" in skipped.note
    assert (tmp_path / "photos" / "licenses" / "pkg-a.copyright").is_file()
    assert "CC-BY-4.0" in (tmp_path / "photos" / "ATTRIBUTION.md").read_text()
    with pytest.raises(DownloadError, match="gone.jpg"):
        make_photos(data_params(source="debian"), 3, tmp_path / "p2", fetch_debs=fetch, debian_table=table)
    assert not (tmp_path / "p2").exists()


def test_cifar10_stage_over_http(tmp_path, http_server):
    data, pixels = cifar_archive(per_batch=3)
    url = http_server.add("/cifar-10-python.tar.gz", data)
    params = data_params(source="cifar10", cifar10=Cifar10Params(url, hashlib.sha256(data).hexdigest(), 10))
    rows = make_photos(params, 5, tmp_path / "data" / "photos", retries=1, timeout=5.0, backoff=0.0)
    assert len(rows) == 10 and all((r.width, r.height) == (32, 32) for r in rows)
    first = next(r for r in rows if r.file == "images/cifar10_data_batch_1_00000.png")
    np.testing.assert_array_equal(load_rgb(tmp_path / "data" / "photos" / first.file), pixels[0])
    assert (tmp_path / "data" / ".download-cache" / "cifar-10-python.tar.gz").is_file()  # kept for reruns


def test_cli(tmp_path, monkeypatch, capsys):
    raw = {"base": {"seed": 5, "image_size": 32, "hole_value": 1.0}}
    params = yaml.safe_load((Path(__file__).parents[2] / "params.yaml").read_text())
    params.update(raw)
    params["data"]["source"] = "skimage"
    params["data"]["max_side"] = 64
    (tmp_path / "p.yaml").write_text(yaml.safe_dump(params))
    assert download_stage.main(["--params", str(tmp_path / "p.yaml"), "--out", str(tmp_path / "photos")]) == 0
    assert len(read_manifest(tmp_path / "photos" / "manifest.csv")) == 7
    params["data"]["source"] = "places365"
    params["data"]["places365"]["sha256"] = None  # must refuse before any network access
    (tmp_path / "p.yaml").write_text(yaml.safe_dump(params))
    with pytest.raises(SystemExit) as exit_:  # the stage's boundary: one line, status 1
        run_main(
            lambda: download_stage.main(["--params", str(tmp_path / "p.yaml"), "--out", str(tmp_path / "photos2")]), "download"
        )
    assert exit_.value.code == 1
    assert "download: error: data.places365.sha256 is null" in capsys.readouterr().err
    assert not (tmp_path / "photos2").exists()
