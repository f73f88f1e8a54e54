"""Stage `report`: the results tables (results.md) and the readers of saved results.

Reads the dvclive folders of `compare` and both training stages, the evaluation's metrics and
per-bucket table; it never trains or scores anything itself. The figures: ``evaluation.figures``.

The command line is ``image_completion.stages.report``.
"""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

from image_completion.config import ALL_BUCKETS, BASELINES

LOSS_PARTS = ("g_loss", "g_valid", "g_hole", "g_perceptual", "g_style")

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


def load_training_history(reports: Path, recipes: list[str]) -> pd.DataFrame:
    """Both training stages of every recipe on one epoch axis (stage 2 logs its steps after
    stage 1's): ``reports/train/<recipe>/stage{1,2}``."""
    frames = []
    for recipe in recipes:
        for stage in (1, 2):
            frame = _split_metric(read_live_dir(reports / "train" / recipe / f"stage{stage}"))
            frame["recipe"], frame["stage"] = recipe, f"stage {stage}"
            frames.append(frame)
    history = pd.concat(frames, ignore_index=True)
    history["epoch"] = history["step"] + 1
    return history


def load_learning_d(root: Path) -> pd.DataFrame:
    """The claims runs' ``learning_d`` histories (both stages, every seed) on one epoch axis."""
    frames = []
    for seed in sorted(p.name for p in root.iterdir() if p.is_dir()):
        for stage in (1, 2):
            frame = _split_metric(read_live_dir(root / seed / "learning_d" / f"stage{stage}"))
            frames.append(frame.assign(recipe="paper", stage=f"stage {stage}", seed=seed))
    history = pd.concat(frames, ignore_index=True)
    return history[history["name"] == "perceptual_accuracy"].assign(epoch=lambda f: f["step"] + 1)


def load_comparison(reports: Path) -> pd.DataFrame:
    """The compare stage's per-epoch metrics of every run ``<reports>/compare/<kind>-<seed>/`` (dvclive)."""
    root = reports / "compare"
    runs = sorted(p.name for p in root.iterdir() if p.is_dir() and "-" in p.name) if root.is_dir() else []
    if not runs:
        raise ReportError(f"{root}: no <kind>-<seed> folders (run the compare stage)")
    frames = []
    for run in runs:
        frame = _split_metric(read_live_dir(root / run))
        frame["generator"], frame["seed"] = run.rsplit("-", 1)
        frames.append(frame)
    table = pd.concat(frames, ignore_index=True)
    table["epoch"] = table["step"] + 1
    return table


def read_csv(path: Path, expected: set[str]) -> pd.DataFrame:
    """Reads a CSV an earlier stage wrote; ``ReportError`` naming it if absent or without ``expected`` columns."""
    try:
        table = pd.read_csv(path)
    except FileNotFoundError:
        raise ReportError(f"{path}: not found (run the stage that writes it)") from None
    if not expected <= set(table.columns):
        raise ReportError(f"{path}: expected columns {sorted(expected)}, found {list(table.columns)}")
    return table


def load_bucket_metrics(path: Path) -> pd.DataFrame:
    """Reads the evaluate stage's per-bucket CSV (``--bucket-metrics``); ``ReportError`` if absent."""
    return read_csv(path, {"method", "bucket", "metric", "n", "mean", "ci_low", "ci_high"})


def _fmt(value: float, metric: str) -> str:
    return f"{value:.2f}" if metric.startswith("psnr") else f"{value:.4f}"


def _table(header: list[str], rows: list[list[str]]) -> list[str]:
    return ["| " + " | ".join(header) + " |", "|" + "---|" * len(header), *("| " + " | ".join(r) + " |" for r in rows)]


TARGET_METRICS = ("l1_hole", "psnr_hole", "ssim")


