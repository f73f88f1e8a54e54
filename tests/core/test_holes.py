"""holes.py: the generator input for each kind of pre-fill, the model card round trip."""

import numpy as np
import pytest
from pydantic import ValidationError

from conftest import box_hole
from conftest import skimage_photo as photo
from image_completion.core.baselines import run_baseline
from image_completion.core.holes import InputSpec, generator_input

FILLS = ("biharmonic", "telea", "navier_stokes")


def test_listed_fills_are_given_side_by_side_with_the_mask():
    image = photo("astronaut", 40, 48).astype(np.float32) / 255.0
    mask = box_hole(40, 48, 8, 10, 20, 24).astype(np.float32)
    spec = InputSpec(prefill=FILLS, mask_channel=True)
    x = generator_input(image, mask, spec)
    assert x.shape == (40, 48, spec.channels) == (40, 48, 10) and spec.fills == FILLS
    for k, name in enumerate(FILLS):
        np.testing.assert_array_equal(x[..., 3 * k : 3 * k + 3], run_baseline(name, image, mask, inpaint_radius=3))
    np.testing.assert_array_equal(x[..., -1], mask)


@pytest.mark.parametrize("prefill, channels", [("constant", 3), ("telea", 3), (("telea", "fsr_fast"), 6)])
def test_channels_and_a_hole_with_nothing_known_around_it(prefill, channels):
    spec = InputSpec(prefill=prefill, mask_channel=False, hole_value=0.25)
    assert spec.channels == channels
    x = generator_input(np.zeros((16, 16, 3), np.float32), np.ones((16, 16), np.float32), spec)
    np.testing.assert_array_equal(x, np.full((16, 16, channels), 0.25, np.float32))  # no method can fill it


def test_card_round_trip_and_bad_fills_refused():
    spec = InputSpec(prefill=FILLS, mask_channel=True)
    card = {"input": {**spec.as_card(), "prefill": list(FILLS)}}  # as JSON holds it
    assert InputSpec.from_card(card) == spec and hash(spec)
    for bad in (["telea"], ["telea", "telea"], ["blend", "telea"], ["telea", 3]):
        with pytest.raises(ValidationError, match="prefill"):
            InputSpec(prefill=bad, mask_channel=True)
