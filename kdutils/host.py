"""This machine as benchmarks see it: the CPUs this process may use, threads set and recorded, the
float32 matmul peak, and the share of the cores other processes use meanwhile.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from threadpoolctl import threadpool_limits

from kdutils.machine import cpu_name


def cpu_count() -> int:
    """CPUs this process may run on (the affinity mask, which containers narrow)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:
        return os.cpu_count() or 1


def configure_threads(threads: int) -> dict[str, int]:
    """Set torch intra-op threads (and inter-op 1 where still possible); return what is in effect.

    onnxruntime takes its thread count per session (``make_predictor(entry, threads)``).
    """
    import torch  # seconds to import: the load tests (OtherLoad, sweeps) never need it

    torch.set_num_threads(threads)
    try:
        torch.set_num_interop_threads(1)
    except RuntimeError:
        pass  # only settable before the first parallel op; the value in effect is recorded below
    return {"torch_threads": torch.get_num_threads(), "torch_interop_threads": torch.get_num_interop_threads(),
            "ort_threads": threads}


def matmul_peak_gflops(threads: int, n: int = 1024, repeats: int = 5) -> dict[str, float]:
    """Best float32 GFLOP/s of an n x n matmul in torch and in numpy, with ``threads`` threads."""
    import torch  # seconds to import: the load tests (OtherLoad, sweeps) never need it

    flops = 2.0 * n**3
    torch.set_num_threads(threads)
    a, b = torch.randn(n, n), torch.randn(n, n)
    torch.matmul(a, b)
    best_t = min(_timed(lambda: torch.matmul(a, b)) for _ in range(repeats))
    an, bn = a.numpy(), b.numpy()
    with threadpool_limits(limits=threads):
        an @ bn
        best_n = min(_timed(lambda: an @ bn) for _ in range(repeats))
    out = {"torch": flops / best_t / 1e9, "numpy": flops / best_n / 1e9}
    out["peak"] = max(out.values())
    return out


def _timed(fn: Callable[[], Any]) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def machine_info(threads: int, matmul: dict[str, float] | None = None) -> dict[str, Any]:
    """CPU, cores, thread settings and matmul peak: the line every result table names."""
    matmul = matmul or matmul_peak_gflops(threads)
    return {"cpu": cpu_name(), "cores": cpu_count(), **configure_threads(threads),
            "matmul_peak_gflops": matmul["peak"], "matmul_gflops": matmul}


def _machine_busy_seconds() -> float | None:
    """CPU seconds all processes have spent busy since boot (/proc/stat), or None off Linux."""
    try:
        fields = Path("/proc/stat").read_text().splitlines()[0].split()[1:]
    except OSError:
        return None
    # user nice system idle iowait irq softirq steal ...: everything but idle and iowait is busy.
    ticks = [int(f) for f in fields]
    busy = sum(ticks) - ticks[3] - (ticks[4] if len(ticks) > 4 else 0)
    return busy / os.sysconf("SC_CLK_TCK")


class OtherLoad:
    """Share of the machine's cores used by *other* processes between ``start()`` and ``stop()``.

    Machine-wide busy CPU time minus this process's own CPU time and that of its reaped
    children (servers, nginx, locust: stop them before ``stop()``), over wall time x cores.
    0 means the measurement had the machine to itself; 0.5 on 2 cores means other work
    kept one core busy throughout (multi-threaded latencies and thread hand-offs suffer most).
    """

    share: float | None = None

    @staticmethod
    def _own() -> float:
        t = os.times()
        return t.user + t.system + t.children_user + t.children_system

    def start(self) -> OtherLoad:
        self.share = None
        self._t, self._cpu, self._busy = time.perf_counter(), self._own(), _machine_busy_seconds()
        return self

    def stop(self) -> float | None:
        busy = _machine_busy_seconds()
        wall = time.perf_counter() - self._t
        if busy is not None and self._busy is not None and wall > 0:
            others = (busy - self._busy) - (self._own() - self._cpu)
            # Clamped: /proc/stat counts in 10 ms ticks, coarse over a short block.
            self.share = min(1.0, max(0.0, others / (wall * cpu_count())))
        return self.share

    def __enter__(self) -> OtherLoad:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
