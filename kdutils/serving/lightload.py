"""A light, interleaved HTTP client for latency at low concurrency (locust stays for load).

A heavy load generator on the same two cores measures itself: locust's per-request cost is
several times the server's at one request in flight. This client is ``http.client`` with
keep-alive connections, runs in its own process (pinned to other cores than the servers
where the machine has them) and records its own CPU time. It compares *targets* (servers or
endpoints) by interleaving them: each repeat sends shuffled blocks of requests to every
target in turn, so a slow minute of a shared machine is spread over all of them, and a
single sequential measurement cannot pass a loaded machine off as a slow server.
"""

from __future__ import annotations

import http.client
import os
import random
import threading
import time
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from multiprocessing import get_context
from typing import Any
from urllib.parse import urlsplit

import numpy as np


@dataclass(frozen=True)
class Target:
    """One thing to measure: ``POST`` of the shared bodies to ``url`` (``http://host:port/path``)."""

    name: str
    url: str


def _connect(url: str) -> tuple[http.client.HTTPConnection, str]:
    u = urlsplit(url)
    return http.client.HTTPConnection(u.hostname, u.port, timeout=60), u.path or "/"


# Servers close idle keep-alive connections (uvicorn after 5 s); while other targets take their
# turn a connection sits idle, so it is reopened, outside the timed requests, after this long.
IDLE_RECONNECT_S = 2.0


