"""The bench report as text (the JSON is the result dict itself)."""

from __future__ import annotations

from image_completion.bench.projection import FIXED_STAGE_SECONDS, step_key
from image_completion.training.hardware import CPU_FLAGS, cpu_features, cpu_type, native_bf16  # noqa: F401 - re-exported


def _pct(x) -> str:
    return "n/a" if x is None else f"{100 * x:.0f} %"


def _minutes(seconds: float) -> str:
    return f"{seconds / 60:.1f} min" if seconds >= 90 else f"{seconds:.1f} s"


def format_machine(result: dict) -> list[str]:
    m, gemm = result["machine"], result["gemm"]
    flags = " ".join(f"{k}={'yes' if v else 'no'}" for k, v in m["flags"].items())
    lines = [f"CPU: {m['model']} ({m['usable_cores']} usable cores), type {m['cpu_type']}: {flags}"]
    if "error" in gemm:
        return lines + [f"GEMM: ERROR {gemm['error']}"]
    for dtype, g in gemm.items():
        runs = [
            f"{when}: " + ", ".join(f"n={n} {r / 1e9:.0f}" for n, r in g[when]["by_size"].items())
            for when in ("start", "end")
            if isinstance(g.get(when), dict)
        ]
        lines.append(f"GEMM peak {dtype}: {g['flops_per_s'] / 1e9:.0f} GFLOP/s ({'; '.join(runs)})")
    return lines


def format_training(result: dict) -> list[str]:
    t = result["training"]
    if "error" in t:
        return []  # listed with the other errors
    lines = [f"training step (batch {result.get('batch')}, precision used by training: {t['training_precision']}):"]
    lines += [_step_line(step_key(s["recipe"], s["stage"]), s) for s in t["steps"]]
    lines += [f"  validation step {k}: {v:.3f} s" for k, v in t["validation_step_s"].items()]
    if any((s["fraction_of_gemm"] or 0) > 1 for s in t["steps"]):
        lines.append("  WARNING: a step above 100 % of GEMM: other jobs slowed every GEMM measurement; rerun")
    for precision, parts in t.get("breakdown", {}).items():
        lines += format_breakdown(precision, parts, t["profile"].get(precision, {}))
    return lines


def _step_line(name: str, s: dict) -> str:
    """One training step: seconds, FLOPs and the fraction of the GEMM peak of its precision."""
    flag = " EMULATED bf16 (no native bf16 on this CPU)" if s["emulated"] else ""
    cpu = f", {s['cpu_s']:.2f} CPU-s" if "cpu_s" in s else ""
    return (
        f"  {name} {s['precision']}: {s['seconds']:.3f} s/step (best {s['best_s']:.3f}{cpu}), "
        f"{s['flops'] / 1e9:.1f} GFLOP, {s['flops_per_s'] / 1e9:.0f} GFLOP/s = {_pct(s['fraction_of_gemm'])} of GEMM{flag}"
    )


def format_breakdown(precision: str, parts: dict, profile: dict) -> list[str]:
    lines = [f"  where the {precision} step's time goes (best times, each part run alone):"]
    if "error" in parts:
        return lines + [f"    ERROR {parts['error']}"]
    for name, p in parts.items():
        lines.append(
            f"    {name}: {p['seconds']:.3f} s ({_pct(p['share_of_step'])} of the step), "
            f"{p['flops'] / 1e9:.1f} GFLOP at {_pct(p['fraction_of_gemm'])} of GEMM"
        )
    if "by_part" in profile:
        lines.append("    kernel time by part: " + ", ".join(f"{k} {_pct(v)}" for k, v in profile["by_part"].items()))
        lines.append("    top kernels: " + ", ".join(f"{k} {_pct(v)}" for k, v in profile["top_kernels"].items()))
    return lines


def format_others(result: dict) -> list[str]:
    lines = []
    c, i, f, tfi = result["compare"], result["inference"], result["fill"], result["tf_import"]
    if "error" not in c:
        lines += ["compare step (generator only):"] + [_step_line(kind, s) for kind, s in c.items()]
    claims = result.get("claims", {"error": "not measured"})
    if "error" not in claims:
        lines += ["claims steps (one seed, the claims' scale):"] + [_step_line(r, s) for r, s in claims["train_steps"].items()]
    if "error" not in i:
        lines.append(
            f"generator inference (float32, batch {i['batch']}): {i['images_per_s']:.0f} images/s, "
            f"{_pct(i['fraction_of_gemm'])} of GEMM"
        )
    pipe = result["input_pipeline"]
    for recipe, p in pipe.items() if "error" not in pipe else []:
        if isinstance(p, dict):
            demand = "; ".join(
                f"a {k} step eats {p['consumed_examples_per_s'][k]:.0f}/s: supply x{v:.1f}, "
                f"the pipeline needs {_pct(p['cpu_share'][k])} of the CPU"
                for k, v in p["supply_over_demand"].items()
            )
            lines.append(
                f"input pipeline {recipe}: {p['examples_per_s']:.0f} examples/s, "
                f"{p['cpu_ms_per_example']:.1f} CPU-ms/example; {demand}"
            )
    if "photos" in pipe:
        lines.append(f"  photos: {pipe['photos']}")
    if "error" not in f:
        lines.append(
            f"fill {f['photo']} ({f['megapixels']:.0f} MP, hole {_pct(f['hole_share'])}): model {f['model_s']:.2f} s "
            f"(first {f['model_first_s']:.2f} s, load {f['load_s']:.2f} s) vs Telea {f['telea_s']:.2f} s; "
            f"{f['generator']}"
        )
    if "best_s" in tfi:
        lines.append(f"TensorFlow import (fresh process): {tfi['best_s']:.1f} s (first {tfi['first_s']:.1f} s)")
    errors = [f"{k}: ERROR {v['error']}" for k, v in result.items() if isinstance(v, dict) and "error" in v]
    return lines + errors


def format_projection(result: dict) -> list[str]:
    p = result["projection"]
    if "error" in p:
        return []
    lines = [f"projected dvc repro: {_minutes(p['total_seconds'])}"]
    for s in p["stages"]:
        known = s["stage"].split("@")[0] in FIXED_STAGE_SECONDS
        detail = (
            f"{s['steps']} steps x {s['step_s']:.3f} s"
            if not s["estimate"]
            else ("estimate" if known else "estimate: no cost model for this stage in bench.STAGE_COSTS")
        )
        lines.append(f"  {s['stage']}: {_minutes(s['seconds'])} ({detail})")
    return lines


def format_report(result: dict) -> str:
    """The printed summary of a bench result."""
    load = result.get("load", {})
    lines = format_machine(result) + format_training(result) + format_others(result) + format_projection(result)
    if load:
        lines.append(
            f"bench took {load['seconds']:.0f} s; load average {load['loadavg_start'][0]:.2f} -> "
            f"{load['loadavg_end'][0]:.2f}; other processes used {load.get('other_cpu_s', 'n/a')} CPU-s "
            f"({_pct(load.get('other_share'))} of the machine)"
        )
    return "\n".join(lines)
