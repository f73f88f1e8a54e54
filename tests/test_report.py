"""The report stage's readers and table, on small saved metrics written by the test.

The figures themselves are produced and parsed in tests/test_pipeline.py (a real run)."""

import pandas as pd
import pytest

from image_completion.report import (
    ReportError,
    load_bucket_metrics,
    load_training_history,
    make_results_markdown,
    pick_examples,
    read_json,
    read_live_dir,
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


def test_training_history_puts_both_stages_on_one_epoch_axis(tmp_path):
    _write_series(tmp_path / "train_stage1", "train/perceptual_accuracy", [(0, 0.1), (1, 0.2)])
    _write_series(tmp_path / "train_stage2", "train/perceptual_accuracy", [(2, 0.3), (3, 0.4)])
    history = load_training_history(tmp_path)
    assert history.sort_values("epoch")["epoch"].tolist() == [1, 2, 3, 4]
    assert set(history["stage"]) == {"stage 1", "stage 2"}
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
    index = [{"bucket": b, "hole_ratio": r} for b, r in
             [("0.0-0.1", "0.05"), ("0.0-0.1", "0.07"), ("0.1-0.2", "0.15"), ("0.5-0.6", "0.55"), ("0.5-0.6", "0.52")]]
    assert pick_examples(index, 3) == [0, 2, 3]
    assert pick_examples(index, 10) == [0, 1, 2, 4, 3]


def test_results_table_bolds_the_best_method_per_metric():
    rows = []
    for method, l1, psnr in (("model", 0.09, 20.0), ("model_raw", 0.01, 50.0), ("telea", 0.05, 28.0)):
        rows += [
            {"method": method, "bucket": "all", "metric": "l1_hole", "n": 4, "mean": l1, "ci_low": l1 - 0.01, "ci_high": l1 + 0.01},
            {"method": method, "bucket": "all", "metric": "psnr", "n": 4, "mean": psnr, "ci_low": psnr - 1, "ci_high": psnr + 1},
        ]
    comparison = pd.DataFrame({"generator": ["unet"], "metric": ["val/l1_hole"], "step": [0], "value": [0.1]})
    history = pd.DataFrame({"stage": ["stage 1"], "metric": ["train/g_loss"], "step": [0], "value": [0.5]})
    text = make_results_markdown({"n_images": 4, "perceptual_accuracy": 0.25, "discriminator_real_accuracy": 0.5},
                                 pd.DataFrame(rows), comparison, history)
    # model_raw is reported but never "best": a user gets the composite
    assert "| telea | **0.0500 [0.0400, 0.0600]** | **28.00 [27.00, 29.00]** |" in text
    assert "| model | 0.0900 [0.0800, 0.1000] | 20.00 [19.00, 21.00] |" in text
    assert "**0.250**" in text and "| unet | 0.1000 |" in text
