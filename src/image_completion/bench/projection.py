"""Projection of a `dvc repro` from measured step times, stage list read from dvc.yaml."""

from __future__ import annotations

import statistics
from pathlib import Path

from image_completion import code
from image_completion.bench.machine import usable_cores
from image_completion.bench.networks import _param, recipes
from image_completion.training.hardware import CPU_FLAGS, cpu_features, cpu_type, native_bf16  # noqa: F401 - re-exported

TARGET_FRACTION = 0.70  # issue 8: a float32 training step should reach 70 % of the fp32 GEMM rate
GEMM_DTYPE = {"float32": "float32", "mixed_bfloat16": "bfloat16", "mixed_float16": "float16"}

# Estimates, not measured by the bench. Stages without a cost model: rounded up from a real
# fresh-clone `dvc repro` on the 2-core AVX-512 BF16 machine (download + masks about 15 s with
# the photos' packages cached, evaluate 18 s, report 8 s). ``STAGE_OVERHEAD_S``: each modelled
# stage entry's time outside TensorFlow's import, tracing, steps and validation (dvc, other
# imports, data set-up, logging): a compare entry there took about 17 s against 11 s modelled.
FIXED_STAGE_SECONDS = {"download": 30.0, "masks": 5.0, "evaluate": 20.0, "report": 10.0}
UNKNOWN_STAGE_SECONDS = 30.0
STAGE_OVERHEAD_S = 5.0

# The pipeline file of this checkout (src/image_completion/../../dvc.yaml): the one list of stages.
DVC_YAML = code.ROOT.parents[1] / "dvc.yaml"


# ------------------------------------------------------------------------------------------
# Projection of `dvc repro`
# ------------------------------------------------------------------------------------------


def dvc_stages(dvc_yaml) -> list[tuple[str, tuple]]:
    """(stage, matrix axes) of every stage of a dvc.yaml, in its order."""
    import yaml  # noqa: PLC0415

    if not Path(dvc_yaml).is_file():
        raise FileNotFoundError(
            f"{dvc_yaml}: the projection reads the stages from the pipeline file; run the bench in a checkout"
        )
    stages = yaml.safe_load(Path(dvc_yaml).read_text()).get("stages") or {}
    return [(name, tuple(((spec or {}).get("matrix") or {}).items())) for name, spec in stages.items()]


def _axis_values(params, ref):
    """A matrix axis's values: a literal list, or the params list a ``${section.key}`` names."""
    if isinstance(ref, str) and ref.startswith("${") and ref.endswith("}"):
        ref = _param(params, ref[2:-1])
    return list(ref) if isinstance(ref, (list, tuple)) else None


def pipeline_entries(params, dvc_yaml=DVC_YAML) -> list[tuple[str, str, dict]]:
    """(stage, entry name, matrix item) of every stage entry of ``dvc_yaml``, the matrix axes read from params: ``compare@unet-1234``,
    ``train_stage1@paper``. An axis that params do not define is left out."""
    import itertools  # noqa: PLC0415

    entries = []
    for stage, axes in dvc_stages(dvc_yaml):
        present = [(key, values) for key, ref in axes if (values := _axis_values(params, ref)) is not None]
        for combo in itertools.product(*(values for _, values in present)):
            item = dict(zip((key for key, _ in present), combo))
            entries.append((stage, stage + ("@" + "-".join(map(str, combo)) if combo else ""), item))
    return entries


def step_key(recipe: str, stage: int) -> str:
    return f"{recipe}/stage{stage}"


