"""Where a training step's oneDNN time goes: primitives, the kernels oneDNN chose, reorders.

    python -m image_completion.bench.onednn [--params params.yaml] [--recipe R] [--stage 1] [--precision auto]
        [--steps 3] [--out JSON]

Runs one recipe's training step (``measure.measure_train_step``: built, compiled, warmed up) in a
child process with ``ONEDNN_VERBOSE=profile_exec``, under which oneDNN prints one line per primitive
it executes with its milliseconds, and sums the lines of ``--steps`` steps: by primitive kind and
direction, by implementation (the ISA oneDNN chose: ``brg_conv_fwd:avx2``, or ``...avx512_core_amx``
on AMX), the reorders (layout and dtype conversions, mostly of weights: a variable's kernel is
reordered to oneDNN's blocked layout at every call) by formats and shape, and the convolutions by
shape. The oneDNN total is set against the step's wall seconds: primitives of ops TensorFlow runs at
once overlap, so the sum can exceed the step; TensorFlow's own kernels (casts, element-wise ops) are
not in it, the bench's ``--breakdown`` profile has them. The verbose timer waits for every
primitive, so the step runs slower than in the bench: read the shares, not the seconds. Issue 19:
what a bf16 step on AMX spends outside the convolutions' arithmetic.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import subprocess
import sys
import time
from collections import defaultdict
from pathlib import Path

PROG = "python -m image_completion.bench.onednn"
PRECISIONS = ("auto", "float32", "mixed_bfloat16")
START, END, TIMING = "@@onednn-steps-start", "@@onednn-steps-end", "@@onednn-timing "
TOP = 10  # rows per table
MAX_STEPS = 100
CHILD_TIMEOUT_S = 1800  # a step plus its tracing; an emulated bf16 step takes about 15 s on AVX2


def parse_exec_line(line: str) -> dict | None:
    """One ``profile_exec`` line of oneDNN 3 (``onednn_verbose,v1,primitive,exec,cpu,KIND,IMPL,PROP,
    MEMORY,ATTRS,AUX,PROBLEM,MS``) as a dict; None for any other line."""
    fields = line.rstrip("\n").split(",")
    if fields[0] != "onednn_verbose" or "exec" not in fields[:5]:  # index 4 with a timestamp field
        return None
    rest = fields[fields.index("exec") + 1 :]
    if len(rest) < 9:
        return None
    try:
        ms = float(rest[-1])
    except ValueError:
        return None
    return {"kind": rest[1], "impl": rest[2], "prop": rest[3], "memory": rest[4], "problem": rest[-2], "ms": ms}


def _table(totals: dict, counts: dict, total_ms: float) -> list[dict]:
    rows = [{"name": k, "ms": v, "count": counts[k], "share": v / total_ms} for k, v in totals.items()]
    return sorted(rows, key=lambda r: -r["ms"])


def summarize(records: list[dict], steps: int) -> dict:
    """Per-step sums of parsed lines: by ``kind/prop``, by ``kind:impl``, reorders by formats and
    shape, convolutions by direction and shape; each row's ``share`` is of the oneDNN total."""
    assert records and steps > 0
    total_ms = sum(r["ms"] for r in records)
    assert total_ms > 0, "every primitive took 0 ms"
    keys = {
        "by_kind": lambda r: f"{r['kind']}/{r['prop']}",
        "by_impl": lambda r: f"{r['kind']}:{r['impl']}",
        "reorders": lambda r: f"{r['memory']} {r['problem']}" if r["kind"] == "reorder" else None,
        "convolutions": lambda r: f"{r['prop']} {r['problem']}" if r["kind"] == "convolution" else None,
    }
    out = {"steps": steps, "onednn_ms_per_step": total_ms / steps, "primitives_per_step": len(records) / steps}
    for name, key in keys.items():
        totals, counts = defaultdict(float), defaultdict(int)
        for r in records:
            k = key(r)
            if k is not None:
                totals[k] += r["ms"] / steps
                counts[k] += 1
        out[name] = _table(totals, {k: c / steps for k, c in counts.items()}, total_ms / steps)
    return out


def steps_lines(stdout: str) -> tuple[list[str], dict]:
    """The lines the child printed between its start and end markers (the measured steps) and its
    timing record (``TIMING`` + JSON, printed after the steps, before the end marker)."""
    lines = stdout.splitlines()
    if START not in lines or END not in lines:
        raise RuntimeError("the step's process printed no step markers")
    inside = lines[lines.index(START) + 1 : lines.index(END)]
    timing = [line for line in inside if line.startswith(TIMING)]
    if len(timing) != 1:
        raise RuntimeError(f"the step's process printed {len(timing)} timing lines, not 1")
    return [line for line in inside if not line.startswith(TIMING)], json.loads(timing[0][len(TIMING) :])


def child(params, recipe: str, stage: int, precision: str, steps: int) -> None:
    """In the child process: warm the step up, then run ``steps`` steps between the markers, and
    print their precision and mean wall seconds (``TIMING`` line) before the end marker."""
    from image_completion.bench.measure import QUICK, measure_train_step  # noqa: PLC0415
    from image_completion.bench.networks import dtype_policy, training_precision  # noqa: PLC0415

    precision = training_precision(params) if precision == "auto" else precision
    settings = dataclasses.replace(QUICK, step_repeats=1, warmup=2)
    _, _, batch, step = measure_train_step(params, recipe, stage, precision, settings)
    with dtype_policy(precision):
        print(START, flush=True)
        start = time.perf_counter()
        for _ in range(steps):
            step(batch)["g_loss"].numpy()
        seconds = time.perf_counter() - start
    print(TIMING + json.dumps({"precision": precision, "step_s": seconds / steps}), flush=True)
    print(END, flush=True)


