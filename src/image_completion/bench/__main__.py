"""Benchmark suite: how fast this machine runs the pipeline's work, against its own peak.

    python -m image_completion.bench [--params params.yaml] [--out reports/bench/<cpu-type>.json] [--quick]

Prints and writes as JSON: CPU type, GEMM peaks, training steps as a fraction of the peak,
inference, input pipeline, fill latency, projected ``dvc repro``. What each figure means:
``docs/architecture.md``, "The benchmark". A section that fails exits 1.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

from image_completion.bench.end_to_end import measure_fill, measure_pipelines, measure_tf_import
from image_completion.bench.machine import cpu_counters, machine_info, other_load
from image_completion.bench.measure import (
    FULL,
    QUICK,
    Settings,
    add_rates,
    guarded,
    measure_claims_steps,
    measure_compare_steps,
    measure_gemm_rates,
    measure_inference,
    measure_training,
    merge_gemm,
)
from image_completion.bench.networks import recipes, training_precision
from image_completion.bench.projection import GEMM_DTYPE, project_repro_seconds, timings_of
from image_completion.bench.report import format_report
from image_completion.training.hardware import CPU_FLAGS, cpu_features, cpu_type, native_bf16  # noqa: F401 - re-exported

# ------------------------------------------------------------------------------------------
# The run, the report, the command
# ------------------------------------------------------------------------------------------


def _section(result: dict, name: str, fn, *args):
    """``result[name] = guarded(fn, *args)``, its wall seconds in ``result["section_seconds"]``."""
    start = time.perf_counter()
    result[name] = guarded(fn, *args)
    result.setdefault("section_seconds", {})[name] = round(time.perf_counter() - start, 1)
    return result[name]


def run_bench(params, settings: Settings, photos: Path, model: Path | None, breakdown: bool = False) -> dict:
    """Every measurement of the module docstring on this machine; returns the JSON-able result.
    ``model``: the generator for the fill latency (a fresh one when None or absent)."""
    import tensorflow as tf  # noqa: PLC0415

    # Every measurement compiles new tf.functions: TensorFlow's retracing warnings are expected.
    logger, level = tf.get_logger(), tf.get_logger().level
    logger.setLevel("ERROR")
    try:
        return _run_bench(params, settings, photos, model, breakdown)
    finally:
        logger.setLevel(level)


def _run_bench(params, settings: Settings, photos: Path, model: Path | None, breakdown: bool) -> dict:
    import tensorflow as tf  # noqa: PLC0415

    from image_completion.training import loop  # noqa: PLC0415

    features = cpu_features()
    native = cpu_type(features) == "native-bf16"
    gpus = [d.name for d in tf.config.list_physical_devices("GPU")]
    train_precision = training_precision(params)
    precisions = ["float32", "mixed_bfloat16"] + ["mixed_float16"] * bool(gpus)
    precisions += [train_precision] * (train_precision not in precisions)
    dtypes = sorted({GEMM_DTYPE[p] for p in precisions})
    loop.seed_everything(params.base.seed)  # op determinism, as in the training stages
    result = {
        "machine": machine_info(features, gpus),
        "settings": settings.__dict__ | {"quick": settings == QUICK},
        "batch": params.train.batch_size,
    }
    gemm = _section(result, "gemm", measure_gemm_rates, dtypes, settings.gemm_sizes, settings.gemm_repeats)
    _section(result, "training", measure_training, params, precisions, train_precision, gemm, settings, breakdown)
    _section(result, "compare", measure_compare_steps, params, settings)
    _section(result, "claims", measure_claims_steps, params, settings)
    _section(result, "inference", measure_inference, params, settings)
    _section(result, "input_pipeline", measure_pipelines, params, Path(photos), result["training"], settings)
    _section(result, "fill", measure_fill, params, model, settings)
    _section(result, "tf_import", measure_tf_import, settings.import_repeats)
    _section(result, "gemm_end", measure_gemm_rates, dtypes, settings.gemm_sizes, settings.gemm_repeats)
    samples = result["training"].pop("gemm_samples", []) if "error" not in result["training"] else []
    result["gemm"] = merge_gemm(gemm, result.pop("gemm_end"), samples)
    add_rates(result, native)
    result["projection"] = guarded(lambda: project_repro_seconds(params, timings_of(result)))
    return result


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m image_completion.bench", description=__doc__.split("\n")[0])
    parser.add_argument("--params", type=Path, default=Path("params.yaml"), help="params file (default params.yaml)")
    parser.add_argument(
        "--out", type=Path, default=None, help="JSON output (default reports/bench/<cpu-type>.json; --quick: none)"
    )
    parser.add_argument("--quick", action="store_true", help="small sizes and few repeats (tests)")
    parser.add_argument("--photos", type=Path, default=Path("data/photos"), help="training photos (manifest.csv)")
    parser.add_argument(
        "--model",
        type=Path,
        default=None,
        help="generator for the fill latency (default models/<first recipe>/stage2/generator.keras if present)",
    )
    parser.add_argument("--breakdown", action="store_true", help="where the float32 step's time goes, also above 70 %%")
    return parser.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    from image_completion.app.fill import model_path_of  # noqa: PLC0415
    from image_completion.config import load_stage_params  # noqa: PLC0415

    params = load_stage_params(args.params, "bench")
    model = args.model or model_path_of(recipes(params)[0])
    start = cpu_counters()
    result = run_bench(params, QUICK if args.quick else FULL, args.photos, model, args.breakdown)
    result["load"] = other_load(start, cpu_counters())
    print(format_report(result))
    out = args.out or (None if args.quick else Path("reports/bench") / f"{result['machine']['cpu_type']}.json")
    if out is not None:
        out.parent.mkdir(parents=True, exist_ok=True)
        from image_completion.images import write_text_atomic  # noqa: PLC0415 - numpy-only, but kept off the import path

        write_text_atomic(out, json.dumps(result, indent=2, default=str) + "\n")
        print(f"written {out}")
    return 1 if any(isinstance(v, dict) and "error" in v for v in result.values()) else 0


if __name__ == "__main__":
    sys.exit(main())
