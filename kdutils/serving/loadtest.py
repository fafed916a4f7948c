"""HTTP load tests: locust runs headless in its own process against a server or nginx
(``kdutils/serving/locustfile.py``), with closed-loop users (users = requests in flight) posting one
real test sentence each. Every request is recorded with its start time and exact duration; the
first ``warmup_s`` seconds are discarded from latency and throughput but their failures still count.
Also the HTTP overhead over in-process calls and micro-batching on and off.
"""

from __future__ import annotations

import json
import math
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from kdutils.serving.deploy import (
    Deployment,
    ServerOptions,
)
from kdutils.study.files import REPO_ROOT

LOCUSTFILE = Path(__file__).with_name("locustfile.py")

# --------------------------------------------------------------------------- load tests


def write_texts(path: str | Path, texts: Sequence[str]) -> Path:
    """Write ``texts`` as one JSON list of strings (UTF-8, not ASCII-escaped) to ``path``, creating
    its folder: the sentences a load-test client sends. Returns ``path``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(list(texts), ensure_ascii=False))
    return path


@dataclass
class LoadProcess:
    """A running locust process and the files it writes."""

    popen: subprocess.Popen
    record: Path  # one JSON line per request, written when locust exits
    started: Path  # holds the send time of the first request, once it has answered
    log_path: Path


def start_load(url: str, model: str, texts_path: Path, users: int, seconds: float, prefix: Path) -> LoadProcess:
    """Start ``locust --headless`` in its own process (and session) against ``url``."""
    prefix.parent.mkdir(parents=True, exist_ok=True)
    record = prefix.with_name(prefix.name + "_requests.jsonl")
    started = prefix.with_name(prefix.name + "_started")
    log_path = prefix.with_name(prefix.name + "_locust.log")
    for p in (record, started):
        p.unlink(missing_ok=True)
    # -t is only a backstop: the locustfile stops `seconds` after its first request.
    cmd = [sys.executable, "-m", "locust", "-f", str(LOCUSTFILE), "--headless", "-u", str(users),
           "-r", str(users), "-t", f"{math.ceil(seconds) + 60}s", "--host", url, "--csv", str(prefix),
           "--only-summary", "--stop-timeout", "5", "--loglevel", "WARNING", "--exit-code-on-error", "0"]
    env = {**os.environ, "KD_MODEL": model, "KD_TEXTS": str(texts_path), "KD_RECORD": str(record),
           "KD_STARTED": str(started), "KD_RUN_SECONDS": str(seconds)}
    with open(log_path, "w") as log:
        # stdin from /dev/null: headless locust still listens for keyboard commands on a terminal.
        popen = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env,
                                 cwd=REPO_ROOT, start_new_session=True)
    return LoadProcess(popen, record, started, log_path)


def finish_load(load: LoadProcess, timeout: float) -> list[tuple[float, float, bool]]:
    """Wait for locust to finish and read its per-request record."""
    try:
        load.popen.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(load.popen.pid, signal.SIGKILL)
        load.popen.wait()
        raise
    if not load.record.exists():
        tail = load.log_path.read_text(errors="replace")[-2000:]
        raise RuntimeError(f"locust wrote no request record (exit {load.popen.returncode}):\n{tail}")
    return [tuple(json.loads(line)) for line in load.record.read_text().splitlines() if line.strip()]


def wait_started(load: LoadProcess, timeout: float = 60.0) -> float:
    """Block until locust's first request has answered; the Unix time that request was sent."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if load.started.exists() and (text := load.started.read_text().strip()):
            return float(text)
        if load.popen.poll() is not None:
            raise RuntimeError(f"locust exited early: {load.log_path.read_text(errors='replace')[-2000:]}")
        time.sleep(0.02)
    raise TimeoutError(f"locust did not start within {timeout:.0f}s")


def load_stats(records: Sequence[tuple[float, float, bool]], t_from: float | None = None,
               t_to: float | None = None) -> dict[str, Any]:
    """rps, latency percentiles of successful requests and failures, for requests started in [t_from, t_to)."""
    if not records:
        return {"requests": 0, "errors": 0, "rps": 0.0, "p50_ms": None, "p95_ms": None, "p99_ms": None}
    start = np.array([r[0] for r in records])
    ms = np.array([r[1] for r in records])
    ok = np.array([bool(r[2]) for r in records])
    t_from = start.min() if t_from is None else t_from
    t_to = (start + ms / 1000).max() if t_to is None else t_to
    sel = (start >= t_from) & (start < t_to)
    good = ms[sel & ok]
    pct = (lambda q: float(np.percentile(good, q))) if good.size else (lambda q: None)
    return {"requests": int(sel.sum()), "errors": int((sel & ~ok).sum()),
            "rps": float(sel.sum() / max(t_to - t_from, 1e-9)),
            "p50_ms": pct(50), "p95_ms": pct(95), "p99_ms": pct(99),
            "max_ms": float(good.max()) if good.size else None}


def run_load(url: str, model: str, texts_path: Path, users: int, duration_s: float, warmup_s: float,
             out_dir: Path, tag: str = "") -> dict[str, Any]:
    """One locust run: ``warmup_s`` then ``duration_s`` measured seconds at ``users`` concurrent requests.

    Latency and rps come from the measured window; ``errors`` counts every failed
    request of the run, warm-up included.
    """
    prefix = Path(out_dir) / f"{tag or 'load'}_{model.replace('@', '_')}_c{users}"
    load = start_load(url, model, texts_path, users, warmup_s + duration_s, prefix)
    records = finish_load(load, timeout=warmup_s + duration_s + 180)
    if not records:
        raise RuntimeError(f"locust made no requests to {url} ({prefix}_locust.log)")
    t0 = min(r[0] for r in records)
    stats = load_stats(records, t0 + warmup_s, t0 + warmup_s + duration_s)
    stats["errors"] = sum(not r[2] for r in records)
    stats["requests_total"] = len(records)
    stats["users"] = users
    return stats