def target_rows(per_image: pd.DataFrame, recipe: str, n_samples: int, seed: int) -> list[dict]:
    """The recipe against the best classical method of each (metric, bucket): the paired per-crop
    difference (recipe - best; positive = better for PSNR/SSIM, negative = better for L1) with a
    bootstrap 95 % interval, and whether the interval excludes 0 in the recipe's favour."""
    from image_completion.evaluation.scoring import bootstrap_mean_ci  # noqa: PLC0415

    rows = []
    buckets = [ALL_BUCKETS, *dict.fromkeys(per_image["bucket"])]
    for metric in TARGET_METRICS:
        for bucket in buckets:
            data = per_image if bucket == ALL_BUCKETS else per_image[per_image["bucket"] == bucket]
            wide = data.pivot(index="index", columns="method", values=metric)
            classical = [m for m in BASELINES if m in wide]
            means = wide[classical].mean()
            best = means.idxmin() if metric in LOWER_IS_BETTER else means.idxmax()
            mean, low, high = bootstrap_mean_ci((wide[recipe] - wide[best]).to_numpy(), n_samples, seed)
            better = high < 0 if metric in LOWER_IS_BETTER else low > 0
            worse = low > 0 if metric in LOWER_IS_BETTER else high < 0
            rows.append(
                {
                    "metric": metric,
                    "bucket": bucket,
                    "best_classical": best,
                    "recipe": float(wide[recipe].mean()),
                    "classical": float(means[best]),
                    "diff": mean,
                    "ci_low": low,
                    "ci_high": high,
                    "verdict": "better" if better else "worse" if worse else "no significant difference",
                }
            )
    return rows


def results_table(overall: pd.DataFrame) -> list[str]:
    """Every method (raw generator outputs excluded) x metric: mean [95 % interval], best in bold."""
    overall = overall[~overall["method"].str.endswith("_raw")]
    metrics = [m for m in METRIC_LABELS if m in set(overall["metric"])]
    best = {}
    for metric in metrics:
        rows = overall[overall["metric"] == metric]
        if metric != "fooled":
            best[metric] = rows.loc[rows["mean"].idxmin() if metric in LOWER_IS_BETTER else rows["mean"].idxmax(), "method"]
    table = []
    for method in dict.fromkeys(overall["method"]):
        cells = []
        for metric in metrics:
            row = overall[(overall["metric"] == metric) & (overall["method"] == method)].iloc[0]
            text = f"{_fmt(row['mean'], metric)} [{_fmt(row['ci_low'], metric)}, {_fmt(row['ci_high'], metric)}]"
            cells.append(f"**{text}**" if best.get(metric) == method else text)
        table.append([method, *cells])
    return _table(["method", *(METRIC_LABELS[m] for m in metrics)], table)


def target_section(rows: list[dict], recipe: str, heading: str = "##", unit: str = "crop") -> list[str]:
    lines = [
        f"{heading} Target: `{recipe}` against the best classical method",
        "",
        f"Per metric and hole-ratio bucket, the classical method with the best mean; the paired per-{unit}",
        f"difference `{recipe}` - best with a bootstrap 95 % interval (L1: negative is better; PSNR, SSIM:",
        "positive is better). The target: better on hole L1 and hole PSNR overall and in every bucket",
        "from 20 %, and SSIM at least equal.",
        "",
    ]
    table = [
        [
            r["metric"],
            r["bucket"],
            r["best_classical"],
            _fmt(r["recipe"], r["metric"]),
            _fmt(r["classical"], r["metric"]),
            f"{_fmt(r['diff'], r['metric'])} [{_fmt(r['ci_low'], r['metric'])}, {_fmt(r['ci_high'], r['metric'])}]",
            r["verdict"],
        ]
        for r in rows
    ]
    return lines + _table(["metric", "bucket", "best classical", recipe, "classical", "difference [95 %]", "verdict"], table)


def read_ablation(folder: Path, variants: list[str]) -> dict:
    """The ablation's results in one mapping, name -> entry: each classical method
    (``baselines/metrics.json``), then each variant (``variants/<name>/metrics.json``)."""
    folder = Path(folder)
    entries = read_json(folder / "baselines" / "metrics.json")
    return entries | {name: read_json(folder / "variants" / name / "metrics.json") for name in variants}


