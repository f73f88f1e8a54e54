"""The machine: usable cores, CPU time counters (the load of other processes), CPU facts."""

from __future__ import annotations

import contextlib
import os
import platform
import resource
import time
from pathlib import Path

from image_completion.training.hardware import CPU_FLAGS, cpu_features, cpu_type, native_bf16  # noqa: F401 - re-exported

# ------------------------------------------------------------------------------------------
# CPU and machine load (no TensorFlow needed)
# ------------------------------------------------------------------------------------------


def usable_cores() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def cpu_counters() -> dict:
    """Wall clock, the machine's busy CPU seconds (/proc/stat) and this process's own CPU seconds."""
    busy = None
    with contextlib.suppress(OSError, ValueError, IndexError):
        fields = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
        busy = (sum(fields[:8]) - fields[3] - fields[4]) / os.sysconf("SC_CLK_TCK")  # minus idle, iowait
    own = sum(
        getattr(resource.getrusage(who), part)
        for who in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN)
        for part in ("ru_utime", "ru_stime")
    )
    return {"wall": time.perf_counter(), "busy_s": busy, "own_s": own, "loadavg": os.getloadavg()}


def other_load(start: dict, end: dict) -> dict:
    """CPU seconds other processes used between two ``cpu_counters`` and their share of the machine."""
    wall = end["wall"] - start["wall"]
    out = {"seconds": round(wall, 1), "loadavg_start": start["loadavg"], "loadavg_end": end["loadavg"]}
    if start["busy_s"] is not None and end["busy_s"] is not None:
        others = max(0.0, (end["busy_s"] - start["busy_s"]) - (end["own_s"] - start["own_s"]))
        out |= {"other_cpu_s": round(others, 1), "other_share": round(others / (wall * usable_cores()), 3)}
    return out


def machine_info(features: dict, gpus: list) -> dict:
    import tensorflow as tf  # noqa: PLC0415

    return {
        **features,
        "cpu_type": cpu_type(features),
        "usable_cores": usable_cores(),
        "gpus": gpus,
        "tensorflow": tf.__version__,
        "python": platform.python_version(),
        "onednn": onednn_state(),
    }


def onednn_state() -> str:
    """Whether this TensorFlow runs its oneDNN kernels (``on``/``off``) and why: the
    ``TF_ENABLE_ONEDNN_OPTS`` that ``image_completion`` sets by default, or the user's own."""
    from tensorflow.python.util import _pywrap_util_port  # noqa: PLC0415 - TensorFlow's own answer, no public API

    state = "on" if _pywrap_util_port.IsMklEnabled() else "off"
    return f"{state} (TF_ENABLE_ONEDNN_OPTS={os.environ.get('TF_ENABLE_ONEDNN_OPTS', 'unset')})"