def _child_failure(stderr: str) -> str:
    """The last line of the child's stderr that names an error, else its last line."""
    lines = [line for line in stderr.strip().splitlines() if line.strip()] or ["no message"]
    return next((line for line in reversed(lines) if "Error" in line or "error:" in line), lines[-1])


def run(params_file: Path, recipe: str, stage: int, precision: str, steps: int) -> dict:
    """The child's run, parsed and summed (``summarize``) with the step's precision and seconds."""
    command = [sys.executable, "-m", "image_completion.bench.onednn", "--params", str(params_file), "--recipe", recipe]
    command += ["--stage", str(stage), "--precision", precision, "--steps", str(steps), "--child"]
    env = {**os.environ, "ONEDNN_VERBOSE": "profile_exec", "ONEDNN_VERBOSE_TIMESTAMP": "0", "TF_CPP_MIN_LOG_LEVEL": "2"}
    try:
        done = subprocess.run(command, capture_output=True, text=True, env=env, timeout=CHILD_TIMEOUT_S)
    except subprocess.TimeoutExpired as err:
        raise RuntimeError(f"the step's process took more than {CHILD_TIMEOUT_S} s") from err
    if done.returncode != 0:
        raise RuntimeError(f"the step's process failed ({done.returncode}): {_child_failure(done.stderr)}")
    lines, timing = steps_lines(done.stdout)
    records = [r for r in map(parse_exec_line, lines) if r]
    if not any(r["kind"] == "convolution" for r in records):
        # Without TensorFlow's oneDNN ops, only Eigen's matrix products call oneDNN (gemm_api); so
        # does a bf16 step on a CPU without native bf16 (TensorFlow's own bf16 kernels run it).
        cause = (
            "TF_ENABLE_ONEDNN_OPTS=0 turns TensorFlow's oneDNN ops off"
            if os.environ.get("TF_ENABLE_ONEDNN_OPTS") == "0"
            else "TensorFlow ran its own kernels for this precision on this CPU"
        )
        raise RuntimeError(f"no oneDNN convolution ran in the {timing['precision']} step: {cause}")
    summary = summarize(records, steps)
    summary.update(recipe=recipe, stage=stage, **timing)
    # Above 1 when TensorFlow runs independent ops at once (each primitive is timed on its own).
    summary["onednn_over_step"] = summary["onednn_ms_per_step"] / 1000 / timing["step_s"]
    return summary


def format_summary(s: dict) -> str:
    lines = [
        f"{s['recipe']} stage {s['stage']}, {s['precision']}: step {s['step_s']:.3f} s under the verbose timer, "
        f"oneDNN primitives {s['onednn_ms_per_step']:.1f} ms summed ({s['onednn_over_step']:.2f} x the step: "
        f"ops that run at once overlap), {s['primitives_per_step']:.0f} primitives per step"
    ]
    titles = {
        "by_kind": "by primitive/direction",
        "by_impl": "by implementation",
        "reorders": "reorders",
        "convolutions": "convolutions",
    }
    for key, title in titles.items():
        lines.append(f"{title} (share of oneDNN time, ms per step, calls per step):")
        lines += [f"  {r['share']:6.1%} {r['ms']:9.2f} {r['count']:5.0f}  {r['name']}" for r in s[key][:TOP]]
    return "\n".join(lines)


def _steps(text: str) -> int:
    if not text.isdigit() or not 1 <= int(text) <= MAX_STEPS:
        raise argparse.ArgumentTypeError(f"{text!r}: not a whole number in 1..{MAX_STEPS}")
    return int(text)


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog=PROG, description=__doc__.split("\n")[0])
    parser.add_argument("--params", type=Path, default=Path("params.yaml"), help="params file (default params.yaml)")
    parser.add_argument("--recipe", default=None, help="a recipe of train.recipes (default: the first)")
    parser.add_argument("--stage", type=int, choices=(1, 2), default=1, help="training stage (default 1)")
    parser.add_argument("--precision", choices=PRECISIONS, default="auto", help="auto: train.precision resolved")
    parser.add_argument("--steps", type=_steps, default=3, help=f"steps summed, 1..{MAX_STEPS} (default 3)")
    parser.add_argument("--out", type=Path, default=None, help="also write the summary as JSON")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    return parser.parse_args(argv)


def main(argv=None) -> int:
    """The command (``run_main`` turns a failed write of ``--out`` into one line, status 1)."""
    args = parse_args(argv)
    from image_completion.bench.networks import recipes  # noqa: PLC0415
    from image_completion.config import load_stage_params  # noqa: PLC0415
    from image_completion.errors import usage_error  # noqa: PLC0415

    params = load_stage_params(args.params, PROG)
    recipe = args.recipe or recipes(params)[0]
    if recipe not in recipes(params):
        usage_error(PROG, f"--recipe {recipe}: not in train.recipes {recipes(params)}")
    if args.child:
        child(params, recipe, args.stage, args.precision, args.steps)
        return 0
    try:
        summary = run(args.params, recipe, args.stage, args.precision, args.steps)
    except RuntimeError as err:
        print(f"{PROG}: error: {err}", file=sys.stderr)
        return 1
    print(format_summary(summary))
    if args.out is not None:
        from image_completion.images import write_text_atomic  # noqa: PLC0415

        args.out.parent.mkdir(parents=True, exist_ok=True)
        write_text_atomic(args.out, json.dumps(summary, indent=2) + "\n")
        print(f"written {args.out}")
    return 0


if __name__ == "__main__":
    from image_completion.errors import run_main

    run_main(main, PROG)
