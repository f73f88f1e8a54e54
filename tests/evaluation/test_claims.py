"""claims: the interval and verdict rules, on synthetic comparison runs written by dvclive itself."""

import math
import shutil
import statistics

import pytest
from dvclive import Live

from image_completion.evaluation import claims

SEEDS = (1, 2, 3)
# Final values per kind that make every claim hold as the paper says (a) (b) (c):
PAPER = {
    # gradient norm of enc1 at steps 0..3: the autoencoder's falls 100x, the U-Nets' stay put
    "grad": {"autoencoder": [1.0, 0.1, 0.03, 0.01], "unet": [1.0, 1.1, 0.9, 1.0], "unet_scaled": [1.0, 1.0, 1.2, 1.0]},
    "hole_propagation": {"autoencoder": 0.8, "unet": 0.3, "unet_scaled": 0.9},
    "l1_hole": {"autoencoder": 0.20, "unet": 0.15, "unet_scaled": 0.10},
}
OPPOSITE = {
    "grad": {"autoencoder": [1.0, 1.5, 2.0, 3.0], "unet": [1.0, 0.5, 0.2, 0.1], "unet_scaled": [1.0, 0.4, 0.2, 0.1]},
    "hole_propagation": {"autoencoder": 0.8, "unet": 0.9, "unet_scaled": 0.3},
    "l1_hole": {"autoencoder": 0.10, "unet": 0.15, "unet_scaled": 0.20},
}


DELTAS = {"a": 0.001, "b": 0.001, "c": 0.001, "d": 0.001, "e": 0.001}  # small: these runs test the sign rule


def write_run(folder, grad, hole_propagation, l1_hole, epochs=3):
    """A run as compare writes it: val/* at steps 0..epochs, the last value in metrics.json."""
    with Live(str(folder), save_dvc_exp=False, dvcyaml=None) as live:
        for step in range(epochs + 1):
            last = step == epochs
            live.log_metric("val/grad_norm_enc1", grad[step])
            live.log_metric("val/hole_propagation", hole_propagation if last else 1.0)
            live.log_metric("val/l1_hole", l1_hole if last else 0.5)
            if step:
                live.log_metric("train/g_loss", 1.0 / step)
            if not last:
                live.next_step()


def write_runs(root, values, seeds=SEEDS, jitter=0.01):
    """One run per kind and seed. The spread over seeds: kind k (0, 1, 2) of seed s has its final
    values shifted by s * (k + 1) * jitter (its last gradient norm scaled by 1 + that)."""
    for k, kind in enumerate(claims.KINDS):
        for s in seeds:
            shift = s * (k + 1) * jitter
            write_run(
                root / f"{kind}-{s}",
                grad=values["grad"][kind][:-1] + [values["grad"][kind][-1] * (1 + shift)],
                hole_propagation=values["hole_propagation"][kind] + shift,
                l1_hole=values["l1_hole"][kind] + shift,
            )
    return root


def test_t_interval():
    t2 = 4.302652729749462  # the 97.5 % quantile of Student's t with 2 degrees of freedom
    mean, low, high = claims.t_interval([1.0, 2.0, 3.0])  # sd 1, n 3: half width t2 / sqrt(3)
    assert (mean, low, high) == pytest.approx((2.0, 2.0 - t2 / math.sqrt(3), 2.0 + t2 / math.sqrt(3)))
    mean, low, high = claims.t_interval([0.0, 1.0] * 20)  # df 39, beyond any t table of 30 rows
    assert high - mean == pytest.approx(2.022690920036761 * statistics.stdev([0.0, 1.0] * 20) / math.sqrt(40))
    assert all(math.isnan(v) for v in claims.t_interval([1.0])[1:])


@pytest.mark.parametrize(
    "low, high, n, expected",
    [(-2.0, -1.0, 3, "reproduced"), (1.0, 2.0, 3, "refuted"), (-1.0, 1.0, 3, "inconclusive"),
     (-2.0, -1.0, 2, "inconclusive"), (-2.0, 0.0, 5, "inconclusive"), (math.nan, math.nan, 3, "inconclusive"),
     (-0.04, 0.03, 3, "refuted"), (-0.04, 0.06, 3, "inconclusive")],
)  # fmt: skip
def test_verdict_rule(low, high, n, expected):
    # delta 0.05: an interval inside [-0.05, 0.05] refutes (equivalence), on either expected sign
    assert claims.verdict(low, high, expected=-1, n_seeds=n, delta=0.05) == expected
    flipped = {"reproduced": "refuted", "refuted": "reproduced"}.get(expected, expected)
    if (low, high) == (-0.04, 0.03):
        flipped = "refuted"  # equivalence does not depend on the sign the paper predicts
    assert claims.verdict(-high, -low, expected=+1, n_seeds=n, delta=0.05) == expected
    assert claims.verdict(low, high, expected=+1, n_seeds=n, delta=0.05) == flipped


