"""Fixtures of the benchmark tests."""

from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="session")
def tiny_params_file(tmp_path_factory):
    """The shipped params.yaml at tiny sizes (32x32 crops, 4 filters, batch 2, no backbone weights)."""
    raw = yaml.safe_load((ROOT / "params.yaml").read_text())
    raw["base"]["image_size"] = 32
    raw["model"].update(base_filters=4, decoder_filters=8, dense_units=8, backbone_weights="none")
    raw["train"].update(batch_size=2, images_per_epoch=8, validation_images=2)
    raw["compare"].update(image_size=16, base_filters=4, batch_size=2, images_per_epoch=4, epochs=1, validation_images=2)
    raw["evaluate"]["batch_size"] = 2
    path = tmp_path_factory.mktemp("bench") / "params.yaml"
    path.write_text(yaml.safe_dump(raw))
    return path
