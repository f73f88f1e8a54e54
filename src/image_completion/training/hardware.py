"""The CPU's type from /proc/cpuinfo (no TensorFlow): which precision trains fastest here.

``native-bf16`` (AVX512_BF16 or AMX-BF16: bfloat16 runs natively) or ``avx2-only`` (bfloat16 is
emulated, about 13x slower than float32); ``training.resolve_precision`` and the bench use it.
"""

from __future__ import annotations

import platform
from pathlib import Path

CPU_FLAGS = ("avx2", "avx512f", "avx512_bf16", "amx_bf16")


def _read_cpuinfo() -> str:
    try:
        return Path("/proc/cpuinfo").read_text()
    except OSError:
        return ""


def cpu_features(cpuinfo: str | None = None) -> dict:
    """The CPU model, logical CPU count and the flags of ``CPU_FLAGS`` from /proc/cpuinfo text
    (read from /proc/cpuinfo when None): ``{"model", "logical_cpus", "flags": {flag: bool}}``."""
    text = _read_cpuinfo() if cpuinfo is None else cpuinfo
    model, flags, count = None, None, 0
    for line in text.splitlines():
        key, _, value = line.partition(":")
        key = key.strip()
        if key == "processor":
            count += 1
        elif key == "model name" and model is None:
            model = value.strip()
        elif key == "flags" and flags is None:
            flags = set(value.split())
    return {
        "model": model or platform.processor() or "unknown",
        "logical_cpus": count,
        "flags": {flag: flag in (flags or ()) for flag in CPU_FLAGS},
    }


def native_bf16(cpuinfo: str | None = None) -> bool:
    """True when the CPU computes bf16 natively (AVX512_BF16 or AMX-BF16)."""
    return cpu_type(cpu_features(cpuinfo)) == "native-bf16"


def cpu_type(features: dict) -> str:
    """``native-bf16`` or ``avx2-only`` (any CPU without native bf16)."""
    flags = features["flags"]
    return "native-bf16" if flags["avx512_bf16"] or flags["amx_bf16"] else "avx2-only"