def test_seeds_needed_for_a_known_spread():
    # mean 1, sd 1: excludes 0 once t(0.975, n-1) / sqrt(n) < 1, first at n = 7 (t(0.975, 6) = 2.447 / 2.646 = 0.925)
    assert claims.seeds_needed(1.0, 1.0, delta=0.1) == 7
    assert claims.half_width(1.0, 6) > 1.0 > claims.half_width(1.0, 7)
    # mean 0, sd 1, delta 1: equivalence once the half width < 1, the same n = 7
    assert claims.seeds_needed(0.0, 1.0, delta=1.0) == 7
    # a mean on the boundary delta with no spread to spare: never decided within MAX_SEEDS
    assert claims.seeds_needed(0.0, 1.0, delta=1e-6) is None
    assert claims.seeds_needed(5.0, 1.0, delta=0.1) == claims.MIN_SEEDS


def test_an_inconclusive_row_carries_the_seeds_needed_from_its_spread():
    row = claims.claim_row("x", "f", "m", {1: 0.0, 2: 1.0, 3: 2.0}, expected=+1, delta=0.1)  # mean 1, sd 1
    assert row["verdict"] == "inconclusive" and row["seeds_needed"] == 7
    decided = claims.claim_row("x", "f", "m", {1: 1.0, 2: 1.1, 3: 1.2}, expected=+1, delta=0.1)
    assert decided["verdict"] == "reproduced" and decided["seeds_needed"] is None
    absent = claims.claim_row("x", "f", "m", {1: -0.01, 2: 0.0, 3: 0.01}, expected=+1, delta=0.1)
    assert absent["verdict"] == "refuted"


def test_every_claim_reproduced_when_the_runs_agree_with_the_paper(tmp_path):
    rows = claims.comparison_claims(write_runs(tmp_path, PAPER), DELTAS)
    assert [r["claim"] for r in rows] == ["a", "a", "b", "c"]
    assert {r["verdict"] for r in rows} == {"reproduced"}
    for row in rows:
        assert set(row) >= {"claim", "finding", "measurement", "mean", "ci_low", "ci_high", "n_seeds", "verdict"}
        assert row["n_seeds"] == 3 and sorted(row["per_seed"]) == list(SEEDS)
        assert row["ci_low"] < row["mean"] < row["ci_high"] < 0
    a_alone, a_vs_unets, b, c = rows
    j = 0.01  # seed s: the autoencoder's norm falls to 0.01 (1 + s j), unet's to 1 + 2 s j, unet_scaled's to 1 + 3 s j
    assert a_alone["per_seed"] == pytest.approx({s: math.log10(0.01 * (1 + s * j)) for s in SEEDS})
    assert a_vs_unets["per_seed"] == pytest.approx(
        {s: math.log10(0.01 * (1 + s * j)) - (math.log10(1 + 2 * s * j) + math.log10(1 + 3 * s * j)) / 2 for s in SEEDS}
    )
    assert b["per_seed"] == pytest.approx({s: (0.3 + 2 * s * j) - (0.9 + 3 * s * j) for s in SEEDS})
    assert c["per_seed"] == pytest.approx({s: (0.10 + 3 * s * j) - (0.15 + 2 * s * j) for s in SEEDS})
    assert c["mean"] == pytest.approx(-0.05 + 2 * j)


def test_every_claim_not_reproduced_when_the_runs_contradict_it(tmp_path):
    rows = claims.comparison_claims(write_runs(tmp_path, OPPOSITE), DELTAS)
    assert {r["verdict"] for r in rows} == {"refuted"}
    assert all(r["ci_high"] > r["ci_low"] > 0 for r in rows)