class _Worker:
    """One keep-alive connection to one target; sends bodies in turn and records each latency."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.conn, self.path = _connect(url)
        self.last_used = time.monotonic()

    def refresh(self, idle_s: float = IDLE_RECONNECT_S) -> None:
        """Reopen a connection idle for ``idle_s`` (untimed): the server may have closed it meanwhile."""
        if time.monotonic() - self.last_used > idle_s:
            self.conn.close()
            self.conn, self.path = _connect(self.url)

    def send(self, body: bytes) -> tuple[float, bool]:
        self.last_used = time.monotonic()
        t0 = time.perf_counter()
        try:
            self.conn.request("POST", self.path, body=body, headers={"Content-Type": "application/json"})
            resp = self.conn.getresponse()
            resp.read()
            ok = resp.status == 200
        except (OSError, http.client.HTTPException):
            self.conn.close()
            self.conn, self.path = _connect(self.url)
            ok = False
        return (time.perf_counter() - t0) * 1000, ok

    def close(self) -> None:
        self.conn.close()


def _block(workers: list[_Worker], bodies: Sequence[bytes], start: int, n: int) -> tuple[list[float], int, float]:
    """``n`` requests, ``len(workers)`` in flight (closed loop); latencies of the good ones, errors, wall s."""
    lat: list[float] = []
    errors = 0
    lock = threading.Lock()
    counter = iter(range(start, start + n))

    def loop(w: _Worker) -> None:
        nonlocal errors
        while True:
            with lock:
                i = next(counter, None)
            if i is None:
                return
            ms, ok = w.send(bodies[i % len(bodies)])
            with lock:
                if ok:
                    lat.append(ms)
                else:
                    errors += 1

    for w in workers:
        w.refresh()
    t0 = time.perf_counter()
    if len(workers) == 1:
        loop(workers[0])  # one in flight: no thread, the lightest client
    else:
        threads = [threading.Thread(target=loop, args=(w,)) for w in workers]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    return lat, errors, time.perf_counter() - t0


def stats(lat_ms: Sequence[float], errors: int, wall_s: float) -> dict[str, Any]:
    """p50/p95/p99 (ms) of the good requests, throughput (requests/s over ``wall_s``) and errors."""
    a = np.asarray(lat_ms, dtype=float)
    pct = (lambda q: float(np.percentile(a, q))) if a.size else (lambda q: None)
    n = int(a.size) + errors
    return {"p50_ms": pct(50), "p95_ms": pct(95), "p99_ms": pct(99), "rps": n / wall_s if wall_s > 0 else 0.0,
            "errors": int(errors), "requests": n}


def _run(targets: list[Target], bodies: list[bytes], concurrency: int, requests: int, repeats: int,
         block: int, warmup: int, seed: int, cpus: set[int] | None) -> dict[str, Any]:
    if cpus and hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, cpus & os.sched_getaffinity(0) or os.sched_getaffinity(0))
    rng = random.Random(seed)
    workers = {t.name: [_Worker(t.url) for _ in range(concurrency)] for t in targets}
    for t in targets:  # warm-up: connections open, servers past their first requests
        _block(workers[t.name], bodies, 0, warmup)
    lat: dict[str, list[float]] = {t.name: [] for t in targets}
    errors = dict.fromkeys(lat, 0)
    wall = dict.fromkeys(lat, 0.0)
    per_repeat: dict[str, list[float]] = {t.name: [] for t in targets}
    cpu0, t0 = time.process_time(), time.perf_counter()
    blocks = max(1, requests // block)
    for _ in range(repeats):
        rep: dict[str, list[float]] = {t.name: [] for t in targets}
        order = [t.name for t in targets for _ in range(blocks)]
        rng.shuffle(order)
        for k, name in enumerate(order):
            got, err, w = _block(workers[name], bodies, k * block, block)
            rep[name] += got
            errors[name] += err
            wall[name] += w
        for name, values in rep.items():
            lat[name] += values
            per_repeat[name].append(float(np.percentile(values, 50)) if values else float("nan"))
    cpu, elapsed = time.process_time() - cpu0, time.perf_counter() - t0
    for ws in workers.values():
        for w in ws:
            w.close()
    out: dict[str, Any] = {}
    for name in lat:
        out[name] = {**stats(lat[name], errors[name], wall[name]), "p50_ms_repeats": per_repeat[name]}
    total = sum(v["requests"] for v in out.values())
    out["_client"] = {"cpu_s": cpu, "wall_s": elapsed, "cpu_share": cpu / elapsed if elapsed else None,
                      "cpu_us_per_request": 1e6 * cpu / total if total else None, "pid": os.getpid(),
                      "cpus": sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None}
    return out


def interleaved(targets: Sequence[Target], bodies: Sequence[bytes], concurrency: int, *, requests: int = 2000,
                repeats: int = 3, block: int = 100, warmup: int = 100, seed: int = 0,
                cpus: set[int] | None = None) -> dict[str, Any]:
    """Measure every target at ``concurrency`` requests in flight, interleaved, in a separate process.

    ``bodies``: request bodies (JSON bytes) sent in turn, the same sequence to every target.
    Each of ``repeats`` sends ``requests`` requests per target in shuffled blocks of ``block``.
    Returns, per target name, ``p50_ms``, ``p95_ms``, ``p99_ms`` (all repeats pooled, ms),
    ``rps`` (requests per second of the target's own blocks), ``errors`` (non-200 or failed
    connections), ``requests`` and ``p50_ms_repeats``; and under ``"_client"`` the client's CPU
    seconds, its share of one core and its CPU µs per request (a client near 100% of its core
    limits what it measures). ``cpus``: pin the client process to these CPUs.
    Raises ValueError on empty targets or bodies, or non-positive counts.
    """
    if not targets or not bodies:
        raise ValueError("interleaved needs at least one target and one body")
    if min(concurrency, requests, repeats, block) < 1 or warmup < 0:
        raise ValueError(f"concurrency, requests, repeats and block must be positive, got "
                         f"{concurrency}, {requests}, {repeats}, {block}")
    if len({t.name for t in targets}) != len(targets) or any(t.name.startswith("_") for t in targets):
        raise ValueError(f"target names must be distinct and not start with '_': {[t.name for t in targets]}")
    with ProcessPoolExecutor(1, mp_context=get_context("spawn")) as pool:
        return pool.submit(_run, list(targets), list(bodies), concurrency, requests, repeats, block,
                           warmup, seed, cpus).result()
