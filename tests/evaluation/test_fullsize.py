"""Whole-photo scoring: the square cases and the per-case scores (the end-to-end run through DVC,
with real models and photos, is in tests/test_pipeline.py)."""

import numpy as np
import pytest

from image_completion.evaluation.fullsize import Case, score_cases, square, summarize


def test_square_takes_the_centre_and_resizes():
    image = np.zeros((60, 100, 3), np.uint8)
    image[:, 20:80] = 200  # the centre 60x60 square
    out = square(image, 30)
    assert out.shape == (30, 30, 3) and out.dtype == np.uint8
    assert (out == 200).all()


def _case(value: int, bucket: str) -> Case:
    image = np.full((16, 16, 3), value, np.uint8)
    hole = np.zeros((16, 16), bool)
    hole[4:12, 4:12] = True
    return Case("p.png", image, hole, bucket, float(hole.mean()))


def test_scores_per_case_and_method_and_their_means():
    cases = [_case(100, "0.2-0.3"), _case(100, "0.3-0.4")]

    def exact(image, hole):
        return image.copy()

    def grey(image, hole):
        out = image.copy()
        out[hole] = 0
        return out

    rows = score_cases(cases, {"exact": exact, "black": grey})
    assert [(r["index"], r["method"]) for r in rows] == [(0, "exact"), (0, "black"), (1, "exact"), (1, "black")]
    means = summarize(rows)
    assert means["exact"]["all"]["l1_hole"] == 0.0
    assert means["black"]["0.2-0.3"]["l1_hole"] == pytest.approx(100 / 255)


def test_a_fill_that_changes_known_pixels_is_caught():
    def shifts(image, hole):
        return image + 1

    with pytest.raises(AssertionError, match="known pixels"):
        score_cases([_case(10, "0.0-0.1")], {"shifts": shifts})