def test_inconclusive_when_the_seeds_disagree_or_are_too_few(tmp_path):
    write_runs(tmp_path / "mixed", PAPER, seeds=(1, 2))
    write_runs(tmp_path / "mixed", OPPOSITE, seeds=(3,))
    mixed = claims.comparison_claims(tmp_path / "mixed", DELTAS)
    assert {r["verdict"] for r in mixed} == {"inconclusive"}
    assert all(r["ci_low"] < 0 < r["ci_high"] for r in mixed)

    write_runs(tmp_path / "two", PAPER, seeds=(1, 2))
    two = claims.comparison_claims(tmp_path / "two", DELTAS)
    assert {r["verdict"] for r in two} == {"inconclusive"}  # n = 2 < MIN_SEEDS
    assert two[2]["ci_high"] < 0  # even where the interval excludes 0: (b)


def test_a_seed_missing_a_kind_is_left_out_of_the_claims_that_need_it(tmp_path):
    write_runs(tmp_path, PAPER, seeds=(1, 2, 3, 4))
    shutil.rmtree(tmp_path / "autoencoder-4")
    rows = claims.comparison_claims(tmp_path, DELTAS)
    assert [r["n_seeds"] for r in rows] == [3, 3, 4, 3]  # (b) needs only the two U-Nets


def test_bad_outputs_name_the_file_or_runs(tmp_path):
    with pytest.raises(claims.ClaimsError, match="no comparison runs"):
        claims.comparison_claims(tmp_path, DELTAS)
    write_runs(tmp_path, PAPER)
    write_run(tmp_path / "unet-9", [1.0] * 6, 0.5, 0.5, epochs=5)
    with pytest.raises(claims.ClaimsError, match="unet-9"):  # compared at a different budget
        claims.comparison_claims(tmp_path, DELTAS)
    shutil.rmtree(tmp_path / "unet-9")
    (tmp_path / "autoencoder-2" / "plots" / "metrics" / "val" / "grad_norm_enc1.tsv").unlink()
    with pytest.raises(claims.ClaimsError, match=r"autoencoder-2/plots/metrics/val/grad_norm_enc1\.tsv"):
        claims.comparison_claims(tmp_path, DELTAS)
    (tmp_path / "unet-1" / "metrics.json").write_text("{}")
    with pytest.raises(claims.ClaimsError, match=r"unet-1/metrics\.json"):
        claims.comparison_claims(tmp_path, DELTAS)


def write_training_run(folder, accuracy_stage1, accuracy_stage2, sharpness_plain, sharpness_style):
    """A claims@<seed> run as claim_runs writes it (only the values the claims read)."""
    for sub, values in (
        ("learning_d/stage1", {"perceptual_accuracy": accuracy_stage1, "sharpness": sharpness_plain}),
        ("learning_d/stage2", {"perceptual_accuracy": accuracy_stage2, "sharpness": sharpness_plain}),
        ("style/stage1", {"perceptual_accuracy": 0.5, "sharpness": sharpness_style}),
    ):
        with Live(str(folder / sub), save_dvc_exp=False, dvcyaml=None) as live:
            for name, value in values.items():
                live.log_metric(f"val/{name}", value)


def test_training_claims_d_and_e(tmp_path):
    for s in SEEDS:
        write_training_run(tmp_path / "rise" / str(s), 0.1 + 0.01 * s, 0.6, 0.5, 0.8 + 0.01 * s)
        write_training_run(tmp_path / "fall" / str(s), 0.6 + 0.01 * s, 0.1, 0.8, 0.5 - 0.01 * s)
    d, e = claims.training_claims(tmp_path / "rise", DELTAS)
    assert (d["claim"], d["verdict"], d["n_seeds"]) == ("d", "reproduced", 3)
    assert d["mean"] == pytest.approx(0.48) and e["mean"] == pytest.approx(0.32)
    assert e["verdict"] == "reproduced"
    assert [r["verdict"] for r in claims.training_claims(tmp_path / "fall", DELTAS)] == ["refuted", "refuted"]
    with pytest.raises(claims.ClaimsError, match="nowhere: no claims runs"):
        claims.training_claims(tmp_path / "nowhere", DELTAS)
    shutil.rmtree(tmp_path / "rise" / "1" / "style")
    with pytest.raises(claims.ClaimsError, match=r"1/style/stage1/metrics\.json: not found"):
        claims.training_claims(tmp_path / "rise", DELTAS)
