"""The report stage's readers and table, on small saved metrics written by the test.

The figures themselves are produced and parsed in tests/test_pipeline.py (a real run)."""

import json

import pandas as pd
import pytest
from PIL import Image

from image_completion.evaluation.figures import pick_examples
from image_completion.evaluation.report import (
    ReportError,
    ablation_markdown,
    load_bucket_metrics,
    load_training_history,
    make_results_markdown,
    read_ablation,
    read_json,
    read_live_dir,
    target_rows,
)


def _write_series(live, name, values):
    path = live / "plots" / "metrics" / f"{name}.tsv"
    path.parent.mkdir(parents=True, exist_ok=True)
    stem = path.stem
    path.write_text("step\t" + stem + "\n" + "".join(f"{s}\t{v}\n" for s, v in values))


def test_read_live_dir_is_a_long_table(tmp_path):
    _write_series(tmp_path, "train/g_loss", [(0, 1.0), (1, 0.5)])
    _write_series(tmp_path, "val/g_loss", [(0, 2.0)])
    table = read_live_dir(tmp_path)
    assert sorted(table["metric"].unique()) == ["train/g_loss", "val/g_loss"]
    assert table.loc[table["metric"] == "train/g_loss", "value"].tolist() == [1.0, 0.5]


def test_training_history_puts_both_stages_on_one_epoch_axis_per_recipe(tmp_path):
    for recipe in ("paper", "refine"):
        _write_series(tmp_path / "train" / recipe / "stage1", "train/perceptual_accuracy", [(0, 0.1), (1, 0.2)])
        _write_series(tmp_path / "train" / recipe / "stage2", "train/perceptual_accuracy", [(2, 0.3), (3, 0.4)])
    history = load_training_history(tmp_path, ["paper", "refine"])
    paper = history[history["recipe"] == "paper"]
    assert paper.sort_values("epoch")["epoch"].tolist() == [1, 2, 3, 4]
    assert set(history["stage"]) == {"stage 1", "stage 2"} and set(history["recipe"]) == {"paper", "refine"}
    assert set(history["subset"]) == {"train"} and set(history["name"]) == {"perceptual_accuracy"}


def test_missing_or_malformed_inputs_name_the_file(tmp_path):
    with pytest.raises(ReportError, match="no dvclive plots folder"):
        read_live_dir(tmp_path / "absent")
    bad = tmp_path / "bad" / "plots" / "metrics" / "g_loss.tsv"
    bad.parent.mkdir(parents=True)
    bad.write_text("epoch\tloss\n0\t1\n")
    with pytest.raises(ReportError, match="g_loss.tsv: expected columns 'step' and 'g_loss'"):
        read_live_dir(tmp_path / "bad")
    with pytest.raises(ReportError, match="metrics.json: not found"):
        read_json(tmp_path / "metrics.json")
    (tmp_path / "b.csv").write_text("method,bucket\nmodel,all\n")
    with pytest.raises(ReportError, match="b.csv: expected columns"):
        load_bucket_metrics(tmp_path / "b.csv")


def test_examples_are_spread_over_buckets_and_ordered_by_hole_ratio():
    index = [
        {"bucket": b, "hole_ratio": r}
        for b, r in [("0.0-0.1", "0.05"), ("0.0-0.1", "0.07"), ("0.1-0.2", "0.15"), ("0.5-0.6", "0.55"), ("0.5-0.6", "0.52")]
    ]
    assert pick_examples(index, 3) == [0, 2, 3]
    assert pick_examples(index, 10) == [0, 1, 2, 4, 3]


def _per_image(refine_l1, biharmonic_l1, telea_l1):
    rows = []
    for i, (r, b, t) in enumerate(zip(refine_l1, biharmonic_l1, telea_l1)):
        bucket = "0.0-0.1" if i % 2 else "0.2-0.3"
        for method, l1 in (("refine", r), ("biharmonic", b), ("telea", t)):
            rows.append({"index": i, "bucket": bucket, "method": method, "l1_hole": l1, "psnr_hole": -10 * l1, "ssim": 1 - l1})
    return pd.DataFrame(rows)


def test_target_rows_pair_each_crop_against_the_best_classical_method_of_each_bucket():
    rng = [0.01 * k for k in range(1, 11)]
    better = _per_image([x - 0.005 for x in rng], rng, [x + 0.02 for x in rng])
    rows = {(r["metric"], r["bucket"]): r for r in target_rows(better, "refine", 200, 0)}
    assert rows[("l1_hole", "all")]["best_classical"] == "biharmonic"
    assert rows[("l1_hole", "all")]["diff"] == pytest.approx(-0.005)
    assert rows[("l1_hole", "all")]["verdict"] == "better" and rows[("psnr_hole", "0.2-0.3")]["verdict"] == "better"
    worse = _per_image([x + 0.005 for x in rng], rng, [x + 0.02 for x in rng])
    assert all(r["verdict"] == "worse" for r in target_rows(worse, "refine", 200, 0))
    mixed = _per_image([x + (0.01 if k % 4 < 2 else -0.01) for k, x in enumerate(rng)], rng, rng)
    assert {r["verdict"] for r in target_rows(mixed, "refine", 200, 0)} == {"no significant difference"}


