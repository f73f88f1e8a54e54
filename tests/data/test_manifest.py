"""manifest.py: round trip, strict reading, photo_paths."""

import pytest

from image_completion.data.manifest import COLUMNS, ManifestError, ManifestRow, photo_paths, read_manifest, write_manifest

ROWS = [
    ManifestRow("images/a.png", "folder", "a" * 64, 32, 16, "train", ""),
    ManifestRow("images/b.png", "folder", "b" * 64, 20, 10, "test", "sea, with comma"),
    ManifestRow("images/c.png", "folder", "c" * 64, 20, 10, "validation", ""),
    ManifestRow("images/d.png", "folder", "d" * 64, 20, 10, "train", ""),
    ManifestRow("broken.jpg", "folder", "e" * 64, 0, 0, "skipped", "broken.jpg: not a readable image"),
]


def _write_images(root):
    (root / "images").mkdir()
    for row in ROWS[:4]:
        (root / row.file).write_bytes(b"png")


def test_round_trip(tmp_path):
    write_manifest(tmp_path / "manifest.csv", ROWS)
    assert read_manifest(tmp_path / "manifest.csv") == ROWS
    assert (tmp_path / "manifest.csv").read_text().splitlines()[0] == ",".join(COLUMNS)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["manifest.csv"]


def test_bad_columns_names_file(tmp_path):
    path = tmp_path / "m.csv"
    path.write_text("file,source,sha,width,height,split,note\n")
    with pytest.raises(ManifestError, match=r"m\.csv: bad columns"):
        read_manifest(path)


def test_bad_values_name_file_and_line(tmp_path):
    path = tmp_path / "m.csv"
    path.write_text(",".join(COLUMNS) + "\nimages/a.png,folder,abc,wide,3,train,\n")
    with pytest.raises(ManifestError, match=r"m\.csv, line 2"):
        read_manifest(path)
    path.write_text(",".join(COLUMNS) + "\nimages/a.png,folder,abc,3,3,holdout,\n")
    with pytest.raises(ManifestError, match=r"line 2: split 'holdout'"):
        read_manifest(path)
    path.write_text(",".join(COLUMNS) + "\nimages/a.png,folder\n")
    with pytest.raises(ManifestError, match="expected 7 fields"):
        read_manifest(path)


def test_missing_manifest(tmp_path):
    with pytest.raises(ManifestError, match="not found"):
        read_manifest(tmp_path / "none.csv")


def test_photo_paths_returns_absolute_paths_of_one_split(tmp_path, monkeypatch):
    _write_images(tmp_path)
    write_manifest(tmp_path / "manifest.csv", ROWS)
    monkeypatch.chdir(tmp_path.parent)
    train = photo_paths(tmp_path.name + "/manifest.csv", "train")  # relative manifest path
    assert train == [str((tmp_path / "images" / n).resolve()) for n in ("a.png", "d.png")]
    assert photo_paths(tmp_path / "manifest.csv", "test") == [str(tmp_path.resolve() / "images" / "b.png")]


def test_photo_paths_errors(tmp_path):
    _write_images(tmp_path)
    write_manifest(tmp_path / "manifest.csv", ROWS)
    with pytest.raises(ManifestError, match="unknown split 'skipped'"):
        photo_paths(tmp_path / "manifest.csv", "skipped")
    write_manifest(tmp_path / "manifest.csv", [r for r in ROWS if r.split != "test"])
    with pytest.raises(ManifestError, match="no photos in split 'test'"):
        photo_paths(tmp_path / "manifest.csv", "test")
    (tmp_path / "images" / "a.png").unlink()
    with pytest.raises(ManifestError, match="missing"):
        photo_paths(tmp_path / "manifest.csv", "train")
