"""The report's figures (seaborn, headless), each from saved results only: training curves,
the architecture comparison, metrics per bucket, examples, the learning curve, the claims."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # headless: the stage runs on servers and in CI
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import seaborn as sns  # noqa: E402

from image_completion.config import ALL_BUCKETS, BASELINES  # noqa: E402
from image_completion.core.holes import InputSpec, generator_input  # noqa: E402
from image_completion.evaluation.report import LOSS_PARTS, METRIC_LABELS, ReportError  # noqa: E402


def _save(fig, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110, bbox_inches="tight")
    plt.close(fig)


def plot_loss_parts(history: pd.DataFrame, path: Path) -> None:
    """Generator loss and each of its parts per epoch, both stages, train and validation, per recipe."""
    data = history[history["name"].isin(LOSS_PARTS)]
    if data.empty:
        raise ReportError(f"no generator loss series ({', '.join(LOSS_PARTS)}) in the training logs")
    grid = sns.relplot(
        data=data,
        x="epoch",
        y="value",
        hue="stage",
        style="subset",
        col="name",
        row="recipe",
        col_order=[p for p in LOSS_PARTS if p in set(data["name"])],
        kind="line",
        marker="o",
        facet_kws={"sharey": False},
        height=2.5,
        aspect=1.2,
    )
    grid.set_titles("{row_name}: {col_name}")
    grid.figure.suptitle("Generator loss parts per epoch (stage 2: discriminator frozen)", y=1.02)
    _save(grid.figure, path)


def plot_perceptual_accuracy(history: pd.DataFrame, path: Path, learning_d: pd.DataFrame | None = None) -> None:
    """The paper's figure: share of generated images that fool D, across both stages on one axis;
    with ``learning_d`` (the claims run whose discriminator learns) beside the default run."""
    data = history[history["name"] == "perceptual_accuracy"].assign(run="default params")
    if data.empty:
        raise ReportError("no perceptual_accuracy series in the training logs")
    if learning_d is not None:
        data = pd.concat([data, learning_d.assign(run="32x32, D learning rate 1e-4 (claims run)")], ignore_index=True)
    grid = sns.relplot(
        data=data,
        x="epoch",
        y="value",
        hue="recipe",
        style="subset",
        col="run",
        kind="line",
        marker="o",
        facet_kws={"sharex": False},
        height=3.2,
        aspect=1.4,
    )
    for ax, (_, frame) in zip(grid.axes.flat, data.groupby("run", sort=False)):
        ax.axvline(frame.loc[frame["stage"] == "stage 1", "epoch"].max() + 0.5, color="grey", linestyle="--", linewidth=1)
    grid.set_axis_labels("epoch (dashed: stage 1 | stage 2)", "perceptual accuracy\n(share with D(G(x)) > 0.5)")
    grid.figure.suptitle("Perceptual accuracy across both training stages", y=1.03)
    _save(grid.figure, path)


def plot_comparison(table: pd.DataFrame, path: Path) -> None:
    """Architecture comparison: every logged series per epoch, one line per generator kind
    (mean over the seeds with a 95 % band)."""
    names = sorted(table["name"].unique())
    # The paper kept the scaled U-Net and rejected the other two: say which is which.
    table = table.assign(
        generator=table["generator"].map(
            lambda kind: f"{kind} (paper's choice)" if kind == "unet_scaled" else f"{kind} (rejected)"
        )
    )
    grid = sns.relplot(
        data=table,
        x="epoch",
        y="value",
        hue="generator",
        style="subset",
        col="name",
        col_order=names,
        col_wrap=min(3, len(names)),
        kind="line",
        marker="o",
        errorbar=("ci", 95),
        facet_kws={"sharey": False},
        height=2.8,
        aspect=1.3,
    )
    grid.set_titles("{col_name}")
    grid.figure.suptitle(f"Architecture comparison (same data and budget; {table['seed'].nunique()} seeds)", y=1.03)
    _save(grid.figure, path)


def plot_learning_curve(curve: dict, ablation: dict, path: Path) -> None:
    """Hole PSNR and hole L1 of the improved recipe against training step on the validation
    photos, with each classical method (same crops) as a horizontal line: how many steps the
    recipe needs to pass them."""
    points = pd.DataFrame(curve["points"])
    fig, axes = plt.subplots(1, 2, figsize=(11, 3.6))
    for ax, metric, label in (
        (axes[0], "psnr_hole", "hole PSNR (dB), higher is better"),
        (axes[1], "l1_hole", "hole L1, lower is better"),
    ):
        ax.plot(points["step"], points[metric], "o-", color="black", label=curve["recipe"])
        # The real inpainting methods only: the mean fill's line would squash the axis.
        inpainting = ((n, e) for n, e in ablation.items() if n in BASELINES and n != "mean_fill")
        for (name, entry), color in zip(inpainting, sns.color_palette("tab10")):
            ax.axhline(entry[ALL_BUCKETS][metric], color=color, linestyle="--", linewidth=1, label=name)
        ax.set_xlabel("training step (batch 8)")
        ax.set_title(label, fontsize=10)
    axes[1].legend(fontsize=8, loc="best")
    fig.suptitle(f"`{curve['recipe']}` on the validation photos against the classical methods", y=1.02)
    fig.tight_layout()
    _save(fig, path)


def plot_buckets(table: pd.DataFrame, path: Path) -> None:
    """Each metric per hole-ratio bucket, the model against the baselines, with 95 % intervals."""
    data = table[table["bucket"] != ALL_BUCKETS]
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
            ax.errorbar(x, rows_m["mean"], yerr=err, fmt="o-", ms=3.5, lw=1.2, capsize=2, color=palette[method], label=method)
        ax.set_xticks(np.arange(len(buckets)), buckets, rotation=30)
        ax.set_title(METRIC_LABELS[metric], fontsize=10)
        ax.set_xlabel("hole ratio")
    for ax in list(axes.flat)[len(metrics) :]:
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
    """Original | with hole | each recipe's fill | each baseline's fill, on test crops."""
    from image_completion.evaluation.predictions import (  # noqa: PLC0415 - predictions loads on use
        load_predictions,  # numpy-only reader of the saved folder
    )

    pred = load_predictions(predictions_dir)
    methods = [m for m in pred.meta["methods"] if not m.endswith("_raw")]
    rows = pick_examples(pred.index, count)
    columns = ["original", "with hole (white)", *methods]
    fig, axes = plt.subplots(len(rows), len(columns), figsize=(1.9 * len(columns), 1.9 * len(rows)), squeeze=False)
    for r, i in enumerate(rows):
        with_hole = generator_input(pred.targets[i], pred.masks[i], InputSpec(hole_value=1.0))  # the hole in white
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


def plot_claims(rows: list[dict], path: Path) -> None:
    """One panel per claim row: the per-seed values, the mean with its 95 % interval, the
    equivalence band [-delta, +delta] and 0."""
    fig, axes = plt.subplots(1, len(rows), figsize=(2.6 * len(rows), 3.4), squeeze=False)
    for ax, row in zip(axes[0], rows):
        values = list(row["per_seed"].values())
        ax.axhspan(-row["delta"], row["delta"], color="0.85", label="equivalence band")
        ax.axhline(0.0, color="0.4", linewidth=0.8)
        sns.stripplot(y=values, ax=ax, color="tab:blue", size=6, jitter=0.1)
        if np.isfinite(row["ci_low"]):
            ax.errorbar([0.25], [row["mean"]], yerr=[[row["mean"] - row["ci_low"]], [row["ci_high"] - row["mean"]]],
                        fmt="o", color="black", capsize=4)  # fmt: skip
        ax.set_title(f"({row['claim']}) {row['verdict']}", fontsize=9)
        ax.set_xticks([])
        ax.set_ylabel(f"paper: {row['expected']}", fontsize=8)
    fig.suptitle("The paper's claims: per-seed values (dots), mean and 95 % interval (bar), +-delta (grey)", fontsize=9)
    _save(fig, path)


def plot_fullsize(per_case: pd.DataFrame, path: Path) -> None:
    """Hole PSNR and hole L1 per hole-ratio bucket, each method a line with its 95 % interval, one
    column per photo size (``per_case`` has a ``size`` column)."""
    long = per_case.melt(
        id_vars=["size", "bucket", "method"], value_vars=["psnr_hole", "l1_hole"], var_name="metric", value_name="value"
    )
    grid = sns.catplot(
        data=long, x="bucket", y="value", hue="method", col="size", row="metric", kind="point",
        errorbar=("ci", 95), dodge=0.4, sharey="row", height=3.2, aspect=1.5, markersize=3, linewidth=1.2,
    )  # fmt: skip
    grid.set_titles("{row_name}, {col_name} px")
    grid.set_axis_labels("hole-ratio bucket", "")
    for ax in grid.axes[-1]:  # the bottom row carries the bucket labels
        ax.tick_params(axis="x", labelbottom=True, labelrotation=30)
    _save(grid.figure, path)