def ablation_markdown(ablation: dict, recipe: str) -> str:
    """reports/ablation/results.md: one row per entry of ``read_ablation`` (validation photos); the
    PSNR column is each variant's difference from ``recipe`` (the unchanged base)."""
    base = ablation.get(recipe, {}).get(ALL_BUCKETS)
    rows = []
    for name, entry in ablation.items():
        a = entry[ALL_BUCKETS]
        delta = "" if base is None or "steps" not in entry else f"{a['psnr_hole'] - base['psnr_hole']:+.2f}"
        change = (
            "classical method"
            if "steps" not in entry
            else (
                "the paper's recipe"
                if entry["base"] == "paper"
                else json.dumps(entry["changes"])
                if entry["changes"]
                else f"({recipe} itself)"
            )
        )
        rows.append(
            [
                name,
                change,
                str(entry.get("steps", "")),
                _fmt(a["l1_hole"], "l1_hole"),
                _fmt(a["psnr_hole"], "psnr"),
                _fmt(a["ssim"], "ssim"),
                f"{entry['correction']:.4f}" if "correction" in entry else "",
                delta,
            ]
        )
    lines = [
        "# Ablation (validation photos)",
        "",
        "Generated by the `ablation_report` stage of `pipelines/ablation/dvc.yaml` (`dvc repro pipelines/ablation/dvc.yaml`)",
        "from `reports/ablation/{baselines,variants/*,curve}/`; do not edit by hand. One change at a time to",
        f"`{recipe}` (`train.default_recipe`), same steps and seed, scored on fixed crops of the *validation* photos",
        "under the evaluation masks (the test photos are not read). Learning curve: [learning_curve.png](learning_curve.png).",
        "Correction: how far training moved the fill, mean |output - untrained output| over the hole (a residual",
        "recipe starts at its pre-fill, a weighing recipe at its fixed blend; 0 = it learned nothing).",
        "",
    ]
    header = ["variant", f"change to {recipe}", "steps", "hole L1", "hole PSNR (dB)", "SSIM", "correction", f"PSNR vs {recipe}"]
    table = _table(header, rows)
    return "\n".join(lines + table) + "\n"


def _seeds_needed(row: dict) -> str:
    if row["verdict"] != "inconclusive":
        return ""
    return f"{row['seeds_needed']}" if row["seeds_needed"] is not None else "more than 1000"


def claims_section(rows: list[dict]) -> list[str]:
    if not rows:
        return []
    table = [
        [
            r["claim"],
            r["finding"],
            r["measurement"],
            f"{r['mean']:.4g} [{r['ci_low']:.4g}, {r['ci_high']:.4g}]",
            f"{r['expected']}, +-{r['delta']:g}",
            str(r["n_seeds"]),
            f"**{r['verdict']}**",
            _seeds_needed(r),
        ]
        for r in rows
    ]
    return [
        "## The paper's claims",
        "",
        "Each measurement's mean over seeds with its 95 % t interval over the seeds. **reproduced**: the",
        "interval lies on the paper's side of 0; **refuted**: on the other side, or inside [-delta, +delta]",
        "(`report.claim_deltas`: the effect is absent); **inconclusive**: with the seeds that would decide it",
        "if the observed mean and spread held. Per-seed values: [`figures/claims.png`](figures/claims.png);",
        "the runs behind each claim are in `docs/architecture.md` (claims).",
        "",
        *_table(["", "finding", "measurement", "mean [95 %]", "paper, delta", "seeds", "verdict", "seeds to decide"], table),
    ]


