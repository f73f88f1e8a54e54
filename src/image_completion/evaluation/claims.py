"""The paper's findings, checked on the ``compare`` and ``claims`` runs: one row per claim.

Pure functions (numpy, pandas, scipy; no TensorFlow) on dvclive folders. A row: {claim, finding,
measurement, expected, per_seed, mean, ci_low, ci_high, n_seeds, delta, verdict, seeds_needed}; the interval (Student
t over seeds) and the verdict rule: ``docs/architecture.md``, "Claims: interval and verdict".
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Callable

import numpy as np
import pandas as pd
from scipy import stats

from image_completion.errors import InputError

KINDS = ("autoencoder", "unet", "unet_scaled")
MIN_SEEDS = 3
Runs = dict[str, dict[int, Path]]  # kind -> seed -> run folder


class ClaimsError(InputError, ValueError):
    """Comparison outputs that cannot be read or compared; the message names the file or runs."""


def find_runs(root: str | Path) -> Runs:
    """The run folders ``<kind>-<seed>`` under ``root``, by kind and seed (other folders are ignored)."""
    runs: Runs = {}
    for folder in sorted(Path(root).iterdir()) if Path(root).is_dir() else []:
        kind, _, seed = folder.name.rpartition("-")
        if folder.is_dir() and kind in KINDS and seed.isdigit():
            runs.setdefault(kind, {})[int(seed)] = folder
    if not runs:
        raise ClaimsError(f"{root}: no comparison runs (<kind>-<seed> folders); run the compare stage")
    return runs


def series(run: Path, name: str) -> pd.Series:
    """A logged metric (``val/l1_hole``) of one run, indexed by step (0 = before training)."""
    path = run / "plots" / "metrics" / f"{name}.tsv"
    try:
        table = pd.read_csv(path, sep="\t")
    except FileNotFoundError:
        raise ClaimsError(f"{path}: metric file not found") from None
    key = name.rsplit("/", 1)[-1]
    if key not in table or "step" not in table or table.empty:
        raise ClaimsError(f"{path}: expected columns step and {key} with at least one row")
    return table.set_index("step")[key]


def final(run: Path, name: str) -> float:
    """The last logged value of a metric (``metrics.json``); ``step`` gives the last step."""
    path = run / "metrics.json"
    try:
        value = json.loads(path.read_text())
        for part in name.split("/"):
            value = value[part]
    except FileNotFoundError:
        raise ClaimsError(f"{path}: not found") from None
    except (KeyError, TypeError, ValueError):
        raise ClaimsError(f"{path}: no value {name!r}") from None
    return float(value)


def check_same_budget(runs: Runs) -> None:
    """Final values are comparable only at the same number of epochs: every run must end at one step."""
    steps = {f"{kind}-{seed}": final(run, "step") for kind, by_seed in runs.items() for seed, run in by_seed.items()}
    if len(set(steps.values())) > 1:
        raise ClaimsError(f"the comparison runs end at different epochs: {steps}")


def t_interval(values) -> tuple[float, float, float]:
    """(mean, low, high) of the 95 % t interval over the values; low = high = NaN for fewer than 2."""
    x = np.asarray(values, dtype=float)
    mean = float(x.mean()) if len(x) else math.nan
    if len(x) < 2:
        return mean, math.nan, math.nan
    half = float(stats.t.ppf(0.975, len(x) - 1)) * float(x.std(ddof=1)) / math.sqrt(len(x))
    return mean, mean - half, mean + half


MAX_SEEDS = 1000  # seeds_needed beyond this is reported as "more than"


def verdict(low: float, high: float, expected: int, n_seeds: int, delta: float) -> str:
    """``reproduced``: the interval lies on the paper's side of 0 (``expected``: -1 or +1).
    ``refuted``: it lies on the other side, or inside [-delta, +delta] (equivalence: the effect the
    paper describes is absent). Else ``inconclusive``; also with fewer than ``MIN_SEEDS`` seeds."""
    if n_seeds < MIN_SEEDS or not (math.isfinite(low) and math.isfinite(high)):
        return "inconclusive"
    if expected * low > 0 and expected * high > 0:
        return "reproduced"
    if expected * low < 0 and expected * high < 0:
        return "refuted"
    if -delta < low and high < delta:
        return "refuted"
    return "inconclusive"


def half_width(sd: float, n: int) -> float:
    """Half the 95 % t interval of n values with standard deviation ``sd``."""
    return float(stats.t.ppf(0.975, n - 1)) * sd / math.sqrt(n)


def seeds_needed(mean: float, sd: float, delta: float) -> int | None:
    """The fewest seeds (>= ``MIN_SEEDS``) whose interval would decide the claim if the observed
    mean and standard deviation held: it excludes 0 (|mean| > half width) or lies inside
    [-delta, +delta] (|mean| + half width < delta). None when not within ``MAX_SEEDS`` (or when
    the mean sits on the boundary delta itself)."""
    if not (math.isfinite(mean) and math.isfinite(sd)):
        return None
    for n in range(MIN_SEEDS, MAX_SEEDS + 1):
        h = half_width(sd, n)
        if abs(mean) > h or abs(mean) + h < delta:
            return n
    return None


def claim_row(claim: str, finding: str, measurement: str, per_seed: dict[int, float], expected: int, delta: float) -> dict:
    """One table row from the per-seed measurements (see the module docstring)."""
    values = list(per_seed.values())
    mean, low, high = t_interval(values)
    sd = float(np.std(values, ddof=1)) if len(values) > 1 else math.nan
    decision = verdict(low, high, expected, len(per_seed), delta)
    return {
        "claim": claim, "finding": finding, "measurement": measurement,
        "expected": "< 0" if expected < 0 else "> 0", "per_seed": dict(per_seed),
        "mean": mean, "ci_low": low, "ci_high": high, "n_seeds": len(per_seed), "delta": delta,
        "verdict": decision,
        "seeds_needed": seeds_needed(mean, sd, delta) if decision == "inconclusive" else None,
    }  # fmt: skip


def per_seed(runs: Runs, kinds: tuple[str, ...], measure: Callable[[dict[str, Path]], float]) -> dict[int, float]:
    """``measure({kind: run})`` for every seed that has a run of each of ``kinds``."""
    seeds = sorted(set.intersection(*(set(runs.get(kind, {})) for kind in kinds)))
    return {seed: measure({kind: runs[kind][seed] for kind in kinds}) for seed in seeds}


def gradient_change(run: Path) -> float:
    """log10(val/grad_norm_enc1 at the last step / at the first, step 0 = before training)."""
    norms = series(run, "val/grad_norm_enc1")
    return math.log10(norms.iloc[-1] / norms.iloc[0])


def claim_a(runs: Runs, delta: float) -> dict:
    def measure(r):
        return gradient_change(r["autoencoder"]) - (gradient_change(r["unet"]) + gradient_change(r["unet_scaled"])) / 2

    return claim_row(
        "a", "the autoencoder's first-layer gradient vanishes",
        "log10(last / first val/grad_norm_enc1) of the autoencoder, minus the mean of the same of the U-Nets",
        per_seed(runs, KINDS, measure), expected=-1, delta=delta,
    )  # fmt: skip


def claim_a_alone(runs: Runs, delta: float) -> dict:
    return claim_row(
        "a", "the autoencoder's first-layer gradient vanishes",
        "log10(last / first val/grad_norm_enc1) of the autoencoder",
        per_seed(runs, ("autoencoder",), lambda r: gradient_change(r["autoencoder"])), expected=-1, delta=delta,
    )  # fmt: skip


def claim_b(runs: Runs, delta: float) -> dict:
    def measure(r):
        return final(r["unet"], "val/hole_propagation") - final(r["unet_scaled"], "val/hole_propagation")

    return claim_row(
        "b", "the plain U-Net propagates the hole constant",
        "final val/hole_propagation of unet minus unet_scaled's (lower = output closer to the constant)",
        per_seed(runs, ("unet", "unet_scaled"), measure), expected=-1, delta=delta,
    )  # fmt: skip


def claim_c(runs: Runs, delta: float) -> dict:
    def measure(r):
        return final(r["unet_scaled"], "val/l1_hole") - min(final(r[k], "val/l1_hole") for k in ("autoencoder", "unet"))

    return claim_row(
        "c", "the scaled U-Net learns best",
        "final val/l1_hole of unet_scaled minus the lower of autoencoder's and unet's",
        per_seed(runs, KINDS, measure), expected=-1, delta=delta,
    )  # fmt: skip


def training_runs(root: str | Path) -> dict[int, Path]:
    """The ``claims@<seed>`` run folders ``<root>/<seed>/`` (``learning_d/stage{1,2}``, ``style/stage1``)."""
    runs = (
        {int(p.name): p for p in sorted(Path(root).iterdir()) if p.is_dir() and p.name.isdigit()} if Path(root).is_dir() else {}
    )
    if not runs:
        raise ClaimsError(f"{root}: no claims runs (<seed> folders); run the claims stage")
    return runs


def claim_d(runs: dict[int, Path], delta: float) -> dict:
    def measure(run):
        return final(run / "learning_d/stage2", "val/perceptual_accuracy") - final(
            run / "learning_d/stage1", "val/perceptual_accuracy"
        )

    return claim_row(
        "d", "stage 2 (discriminator frozen) raises perceptual accuracy",
        "val/perceptual_accuracy at the end of stage 2 minus at the end of stage 1 (paper recipe, "
        "32x32, a discriminator that learns: lr 1e-4)",
        {seed: measure(run) for seed, run in runs.items()}, expected=+1, delta=delta,
    )  # fmt: skip


def claim_e(runs: dict[int, Path], delta: float) -> dict:
    def measure(run):
        return final(run / "style/stage1", "val/sharpness") - final(run / "learning_d/stage1", "val/sharpness")

    return claim_row(
        "e", "the style loss sharpens the fill",
        "val/sharpness (hole gradient energy of G(x) / of x) with the style loss minus without, "
        "end of stage 1, same seed and steps",
        {seed: measure(run) for seed, run in runs.items()}, expected=+1, delta=delta,
    )  # fmt: skip


def training_claims(root: str | Path, deltas: dict[str, float]) -> list[dict]:
    """The rows of claims (d) and (e) from the ``claims@<seed>`` runs under ``root`` (``reports/claims``);
    ``deltas``: claim -> smallest effect of interest (``report.claim_deltas``)."""
    runs = training_runs(root)
    return [claim_d(runs, deltas["d"]), claim_e(runs, deltas["e"])]


def comparison_claims(root: str | Path, deltas: dict[str, float]) -> list[dict]:
    """The rows of claims (a) (two: the autoencoder alone, then against the U-Nets), (b) and (c)
    from the comparison runs under ``root`` (``reports/compare``)."""
    runs = find_runs(root)
    check_same_budget(runs)
    return [claim_a_alone(runs, deltas["a"]), claim_a(runs, deltas["a"]), claim_b(runs, deltas["b"]), claim_c(runs, deltas["c"])]