def _compare_cost(params, item: dict, timings: dict) -> dict:
    c = params.compare
    steps = c.epochs * (c.images_per_epoch // c.batch_size)
    step = timings["compare_step_s"][item.get("kind", params.model.generator)]
    return {"steps": steps, "step_s": step, "seconds": timings["startup_s"] + STAGE_OVERHEAD_S + steps * step}


def _train_cost(stage: int):
    def cost(params, item: dict, timings: dict) -> dict:
        recipe = item.get("recipe", recipes(params)[0])
        batch, epochs = params.train.batch_size, getattr(params.recipes[recipe], f"stage{stage}_epochs")
        steps = epochs * (params.train.images_per_epoch // batch)
        step = timings["train_step_s"][step_key(recipe, stage)]
        example_s = timings.get("input_cpu_s_per_example", {}).get(recipe, 0.0) / timings.get("cores", 1)
        pool = params.recipes[recipe].crop_pool  # made once per stage, then only arranged (no per-step share)
        input_s, pool_s = (0.0, pool * example_s) if pool and epochs else (batch * example_s, 0.0)
        val_steps = epochs * (params.train.validation_images // batch)
        val_s = val_steps * timings["val_step_s"][recipe]
        seconds = timings["startup_s"] + STAGE_OVERHEAD_S + pool_s + steps * (step + input_s) + val_s
        return {
            "steps": steps, "step_s": step, "input_s_per_step": input_s, "pool_s": pool_s, "validation_s": val_s, "seconds": seconds,
        }  # fmt: skip

    return cost


def _claims_cost(params, item: dict, timings: dict) -> dict:
    """One claims seed: each run of ``claim_runs.RUNS`` at the claims' scale, as a training stage
    without the input pipeline's share (startup, steps, validation each epoch)."""
    from image_completion.training.claim_runs import RUNS, claim_params  # noqa: PLC0415 - TensorFlow loads on use

    scaled = claim_params(params, item.get("seed", params.claims.seeds[0]))
    t, steps, step_seconds, seconds = scaled.train, 0, 0.0, 0.0
    for recipe, stage in RUNS:
        epochs = getattr(scaled.recipes[recipe], f"stage{stage}_epochs")
        run_steps = epochs * t.steps_per_epoch
        run_step_s = run_steps * timings["claims"]["train_step_s"][step_key(recipe, stage)]
        val_s = epochs * (t.validation_images // t.batch_size) * timings["claims"]["val_step_s"][recipe]
        seconds += timings["startup_s"] + STAGE_OVERHEAD_S + run_step_s + val_s
        steps, step_seconds = steps + run_steps, step_seconds + run_step_s
    return {"steps": steps, "step_s": step_seconds / steps, "seconds": seconds}


STAGE_COSTS = {"compare": _compare_cost, "claims": _claims_cost, "train_stage1": _train_cost(1), "train_stage2": _train_cost(2)}


def project_repro_seconds(params, timings: dict, dvc_yaml=DVC_YAML) -> dict:
    """The projected ``dvc repro`` time of ``params``: every stage entry of ``pipeline_entries``,
    a training stage as startup + ``STAGE_OVERHEAD_S`` + steps x (step + input pipeline share) +
    validation (a recipe with a ``crop_pool``: + the pool's examples once, no per-step input share), a compare entry as startup + ``STAGE_OVERHEAD_S`` + steps x step; stages
    without a cost function in ``STAGE_COSTS`` are ``FIXED_STAGE_SECONDS`` (or
    ``UNKNOWN_STAGE_SECONDS``) estimates, flagged ``estimate: True``.

    ``timings``: ``train_step_s`` {"<recipe>/stage<n>": s} (``step_key``), ``val_step_s``
    {"<recipe>": s}, ``compare_step_s`` {kind: s}, ``claims`` {"train_step_s": {"<recipe>/stage<n>": s}, "val_step_s": {"<recipe>": s}}, ``startup_s`` (a stage process: TensorFlow
    import + build + tracing); optional ``input_cpu_s_per_example`` {"<recipe>": CPU s} and
    ``cores`` (the pipeline's CPU time, divided over the cores, is added to every step: an upper
    estimate, as part of it runs on cores the step leaves idle).
    Returns {"stages": [{"stage", "seconds", "estimate", "steps", ...}], "total_seconds"}.
    """
    stages = []
    for stage, name, item in pipeline_entries(params, dvc_yaml):
        cost = STAGE_COSTS.get(stage)
        if cost is not None:
            row = cost(params, item, timings) | {"estimate": False}
        else:
            row = {"seconds": FIXED_STAGE_SECONDS.get(stage, UNKNOWN_STAGE_SECONDS), "estimate": True}
        stages.append({"stage": name, **row})
    return {"stages": stages, "total_seconds": sum(s["seconds"] for s in stages)}


def timings_of(result: dict) -> dict:
    """The ``project_repro_seconds`` timings from a bench result."""
    training = result["training"]
    precision = training["training_precision"]
    steps = [s for s in training["steps"] if s["precision"] == precision]
    pipelines = {k: v for k, v in result["input_pipeline"].items() if isinstance(v, dict) and "cpu_ms_per_example" in v}
    return {
        "train_step_s": {step_key(s["recipe"], s["stage"]): s["seconds"] for s in steps},
        "val_step_s": training["validation_step_s"],
        "compare_step_s": {kind: step["seconds"] for kind, step in result["compare"].items()},
        "claims": {
            "train_step_s": {run: step["seconds"] for run, step in result["claims"]["train_steps"].items()},
            "val_step_s": result["claims"]["val_step_s"],
        },
        "startup_s": result["tf_import"].get("best_s", 0.0) + statistics.median(s["trace_s"] for s in steps),
        "input_cpu_s_per_example": {k: v["cpu_ms_per_example"] / 1000 for k, v in pipelines.items()},
        "cores": usable_cores(),
    }
