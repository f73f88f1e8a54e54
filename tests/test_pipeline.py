"""The whole DVC pipeline end to end on scikit-image's photos with tiny params, then a params
change on a branch, compared with `dvc metrics diff` and `dvc plots diff` against main.

Runs in a temporary git repository holding a copy of the project's tracked pipeline files.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import yaml
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]

# Small enough for about two minutes on 2 cores, large enough that every stage does real work.
TINY = {
    "base": {"seed": 7, "image_size": 32},
    "data": {"source": "skimage", "max_side": 256},
    "masks.eval": {"per_bucket": 2},
    "model": {"base_filters": 4, "decoder_filters": 8, "backbone_weights": "none", "dense_units": 8},
    "compare": {
        "seeds": [7, 8],
        "image_size": 16,
        "base_filters": 4,
        "images_per_epoch": 16,
        "epochs": 2,
        "validation_images": 8,
    },
    "recipes.paper": {"stage1_epochs": 2, "stage2_epochs": 2},
    "recipes.refine": {"stage1_epochs": 1, "stage2_epochs": 0, "crop_pool": 8},
    "train": {"images_per_epoch": 16, "precision": "float32", "validation_images": 8},
    "claims": {"seeds": [7], "base_filters": 4, "images_per_epoch": 16, "stage1_epochs": 1, "stage2_epochs": 1},
    "evaluate": {"bootstrap_samples": 100},
    "ablation": {"steps": 2, "curve_steps": 2, "variants": ["residual_biharmonic"]},
    "fullsize": {"sizes": [64], "per_bucket": 1},
}


def _merge(params: dict, overrides: dict) -> dict:
    for section, values in overrides.items():
        node = params
        for part in section.split("."):
            node = node[part]
        node.update(values)
    return params


def _run(args: list[str], cwd: Path, env: dict) -> subprocess.CompletedProcess:
    result = subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True, timeout=600)
    if result.returncode != 0:
        raise AssertionError(f"{' '.join(args)} failed ({result.returncode}):\n{result.stdout[-4000:]}\n{result.stderr[-6000:]}")
    return result


def _dvc(*args: str, cwd: Path, env: dict) -> subprocess.CompletedProcess:
    return _run([sys.executable, "-m", "dvc", *args], cwd, env)


def _git(*args: str, cwd: Path, env: dict) -> subprocess.CompletedProcess:
    return _run(["git", *args], cwd, env)


def _declared_outputs(dvc_yaml: dict, params: dict) -> tuple[list[str], list[str]]:
    """Metrics and plots paths declared by the stages of dvc.yaml, matrix entries expanded."""
    axes = {"kind": params["compare"]["kinds"], "seed": params["compare"]["seeds"], "recipe": params["train"]["recipes"]}
    metrics, plots = [], []
    for stage in dvc_yaml["stages"].values():
        names = [{}]
        for axis in stage.get("matrix", {}):
            values = params["claims"]["seeds"] if axis == "seed" and "claims" in stage["cmd"] else axes[axis]
            names = [{**n, f"item.{axis}": str(v)} for n in names for v in values]
        for subst in names:
            for key, target in (("metrics", metrics), ("plots", plots)):
                for entry in stage.get(key, []):
                    path = next(iter(entry)) if isinstance(entry, dict) else entry
                    for var, value in subst.items():
                        path = path.replace("${" + var + "}", value)
                    target.append(path)
    for entry in dvc_yaml.get("plots", []):
        path = next(iter(entry)) if isinstance(entry, dict) else entry
        if "/" in path:  # a file or folder (named plot definitions have no slash)
            plots.append(path)
    return metrics, plots


def _check_parses(path: Path) -> None:
    files = [p for p in path.rglob("*") if p.is_file()] if path.is_dir() else [path]
    assert files, f"{path}: declared but empty"
    for file in files:
        if file.suffix == ".json":
            assert json.loads(file.read_text()), f"{file}: empty JSON"
        elif file.suffix in (".tsv", ".csv"):
            table = pd.read_csv(file, sep="\t" if file.suffix == ".tsv" else ",")
            assert len(table) > 0, f"{file}: no rows"
        elif file.suffix == ".png":
            with Image.open(file) as image:
                image.verify()
        elif file.suffix == ".md":
            assert file.read_text().strip(), f"{file}: empty"


@pytest.mark.slow
def test_pipeline_end_to_end_and_branch_diff(tmp_path):
    repo = tmp_path / "repo"
    tracked = _run(["git", "ls-files", "-co", "--exclude-standard"], ROOT, dict(os.environ)).stdout.split()
    for rel in tracked:
        if rel.startswith(("src/", "dvc.yaml", "pipelines/", "params.yaml", ".dvcignore")) or rel == ".gitignore":
            (repo / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(ROOT / rel, repo / rel)
    env = dict(os.environ)
    # Stage commands call `python`: it must be this interpreter, with the package installed.
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env['PATH']}"
    env.update(GIT_AUTHOR_NAME="t", GIT_AUTHOR_EMAIL="t@t", GIT_COMMITTER_NAME="t", GIT_COMMITTER_EMAIL="t@t")

    params = _merge(yaml.safe_load((ROOT / "params.yaml").read_text()), TINY)
    (repo / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    _git("init", "-q", "-b", "main", cwd=repo, env=env)
    _dvc("init", "-q", cwd=repo, env=env)
    _dvc("config", "core.analytics", "false", cwd=repo, env=env)
    _git("add", "-A", cwd=repo, env=env)
    _git("commit", "-qm", "pipeline code and tiny params", cwd=repo, env=env)
    default = _dvc("repro", cwd=repo, env=env).stdout
    assert "Running stage 'report'" in default and "ablation" not in default, default
    # The second pipeline file: its own command, reusing the default run's photos and masks.
    ablation = _dvc("repro", "pipelines/ablation/dvc.yaml", cwd=repo, env=env).stdout
    assert (
        "Running stage 'pipelines/ablation/dvc.yaml:ablation@residual_biharmonic'" in ablation
        and "Running stage 'download'" not in ablation
    ), ablation
    assert "residual_biharmonic" in (repo / "reports/ablation/results.md").read_text()
    _check_parses(repo / "reports/ablation/learning_curve.png")
    fullsize = _dvc("repro", "pipelines/fullsize/dvc.yaml", cwd=repo, env=env).stdout
    assert "fullsize@64'" in fullsize and "Running stage 'train_stage2" not in fullsize, fullsize
    per_case = pd.read_csv(repo / "reports/fullsize/sizes/64/per_case.csv")
    offered = {b for b in params["evaluate"]["baselines"] if b != "mean_fill"}  # fill --method has no mean fill
    assert set(per_case["method"]) == {*offered, "paper", "refine"}
    assert "## 64 px" in (repo / "reports/fullsize/results.md").read_text()
    _check_parses(repo / "reports/fullsize/figure.png")

    dvc_yaml = yaml.safe_load((repo / "dvc.yaml").read_text())
    metrics, plots = _declared_outputs(dvc_yaml, params)
    assert any("train/refine/stage2" in m for m in metrics) and any("compare/unet-" in m for m in metrics)
    assert metrics and plots
    for path in metrics + plots:
        _check_parses(repo / path)
    shown = json.dumps(json.loads(_dvc("metrics", "show", "--json", cwd=repo, env=env).stdout))
    assert "reports/metrics.json" in shown and "reports/ablation/variants/residual_biharmonic/metrics.json" in shown, shown
    assert "reports/fullsize/sizes/64/metrics.json" in shown, shown
    status = _dvc("status", cwd=repo, env=env).stdout
    assert "up to date" in status, status

    _git("add", "-A", cwd=repo, env=env)
    _git("commit", "-qm", "baseline", cwd=repo, env=env)
    # A params change on a branch: only evaluation (and the report) rerun.
    _git("checkout", "-qb", "wider-radius", cwd=repo, env=env)
    params["evaluate"]["inpaint_radius"] = 9
    (repo / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    rerun = _dvc("repro", cwd=repo, env=env).stdout
    assert "Running stage 'evaluate'" in rerun and "Running stage 'train_stage1" not in rerun, rerun
    assert "Running stage 'claims" not in rerun and "Running stage 'compare" not in rerun, rerun

    diff = json.loads(_dvc("metrics", "diff", "main", "--json", cwd=repo, env=env).stdout)
    changed = {(f, m) for f, values in diff.items() for m, d in values.items() if d.get("diff")}
    assert any(f == "reports/metrics.json" and m.startswith("telea") for f, m in changed), diff
    params_diff = json.loads(_dvc("params", "diff", "main", "--json", cwd=repo, env=env).stdout)
    assert params_diff["params.yaml"]["evaluate.inpaint_radius"]["old"] == 3
    assert params_diff["params.yaml"]["evaluate.inpaint_radius"]["new"] == 9

    plots_diff = json.loads(_dvc("plots", "diff", "main", "--json", cwd=repo, env=env).stdout)["data"]
    # Image plots come once per revision; vega plots carry every revision in one entry.
    figure_revisions = {e["revisions"][0] for e in plots_diff["reports/figures/metrics_by_bucket.png"]}
    assert figure_revisions == {"main", "workspace"}, plots_diff["reports/figures/metrics_by_bucket.png"]
    (curve,) = plots_diff["perceptual_accuracy_both_stages"]
    assert set(curve["revisions"]) == {"main", "workspace"}
