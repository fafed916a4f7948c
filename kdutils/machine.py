"""What this machine's CPU can do, and the numeric mode the teacher runs in because of it.

The teacher fine-tunes and scores in the fastest numerically safe mode the machine offers, chosen
by detection, never by hand:

* ``bf16``: ``torch.autocast("cpu", dtype=torch.bfloat16)`` (fp32 master weights, bf16 matrix
  products) on CPUs with native bfloat16 dot products (x86 ``avx512_bf16`` or ``amx_bf16``, and
  oneDNN agreeing that it can use them). On a CPU without them bf16 is emulated and several times
  *slower* than fp32 (measured 4x on an AVX2-only EPYC), so it is never chosen there.
* ``fp32`` everywhere else, and on a CUDA GPU (what the Hugging Face ``Trainer`` does by default).

A profile may ask for ``auto`` (the default), ``fp32`` or ``bf16``; ``bf16`` on a CPU without
native support falls back to ``fp32`` with one warning line in the log, never an error.

Detection can be injected: with ``KDUTILS_CPU_FLAGS`` set (flags as ``/proc/cpuinfo`` spells them,
separated by spaces or commas, e.g. one of :data:`CPU_CLASSES`), this module reports those flags and
trusts them alone for native bf16. The variable reaches child processes (``torchrun`` ranks,
notebook kernels), so the tests take every CPU class's path on whatever machine runs them.
"""

from __future__ import annotations

import functools
import logging
import os
import platform
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

# torch and transformers are imported where used: the CPU facts above need neither, and each
# takes seconds to import.

log = logging.getLogger(__name__)

Precision = Literal["fp32", "bf16"]
PRECISION_CHOICES = ("auto", "fp32", "bf16")
# CPU flags (as /proc/cpuinfo spells them) that give native bfloat16 dot products.
BF16_FLAGS = ("avx512_bf16", "amx_bf16")
CPU_FLAGS_ENV = "KDUTILS_CPU_FLAGS"
# The CPU classes the project's machines have shown, by the flags that decide the numeric mode.
CPU_CLASSES: dict[str, frozenset[str]] = {
    "avx2": frozenset({"sse4_2", "avx", "avx2", "fma"}),
    "avx512_bf16": frozenset({"sse4_2", "avx", "avx2", "fma", "avx512f", "avx512bw", "avx512_vnni",
                              "avx512_bf16"}),
    "amx": frozenset({"sse4_2", "avx", "avx2", "fma", "avx512f", "avx512bw", "avx512_vnni", "avx512_bf16",
                      "amx_tile", "amx_int8", "amx_bf16"}),
}


def injected_flags() -> frozenset[str] | None:
    """The flags set in ``KDUTILS_CPU_FLAGS`` (spaces or commas between them), or None when unset."""
    raw = os.environ.get(CPU_FLAGS_ENV)
    if raw is None:
        return None
    return frozenset(raw.replace(",", " ").split())


def cpu_flags() -> frozenset[str]:
    """The CPU feature flags: ``KDUTILS_CPU_FLAGS`` where set, else the first processor's in
    ``/proc/cpuinfo`` (empty where there is none)."""
    injected = injected_flags()
    return _proc_cpu_flags() if injected is None else injected


@functools.lru_cache(maxsize=1)
def _proc_cpu_flags() -> frozenset[str]:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith(("flags", "Features")):
                return frozenset(line.split(":", 1)[1].split())
    except OSError:
        pass
    return frozenset()


@functools.lru_cache(maxsize=1)
def cpu_name() -> str:
    """The CPU model name from ``/proc/cpuinfo`` (Linux), else the platform's processor string."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.lower().startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def cpu_description() -> str:
    """The CPU model and logical core count, for stating where a time was measured."""
    return f"{cpu_name()} ({os.cpu_count()} logical cores)"


def native_bf16() -> bool:
    """True when the CPU has native bfloat16 dot products and torch's oneDNN will use them.

    Injected flags (``KDUTILS_CPU_FLAGS``) decide alone: oneDNN asks the real CPU, and an injected
    class must take its path on any machine (bf16 autocast still runs where it is only emulated).
    """
    import torch

    if not any(flag in cpu_flags() for flag in BF16_FLAGS):
        return False
    if injected_flags() is not None:
        return True
    try:
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):
        return False


@dataclass(frozen=True)
class PrecisionChoice:
    """The mode a teacher runs in, what was asked for, and why this mode was chosen."""

    mode: Precision
    requested: str
    device: str
    reason: str

    def as_dict(self) -> dict[str, str]:
        return {"mode": self.mode, "requested": self.requested, "device": self.device, "reason": self.reason}


def resolve_precision(requested: str = "auto", device: str | None = None) -> PrecisionChoice:
    """The teacher's numeric mode on ``device`` (default: ``cuda`` when visible, else ``cpu``).

    ``requested`` is ``auto``, ``fp32`` or ``bf16``. ``auto`` gives ``bf16`` on a CPU with native
    bf16 (see :func:`native_bf16`) and ``fp32`` otherwise; ``bf16`` without native support falls
    back to ``fp32`` and logs one warning. Raises ``ValueError`` for any other ``requested``.
    """
    if requested not in PRECISION_CHOICES:
        raise ValueError(f"precision must be one of {', '.join(PRECISION_CHOICES)}, got {requested!r}")
    if device is None:
        import torch

        device = "cuda" if torch.cuda.is_available() else "cpu"
    if requested == "fp32":
        return PrecisionChoice("fp32", requested, device, "fp32 requested")
    if device != "cpu":
        # On a GPU the Trainer's own default (fp32) stands; this study's GPU path is not tuned.
        return PrecisionChoice("fp32", requested, device, f"{device}: the Trainer's default (fp32)")
    if native_bf16():
        flags = ", ".join(f for f in BF16_FLAGS if f in cpu_flags())
        injected = f"; flags injected by {CPU_FLAGS_ENV}" if injected_flags() is not None else ""
        return PrecisionChoice("bf16", requested, device, f"CPU has native bf16 ({flags}{injected})")
    reason = "CPU lacks native bf16 (no avx512_bf16 or amx_bf16 flag); emulated bf16 is slower than fp32"
    if requested == "bf16":
        _warn_once(f"bf16 requested but {reason}; running in fp32")
    return PrecisionChoice("fp32", requested, device, reason)


@functools.cache
def _warn_once(message: str) -> None:
    # The mode is resolved by every step, scorer and manifest write: the fallback is said once.
    log.warning(message)


def quiet_transformers() -> None:
    """No per-load progress bars or load reports from transformers in logs and notebooks.

    The load report lists the (expected) new classification head and dropped layers; each saved
    model's ``kdmodel.json`` records them instead.
    """
    import transformers

    transformers.utils.logging.disable_progress_bar()
    transformers.logging.set_verbosity_error()