def test_results_markdown_bolds_the_best_method_never_a_raw_output():
    rows = []
    for method, l1, psnr in (("paper", 0.09, 20.0), ("paper_raw", 0.01, 50.0), ("telea", 0.05, 28.0)):
        rows += [
            {
                "method": method,
                "bucket": "all",
                "metric": "l1_hole",
                "n": 4,
                "mean": l1,
                "ci_low": l1 - 0.01,
                "ci_high": l1 + 0.01,
            },
            {"method": method, "bucket": "all", "metric": "psnr", "n": 4, "mean": psnr, "ci_low": psnr - 1, "ci_high": psnr + 1},
        ]
    comparison = pd.DataFrame({"generator": ["unet"], "seed": ["1"], "metric": ["val/l1_hole"], "step": [0], "value": [0.1]})
    history = pd.DataFrame({"recipe": ["paper"], "stage": ["stage 1"], "metric": ["train/g_loss"], "step": [0], "value": [0.5]})
    headline = {"n_images": 4, "paper": {"perceptual_accuracy": 0.25}, "discriminator_real_accuracy": 0.5}
    claims = [
        {
            "claim": "d",
            "finding": "stage 2 raises it",
            "measurement": "m",
            "mean": 0.1,
            "ci_low": 0.05,
            "ci_high": 0.15,
            "n_seeds": 3,
            "expected": "> 0",
            "delta": 0.05,
            "verdict": "reproduced",
            "seeds_needed": None,
        }
    ]
    text = make_results_markdown(headline, pd.DataFrame(rows), [], comparison, history, claims, "paper")
    assert "| telea | **0.0500 [0.0400, 0.0600]** | **28.00 [27.00, 29.00]** |" in text
    assert "| paper | 0.0900 [0.0800, 0.1000] | 20.00 [19.00, 21.00] |" in text
    assert "paper_raw" not in text.split("## Target")[0]  # a user gets the composite
    assert "`paper` **0.250**" in text and "| unet | 0.1000 |" in text
    assert "| d | stage 2 raises it | m | 0.1 [0.05, 0.15] | > 0, +-0.05 | 3 | **reproduced** |  |" in text


def _write_json(path, value):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(value))


def test_ablation_results_list_every_variant_against_the_default_recipe(tmp_path):
    _write_json(tmp_path / "baselines/metrics.json", {"biharmonic": {"all": {"l1_hole": 0.04, "psnr_hole": 28.5, "ssim": 0.88}}})
    _write_json(
        tmp_path / "variants/refine/metrics.json",
        {"all": {"l1_hole": 0.041, "psnr_hole": 28.0, "ssim": 0.88}, "steps": 960, "changes": {}, "base": "refine"},
    )
    _write_json(
        tmp_path / "variants/no_residual/metrics.json",
        {
            "all": {"l1_hole": 0.05, "psnr_hole": 26.0, "ssim": 0.86},
            "correction": 0.0123,
            "steps": 960,
            "changes": {"residual_gate": None},
            "base": "refine",
        },
    )
    ablation = read_ablation(tmp_path, ["refine", "no_residual"])
    assert list(ablation) == ["biharmonic", "refine", "no_residual"]
    text = ablation_markdown(ablation, "refine")
    assert '| no_residual | {"residual_gate": null} | 960 | 0.0500 | 26.00 | 0.8600 | 0.0123 | -2.00 |' in text
    assert "| refine | (refine itself) | 960 | 0.0410 | 28.00 | 0.8800 |  | +0.00 |" in text  # no correction recorded
    assert "| biharmonic | classical method |" in text
    with pytest.raises(ReportError, match="variants/transpose/metrics.json"):
        read_ablation(tmp_path, ["refine", "transpose"])


def test_claims_figure_has_one_panel_per_claim(tmp_path):
    from image_completion.evaluation.claims import claim_row
    from image_completion.evaluation.figures import plot_claims

    rows = [
        claim_row("a", "f", "m", {1: -1.0, 2: -1.2, 3: -0.9}, expected=-1, delta=0.1),
        claim_row("b", "f", "m", {1: 0.01, 2: -0.01, 3: 0.0}, expected=-1, delta=0.1),
    ]
    plot_claims(rows, tmp_path / "claims.png")
    with Image.open(tmp_path / "claims.png") as im:
        width, height = im.size
    assert width > height  # two panels side by side