def make_results_markdown(
    headline: dict,
    buckets: pd.DataFrame,
    targets: list[dict],
    comparison: pd.DataFrame,
    history: pd.DataFrame,
    claims: list[dict],
    recipe: str,
) -> str:
    """results.md: headline table, target check, claims, comparison and training summaries."""
    lines = [
        "# Results",
        "",
        "Generated by the `report` stage from `reports/metrics.json`, `reports/per_image.csv`,",
        "`reports/bucket_metrics.csv` and the comparison, claims and training logs; do not edit by hand.",
        f"Test crops: {headline.get('n_images', '?')} fixed crops of the held-out test photos, one per fixed evaluation",
        "mask (hole ratios 0-60 %). Each cell: mean [bootstrap 95 % interval]. Best mean per column in bold.",
        "",
        *results_table(buckets[buckets["bucket"] == ALL_BUCKETS]),
        "",
        "- Each recipe's row is its stage-2 generator's output with the known pixels pasted back (what a user gets).",
        "- L1: mean absolute error in [0, 1] units over the hole pixels (`l1_hole`) or the whole crop (`l1`).",
        "- PSNR: 10 log10(1 / MSE), over the whole crop or over the hole pixels only.",
        "- SSIM: scikit-image `structural_similarity`, data range 1, Gaussian window 11x11, sigma 1.5;",
        "  `ssim_hole` averages the SSIM map over the hole pixels.",
        "- Fool rate: share of outputs the paper recipe's trained discriminator scores D(output) > 0.5; the paper's",
        "  perceptual accuracy (D(G(x)) > 0.5 on the raw output): "
        + ", ".join(
            f"`{r}` **{headline[r]['perceptual_accuracy']:.3f}**"
            for r in headline
            if isinstance(headline[r], dict) and "perceptual_accuracy" in headline[r]
        )
        + ";",
        f"  the discriminator calls {headline.get('discriminator_real_accuracy', float('nan')):.3f} of the real crops real.",
        "",
        *target_section(targets, recipe),
        "",
        "The recipe ablation and learning curve on the validation photos (second pipeline file",
        "`pipelines/ablation/dvc.yaml`): [`reports/ablation/results.md`](ablation/results.md).",
        "",
        *claims_section(claims),
        "",
        "## Architecture comparison (stage `compare`, final epoch, mean over seeds)",
        "",
    ]
    last = comparison.sort_values("step").groupby(["generator", "seed", "metric"]).tail(1)
    table = last.groupby(["generator", "metric"])["value"].mean().unstack()
    lines += _table(["generator", *table.columns], [[kind, *(f"{v:.4f}" for v in row)] for kind, row in table.iterrows()])
    lines += ["", "## Training (last epoch of each stage)", ""]
    last = history.sort_values("step").groupby(["recipe", "stage", "metric"]).tail(1)
    table = last.pivot_table(index="metric", columns=["recipe", "stage"], values="value")
    lines += _table(
        ["metric", *(f"{r} {s}" for r, s in table.columns)],
        [[metric, *("" if pd.isna(v) else f"{v:.4f}" for v in row)] for metric, row in table.iterrows()],
    )
    return "\n".join(lines) + "\n"


def read_json(path: Path) -> dict:
    """Reads a JSON file written by an earlier stage; ``ReportError`` naming it if absent or invalid."""
    try:
        return json.loads(Path(path).read_text())
    except FileNotFoundError:
        raise ReportError(f"{path}: not found (run the stage that writes it)") from None
    except json.JSONDecodeError as err:
        raise ReportError(f"{path}: not valid JSON: {err}") from None


def fullsize_markdown(per_case: dict[int, pd.DataFrame], targets: dict[int, list[dict]], recipe: str) -> str:
    """reports/fullsize/results.md: per size, each method's mean scores and fill time, then the
    target table of ``recipe`` against the best classical method (paired per case)."""
    lines = [
        "# Whole photos through `fill` (test photos)",
        "",
        "Generated by the `fullsize_report` stage of `pipelines/fullsize/dvc.yaml` (`dvc repro pipelines/fullsize/dvc.yaml`)",
        "from `reports/fullsize/sizes/<size>/per_case.csv`; do not edit by hand. Each case: a test photo's centre square",
        "resized to the size, one seeded mask of the evaluation's shapes and hole-ratio buckets; every method filled",
        "through `image_completion.app.fill` (models through their hole windows, classical methods at full size).",
        "Figure: [figure.png](figure.png).",
    ]
    for size, table in per_case.items():
        means = table.groupby("method", sort=False)[["l1_hole", "psnr_hole", "ssim", "seconds"]].mean()
        rows = [
            [m, _fmt(r["l1_hole"], "l1_hole"), _fmt(r["psnr_hole"], "psnr"), _fmt(r["ssim"], "ssim"), f"{r['seconds']:.2f}"]
            for m, r in means.iterrows()
        ]
        n_cases = table["index"].nunique()
        lines += ["", f"## {size} px ({n_cases} cases)", ""]
        lines += _table(["method", "hole L1", "hole PSNR (dB)", "SSIM", "seconds per fill"], rows)
        lines += ["", *target_section(targets[size], recipe, heading="###", unit="case")]
    return "\n".join(lines) + "\n"