def sweep(url: str, models: Sequence[str], texts_path: Path, concurrency: Sequence[int], duration_s: float,
          warmup_s: float, out_dir: Path, tag: str = "",
          progress: Callable[[str], None] | None = None) -> dict[str, dict[str, dict[str, Any]]]:
    """``{model: {concurrency: stats}}`` for each model and concurrency level."""
    out: dict[str, dict[str, dict[str, Any]]] = {}
    for model in models:
        for c in concurrency:
            if progress:
                progress(f"{tag} {model} c={c}")
            out.setdefault(model, {})[str(c)] = run_load(url, model, texts_path, c, duration_s, warmup_s,
                                                         out_dir, tag)
    return out


def fault_test(deployment: Any, model: str, texts_path: Path, users: int, duration_s: float, warmup_s: float,
               out_dir: Path, replica: int = 0) -> dict[str, Any]:
    """Load through nginx and SIGKILL one replica halfway; compare the windows before and after.

    Reports failed requests (the goal is 0: nginx retries a request whose replica
    died on another), how many requests nginx had to retry, and p50/p95/p99
    before the kill and after it.
    """
    prefix = Path(out_dir) / f"fault_{model.replace('@', '_')}_c{users}"
    total = warmup_s + duration_s
    load = start_load(deployment.url, model, texts_path, users, total, prefix)
    try:
        started = wait_started(load)
        time.sleep(max(0.0, started + warmup_s + duration_s / 2 - time.time()))
        killed_at = time.time()
        deployment.kill_replica(replica)
    finally:
        records = finish_load(load, timeout=total + 180)
    t0 = min(r[0] for r in records)
    before = load_stats(records, t0 + warmup_s, killed_at)
    after = load_stats(records, killed_at, t0 + total)
    retried = [row for row in deployment.nginx_access_log() if len(row["upstreams"]) > 1]
    return {
        "model": model, "users": users, "replicas": len(deployment.servers), "killed_replica": replica,
        "kill_at_s": killed_at - t0, "requests": len(records), "failed": sum(not r[2] for r in records),
        "retried_by_nginx": len(retried), "before": before, "after": after,
        "p95_ratio": (after["p95_ms"] / before["p95_ms"]) if before["p95_ms"] and after["p95_ms"] else None,
        "p99_ratio": (after["p99_ms"] / before["p99_ms"]) if before["p99_ms"] and after["p99_ms"] else None,
    }


# Entries of the serving section that are not {model: {concurrency: stats}} load sweeps.
SERVING_SIDE_KEYS = ("fault_test", "http_overhead", "micro_batching", "settings", "peers", "batching")


def serving_frame(serving: dict[str, Any]) -> pd.DataFrame:
    """``{setup: {model: {concurrency: stats}}}`` as a long table."""
    rows = []
    for setup, by_model in serving.items():
        if not isinstance(by_model, dict) or setup in SERVING_SIDE_KEYS:
            continue
        for model, by_c in by_model.items():
            for c, stats in by_c.items():
                rows.append({"setup": setup, "model": model, "concurrency": int(c), **stats})
    return pd.DataFrame(rows)


def http_overhead(url: str, models: Sequence[str], texts_path: Path, duration_s: float, warmup_s: float,
                  out_dir: Path) -> dict[str, Any]:
    """The no-op endpoint, then each of ``models``, at one request in flight on one server.

    ``noop``/``predict``/``p50_ratio`` describe the first model (its HTTP p50 over the
    no-op's: 1 would mean the model costs nothing beside HTTP, JSON and validation);
    ``runtimes`` holds the same for every model given.
    """
    if not models:
        raise ValueError("http_overhead needs at least one model")
    noop = run_load(url, "noop", texts_path, 1, duration_s, warmup_s, out_dir, tag="overhead")
    runtimes: dict[str, Any] = {}
    for model in models:
        stats = run_load(url, model, texts_path, 1, duration_s, warmup_s, out_dir, tag="overhead")
        ratio = stats["p50_ms"] / noop["p50_ms"] if stats["p50_ms"] and noop["p50_ms"] else None
        runtimes[model] = {"stats": stats, "p50_ratio": ratio}
    first = runtimes[models[0]]
    return {"users": 1, "model": models[0], "noop": noop, "predict": first["stats"],
            "p50_ratio": first["p50_ratio"], "runtimes": runtimes}


def compare_micro_batching(run_dir: str | Path, model: str, texts_path: Path, users: int, duration_s: float,
                           warmup_s: float, options: ServerOptions, out_dir: Path) -> dict[str, Any]:
    """One replica serving ``model`` with batching off, then on, at ``users`` in flight (locust).

    ``options`` are the replica's other settings. Returns ``{model, users, off, on, rps_ratio}``
    (``serving.micro_batching`` of :mod:`kdutils.study.summary`; no ``rps_ratio`` when off served nothing).
    """
    out: dict[str, Any] = {"model": model, "users": users}
    for label, batching in (("off", False), ("on", True)):
        opts = replace(options, models=(model,), batching=batching)
        with Deployment(run_dir, replicas=1, options=opts, log_dir=out_dir) as dep:
            out[label] = run_load(dep.url, model, texts_path, users, duration_s, warmup_s, out_dir,
                                  tag=f"microbatch_{label}")
    if out["off"]["rps"]:
        out["rps_ratio"] = out["on"]["rps"] / out["off"]["rps"]
    return out
