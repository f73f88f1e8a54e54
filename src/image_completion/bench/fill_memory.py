"""Peak memory of each fill method against the pixel budget the server and the CLI enforce.

    python -m image_completion.bench.fill_memory [--side 2000] [--strip 20000] [--model PATH] [--params params.yaml]

Two cases per method of ``fill.METHODS``: a side x side photo with a square hole of half its side
(25 % of the pixels) and a 1 x N strip with a hole of N/4 pixels. Each case runs in its own
process: photo, hole and generator loaded and warmed up (one small fill), the process's RSS
high-water mark reset (Linux ``/proc/self/clear_refs``), one fill, the high-water mark read.
Printed per case: the peak growth, bytes per photo pixel and the budget, ``BYTES_PER_PIXEL`` per
photo pixel plus ``SLACK`` for the libraries' working memory. A case above its budget exits 1.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

from image_completion.app.fill import BYTES_PER_PIXEL, METHODS, PARAMS_FILE
from image_completion.training.hardware import cpu_features, cpu_type

MIB = 2**20
SLACK = 64 * MIB  # the allowance tests/app/test_adversarial_server.py gives a fill beyond the budget


def _status_kib(field: str) -> int:
    """A ``VmRSS``/``VmHWM`` line of /proc/self/status, in KiB."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise RuntimeError(f"/proc/self/status has no {field}")


def case_photo(case: str, side: int, strip: int):
    """(uint8 photo, bool hole) of a case: "square" or "strip" (see the module docstring)."""
    import numpy as np  # noqa: PLC0415

    from image_completion.bench.end_to_end import synthetic_photo  # noqa: PLC0415

    height, width = (side, side) if case == "square" else (1, strip)
    hole = np.zeros((height, width), bool)
    if case == "square":
        hole[side // 4 : side // 4 + side // 2, side // 4 : side // 4 + side // 2] = True
    else:
        hole[:, strip * 3 // 8 : strip * 3 // 8 + strip // 4] = True
    return synthetic_photo(width, height), hole


def _filler(method: str, model: str, params_file: str):
    """A ``fill.Filler`` for ``method``: the model is ``model`` if that file exists, else a fresh one."""
    import tempfile  # noqa: PLC0415

    from image_completion.app import fill  # noqa: PLC0415

    if method != "model":
        return fill.Filler(), "-"
    if Path(model).is_file():
        return fill.Filler(fill.load_generator(model)), model
    from image_completion.bench.end_to_end import save_fresh_generator  # noqa: PLC0415
    from image_completion.config import load_params  # noqa: PLC0415

    params = load_params(params_file)
    recipe = params.train.default_recipe  # the model fill and serve use
    with tempfile.TemporaryDirectory() as folder:
        path = save_fresh_generator(params, recipe, Path(folder))
        return fill.Filler(fill.load_generator(path)), f"fresh {recipe} generator of the params' size"


def child(method: str, case: str, side: int, strip: int, model: str, params_file: str) -> dict:
    """One case in this process (see the module docstring); returns its row."""
    from image_completion.app.fill import solve_scale  # noqa: PLC0415

    image, hole = case_photo(case, side, strip)
    filler, generator = _filler(method, model, params_file)
    filler.fill(*case_photo("square", 128, 0), method)  # warm-up: libraries' first-call buffers
    Path("/proc/self/clear_refs").write_text("5")  # VmHWM := VmRSS
    before = _status_kib("VmRSS")
    start = time.perf_counter()
    filler.fill(image, hole, method)
    seconds = time.perf_counter() - start
    peak = (_status_kib("VmHWM") - before) * 1024
    pixels, hole_pixels = hole.size, int(hole.sum())
    budget = BYTES_PER_PIXEL * pixels + SLACK
    scale = solve_scale(method, pixels, hole_pixels)
    return {
        "method": method,
        "case": f"{case} {image.shape[1]}x{image.shape[0]}",
        "hole_pixels": hole_pixels,
        "peak_mib": round(peak / MIB, 1),
        "bytes_per_pixel": round(peak / pixels),
        "budget_mib": round(budget / MIB, 1),
        "within": peak <= budget,
        "seconds": round(seconds, 2),
        "solved_at": f"1/{scale}" if scale > 1 else "full",
        "generator": generator,
    }


def format_table(rows: list[dict]) -> list[str]:
    head = (
        f"{'method':<11}{'case':<18}{'hole px':>10}{'peak MiB':>10}{'B/px':>8}{'budget MiB':>12}{'within':>8}{'s':>8}  solved at"
    )
    lines = [head]
    for r in rows:
        lines.append(
            f"{r['method']:<11}{r['case']:<18}{r['hole_pixels']:>10}{r['peak_mib']:>10}{r['bytes_per_pixel']:>8}"
            f"{r['budget_mib']:>12}{'yes' if r['within'] else 'NO':>8}{r['seconds']:>8}  {r['solved_at']}"
        )
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m image_completion.bench.fill_memory", description=__doc__.split("\n")[0])
    parser.add_argument("--side", type=int, default=2000, help="side of the square case's photo (default: 2000)")
    parser.add_argument("--strip", type=int, default=20000, help="length of the 1 x N strip (default: 20000)")
    parser.add_argument(
        "--model",
        default="models/refine/stage2/generator.keras",
        help="generator (if absent: a fresh one of train.default_recipe)",
    )
    parser.add_argument("--params", default=str(PARAMS_FILE), help="params for a fresh generator (default: params.yaml)")
    parser.add_argument("--child", nargs=2, metavar=("METHOD", "CASE"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        print(json.dumps(child(*args.child, args.side, args.strip, args.model, args.params)))
        return 0
    rows = []
    for method in METHODS:
        for case in ("square", "strip"):
            command = [sys.executable, "-m", "image_completion.bench.fill_memory", "--child", method, case]
            command += ["--side", str(args.side), "--strip", str(args.strip), "--model", args.model, "--params", args.params]
            done = subprocess.run(command, capture_output=True, text=True, check=True)
            rows.append(json.loads(done.stdout.strip().splitlines()[-1]))
    features = cpu_features()
    print(f"CPU: {features['model']}, type {cpu_type(features)}; budget {BYTES_PER_PIXEL} B per photo pixel + {SLACK // MIB} MiB")
    print(f"generator: {next(r['generator'] for r in rows if r['method'] == 'model')}")
    print("\n".join(format_table(rows)))
    return 0 if all(r["within"] for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
