"""Stage `report`: figures and a results table from saved metrics only.

Reads the dvclive folders of `compare` and both training stages, the evaluation's metrics and
per-bucket table, and a few saved predictions; it never trains or scores anything itself.

    python -m image_completion.report --reports reports --metrics reports/metrics.json \
        --bucket-metrics reports/bucket_metrics.csv --predictions data/predictions \
        --figures reports/figures --results reports/results.md
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # headless: the stage runs on servers and in CI
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import seaborn as sns  # noqa: E402

from image_completion.images import write_text_atomic  # noqa: E402

LOSS_PARTS = ("g_loss", "g_valid", "g_hole", "g_perceptual", "g_style")


class ReportError(RuntimeError):
    """A saved metrics file is missing or malformed."""


def read_live_dir(live_dir: Path) -> pd.DataFrame:
    """All dvclive series of one folder as a long table: metric ('train/g_loss'), step, value."""
    plots = Path(live_dir) / "plots" / "metrics"
    if not plots.is_dir():
        raise ReportError(f"{plots}: no dvclive plots folder (did the stage that writes {live_dir} run?)")
    frames = []
    for tsv in sorted(plots.rglob("*.tsv")):
        table = pd.read_csv(tsv, sep="\t")
        name = tsv.relative_to(plots).with_suffix("").as_posix()
        value_column = tsv.stem
        if "step" not in table or value_column not in table:
            raise ReportError(f"{tsv}: expected columns 'step' and '{value_column}', found {list(table.columns)}")
        frames.append(pd.DataFrame({"metric": name, "step": table["step"], "value": table[value_column]}))
    if not frames:
        raise ReportError(f"{plots}: no .tsv series")
    return pd.concat(frames, ignore_index=True)


def _split_metric(frame: pd.DataFrame) -> pd.DataFrame:
    """'train/g_loss' -> subset 'train', name 'g_loss'; names without a folder get subset 'train'."""
    parts = frame["metric"].str.rsplit("/", n=1, expand=True)
    if parts.shape[1] == 1:
        parts[1] = parts[0]
        parts[0] = "train"
    frame = frame.copy()
    frame["subset"] = parts[0].fillna("train")
    frame["name"] = parts[1].fillna(parts[0])
    return frame


def load_training_history(reports: Path) -> pd.DataFrame:
    """Both training stages on one epoch axis (stage 2 logs its steps after stage 1's)."""
    frames = []
    for stage in (1, 2):
        frame = _split_metric(read_live_dir(reports / f"train_stage{stage}"))
        frame["stage"] = f"stage {stage}"
        frames.append(frame)
    history = pd.concat(frames, ignore_index=True)
    history["epoch"] = history["step"] + 1
    return history


def load_comparison(reports: Path) -> pd.DataFrame:
    """The compare stage's per-epoch metrics of every kind in ``<reports>/compare/<kind>/`` (dvclive)."""
    root = reports / "compare"
    kinds = sorted(p.name for p in root.iterdir() if p.is_dir()) if root.is_dir() else []
    if not kinds:
        raise ReportError(f"{root}: no per-kind folders (run the compare stage)")
    frames = []
    for kind in kinds:
        frame = _split_metric(read_live_dir(root / kind))
        frame["generator"] = kind
        frames.append(frame)
    table = pd.concat(frames, ignore_index=True)
    table["epoch"] = table["step"] + 1
    return table


def _save(fig, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110, bbox_inches="tight")
    plt.close(fig)


def plot_loss_parts(history: pd.DataFrame, path: Path) -> None:
    """Generator loss and each of its parts per epoch, both stages, train and validation."""
    data = history[history["name"].isin(LOSS_PARTS)]
    if data.empty:
        raise ReportError(f"no generator loss series ({', '.join(LOSS_PARTS)}) in the training logs")
    grid = sns.relplot(
        data=data, x="epoch", y="value", hue="stage", style="subset", col="name", col_wrap=3,
        kind="line", marker="o", facet_kws={"sharey": False}, height=2.8, aspect=1.3,
    )
    grid.set_titles("{col_name}")
    grid.figure.suptitle("Generator loss parts per epoch (stage 2: discriminator frozen)", y=1.03)
    _save(grid.figure, path)


def plot_perceptual_accuracy(history: pd.DataFrame, path: Path) -> None:
    """The paper's figure: share of generated images that fool D, across both stages on one axis."""
    data = history[history["name"] == "perceptual_accuracy"]
    if data.empty:
        raise ReportError("no perceptual_accuracy series in the training logs")
    fig, ax = plt.subplots(figsize=(7, 3.5))
    sns.lineplot(data=data, x="epoch", y="value", hue="stage", style="subset", marker="o", ax=ax)
    stage1_end = history.loc[history["stage"] == "stage 1", "epoch"].max()
    ax.axvline(stage1_end + 0.5, color="grey", linestyle="--", linewidth=1)
    ax.set_ylabel("perceptual accuracy\n(share with D(G(x)) > 0.5)")
    ax.set_title("Perceptual accuracy across both training stages")
    _save(fig, path)


def plot_comparison(table: pd.DataFrame, path: Path) -> None:
    """Architecture comparison: every logged series per epoch, one line per generator kind."""
    names = sorted(table["name"].unique())
    # The paper kept the scaled U-Net and rejected the other two: say which is which.
    table = table.assign(generator=table["generator"].map(
        lambda kind: f"{kind} (paper's choice)" if kind == "unet_scaled" else f"{kind} (rejected)"))
    grid = sns.relplot(
        data=table, x="epoch", y="value", hue="generator", style="subset", col="name",
        col_order=names, col_wrap=min(3, len(names)), kind="line", marker="o",
        facet_kws={"sharey": False}, height=2.8, aspect=1.3,
    )
    grid.set_titles("{col_name}")
    grid.figure.suptitle("Architecture comparison (same data, same budget)", y=1.03)
    _save(grid.figure, path)


METRIC_LABELS = {
    "l1_hole": "L1, hole (lower is better)",
    "l1": "L1, whole image (lower is better)",
    "psnr_hole": "PSNR, hole, dB (higher is better)",
    "psnr": "PSNR, whole image, dB (higher is better)",
    "ssim": "SSIM, whole image (higher is better)",
    "ssim_hole": "SSIM, hole (higher is better)",
    "fooled": "fool rate: D(output) > 0.5",
}
LOWER_IS_BETTER = {"l1_hole", "l1"}


def load_bucket_metrics(path: Path) -> pd.DataFrame:
    """Reads the evaluate stage's per-bucket CSV (``--bucket-metrics``); ``ReportError`` if absent."""
    try:
        table = pd.read_csv(path)
    except FileNotFoundError:
        raise ReportError(f"{path}: not found (run the evaluate stage)") from None
    expected = {"method", "bucket", "metric", "n", "mean", "ci_low", "ci_high"}
    if not expected <= set(table.columns):
        raise ReportError(f"{path}: expected columns {sorted(expected)}, found {list(table.columns)}")
    return table


def plot_buckets(table: pd.DataFrame, path: Path) -> None:
    """Each metric per hole-ratio bucket, the model against the baselines, with 95 % intervals."""
    data = table[table["bucket"] != "all"]
    metrics = [m for m in METRIC_LABELS if m in set(data["metric"])]
    methods = list(dict.fromkeys(data["method"]))
    buckets = list(dict.fromkeys(data["bucket"]))
    palette = dict(zip(methods, sns.color_palette("tab10", len(methods))))
    cols = 3
    rows = -(-len(metrics) // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(5.2 * cols, 3.4 * rows), squeeze=False)
    offsets = np.linspace(-0.3, 0.3, len(methods))
    for ax, metric in zip(axes.flat, metrics):
        for offset, method in zip(offsets, methods):
            rows_m = data[(data["metric"] == metric) & (data["method"] == method)].set_index("bucket").reindex(buckets)
            x = np.arange(len(buckets)) + offset
            err = np.vstack([rows_m["mean"] - rows_m["ci_low"], rows_m["ci_high"] - rows_m["mean"]])
            ax.errorbar(x, rows_m["mean"], yerr=err, fmt="o-", ms=3.5, lw=1.2, capsize=2,
                        color=palette[method], label=method)
        ax.set_xticks(np.arange(len(buckets)), buckets, rotation=30)
        ax.set_title(METRIC_LABELS[metric], fontsize=10)
        ax.set_xlabel("hole ratio")
    for ax in list(axes.flat)[len(metrics):]:
        ax.axis("off")
    handles, labels = axes.flat[0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="lower center", ncol=len(methods), bbox_to_anchor=(0.5, -0.04))
    fig.suptitle("Test crops per hole-ratio bucket: means with bootstrap 95 % intervals", y=1.0)
    fig.tight_layout()
    _save(fig, path)


def pick_examples(index: list[dict], count: int) -> list[int]:
    """Example rows spread over the hole-ratio buckets (the first of each bucket, in turn)."""
    by_bucket: dict[str, list[int]] = {}
    for i, row in enumerate(index):
        by_bucket.setdefault(row["bucket"], []).append(i)
    picked: list[int] = []
    while len(picked) < min(count, len(index)):
        for rows in by_bucket.values():
            if rows and len(picked) < count:
                picked.append(rows.pop(0))
    return sorted(picked, key=lambda i: float(index[i]["hole_ratio"]))


def plot_examples(predictions_dir: Path, path: Path, count: int = 6) -> None:
    """Original | with hole | the model's fill | each baseline's fill, on test crops."""
    from image_completion.evaluate import load_predictions  # numpy-only reader of the saved folder

    pred = load_predictions(predictions_dir)
    methods = [m for m in pred.meta["methods"] if m != "model_raw"]
    rows = pick_examples(pred.index, count)
    hole_value = float(pred.meta["hole_value"])
    columns = ["original", "with hole", *methods]
    fig, axes = plt.subplots(len(rows), len(columns), figsize=(1.9 * len(columns), 1.9 * len(rows)), squeeze=False)
    for r, i in enumerate(rows):
        mask = pred.masks[i][..., None]
        with_hole = pred.targets[i] * (1 - mask) + hole_value * mask
        images = [pred.targets[i], with_hole, *(pred.outputs[m][i] for m in methods)]
        for c, image in enumerate(images):
            ax = axes[r, c]
            ax.imshow(np.clip(image, 0, 1), interpolation="nearest")
            ax.set_xticks([])
            ax.set_yticks([])
            if r == 0:
                ax.set_title(columns[c], fontsize=9)
        axes[r, 0].set_ylabel(f"hole {float(pred.index[i]['hole_ratio']):.0%}", fontsize=8)
    fig.suptitle("Test crops (photos never seen in training)", y=1.0)
    fig.tight_layout()
    _save(fig, path)


def _fmt(value: float, metric: str) -> str:
    return f"{value:.2f}" if metric.startswith("psnr") else f"{value:.4f}"


def make_results_markdown(headline: dict, buckets: pd.DataFrame, comparison: pd.DataFrame,
                          history: pd.DataFrame) -> str:
    """The headline table and how each number was computed."""
    overall = buckets[buckets["bucket"] == "all"]
    methods = list(dict.fromkeys(overall["method"]))
    metrics = [m for m in METRIC_LABELS if m in set(overall["metric"])]
    lines = [
        "# Results",
        "",
        "Generated by the `report` stage from `reports/metrics.json` and `reports/bucket_metrics.csv`;",
        "do not edit by hand. Test crops: "
        f"{headline.get('n_images', '?')} fixed crops of the held-out test photos, one per fixed evaluation",
        "mask (hole ratios 0-60 %). Each cell: mean [bootstrap 95 % interval]. Best mean per column in bold.",
        "",
        "| method | " + " | ".join(METRIC_LABELS[m] for m in metrics) + " |",
        "|---|" + "---|" * len(metrics),
    ]
    best = {}
    for metric in metrics:
        rows = overall[(overall["metric"] == metric) & (overall["method"] != "model_raw")]
        if metric == "fooled" or rows.empty:
            continue
        pick = rows["mean"].idxmin() if metric in LOWER_IS_BETTER else rows["mean"].idxmax()
        best[metric] = rows.loc[pick, "method"]
    for method in methods:
        cells = []
        for metric in metrics:
            row = overall[(overall["metric"] == metric) & (overall["method"] == method)]
            if row.empty:
                cells.append("")
                continue
            row = row.iloc[0]
            text = f"{_fmt(row['mean'], metric)} [{_fmt(row['ci_low'], metric)}, {_fmt(row['ci_high'], metric)}]"
            cells.append(f"**{text}**" if best.get(metric) == method else text)
        lines.append(f"| {method} | " + " | ".join(cells) + " |")
    lines += [
        "",
        "- `model`: the stage-2 generator's output with the known pixels pasted back (what a user gets);",
        "  `model_raw`: its output as is. Baselines are composites by construction.",
        "- L1: mean absolute error in [0, 1] units over the hole pixels (`l1_hole`) or the whole crop (`l1`).",
        "- PSNR: 10 log10(1 / MSE), over the whole crop or over the hole pixels only.",
        "- SSIM: scikit-image `structural_similarity`, data range 1, Gaussian window 11x11, sigma 1.5;",
        "  `ssim_hole` averages the SSIM map over the hole pixels.",
        "- Fool rate: share of outputs the trained discriminator scores D(output) > 0.5. The paper's",
        f"  perceptual accuracy (D(G(x)) > 0.5 on the raw output): **{headline.get('perceptual_accuracy', float('nan')):.3f}**;",
        f"  the discriminator calls {headline.get('discriminator_real_accuracy', float('nan')):.3f} of the real crops real.",
        "",
        "## Architecture comparison (stage `compare`, final epoch)",
        "",
    ]
    last = comparison.sort_values("step").groupby(["generator", "metric"]).tail(1)
    table = last.pivot(index="generator", columns="metric", values="value")
    lines.append("| generator | " + " | ".join(table.columns) + " |")
    lines.append("|---|" + "---|" * len(table.columns))
    for kind, row in table.iterrows():
        lines.append(f"| {kind} | " + " | ".join(f"{v:.4f}" for v in row) + " |")
    lines += ["", "## Training (last epoch of each stage)", ""]
    last = history.sort_values("step").groupby(["stage", "metric"]).tail(1)
    table = last.pivot(index="metric", columns="stage", values="value")
    lines.append("| metric | " + " | ".join(table.columns) + " |")
    lines.append("|---|" + "---|" * len(table.columns))
    for metric, row in table.iterrows():
        lines.append(f"| {metric} | " + " | ".join("" if pd.isna(v) else f"{v:.4f}" for v in row) + " |")
    return "\n".join(lines) + "\n"


def read_json(path: Path) -> dict:
    """Reads a JSON file written by an earlier stage; ``ReportError`` naming it if absent or invalid."""
    try:
        return json.loads(Path(path).read_text())
    except FileNotFoundError:
        raise ReportError(f"{path}: not found (run the stage that writes it)") from None
    except json.JSONDecodeError as err:
        raise ReportError(f"{path}: not valid JSON: {err}") from None


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reports", type=Path, required=True, help="holds compare/ and train_stage{1,2}/ (dvclive)")
    parser.add_argument("--metrics", type=Path, required=True, help="headline metrics JSON of evaluate")
    parser.add_argument("--bucket-metrics", type=Path, required=True, help="per-bucket CSV of evaluate")
    parser.add_argument("--predictions", type=Path, required=True)
    parser.add_argument("--figures", type=Path, required=True)
    parser.add_argument("--results", type=Path, required=True)
    args = parser.parse_args(argv)
    sns.set_theme(style="whitegrid", context="notebook")
    history = load_training_history(args.reports)
    comparison = load_comparison(args.reports)
    buckets = load_bucket_metrics(args.bucket_metrics)
    headline = read_json(args.metrics)
    plot_loss_parts(history, args.figures / "train_loss_parts.png")
    plot_perceptual_accuracy(history, args.figures / "perceptual_accuracy.png")
    plot_comparison(comparison, args.figures / "architecture_comparison.png")
    plot_buckets(buckets, args.figures / "metrics_by_bucket.png")
    plot_examples(args.predictions, args.figures / "examples.png")
    write_text_atomic(args.results, make_results_markdown(headline, buckets, comparison, history))


if __name__ == "__main__":
    main()
