"""Benchmarks: in-process latency and throughput per model and runtime, and HTTP load tests.

In-process (:func:`micro_benchmark`): batch-1 latency p50/p95 over single test
sentences after a warm-up, throughput at a fixed batch size over the test split,
accuracy and agreement with eager PyTorch from that same pass, FLOPs per sentence
(analytic, at the mean tokenized length of the test sentences) and the GFLOP/s
this achieves, beside the machine's measured float32 matmul peak with the same
thread count. Threads are set explicitly and recorded.

Load (:func:`run_load`, :func:`sweep`, :func:`fault_test`): locust runs headless in
its own process against a server or nginx (``kdutils/locustfile.py``), with closed-loop
users (users = requests in flight) posting one real test sentence each. Every
request is recorded with its start time and exact duration; the first ``warmup_s``
seconds are discarded from latency and throughput but their failures still count.
"""

from __future__ import annotations

import copy
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
from threadpoolctl import threadpool_limits

from kdutils import lightload, plots
from kdutils.deploy import (
    Deployment,
    ServerOptions,
    free_ports,
    spawn,
    start_server,
    wait_healthy,
)
from kdutils.machine import cpu_name
from kdutils.model_files import CONFIG_FILE
from kdutils.predictors import RUNTIMES, ModelEntry, Predictor, discover, make_predictor, split_name
from kdutils.runs import REPO_ROOT
from kdutils.summary import ServingSection

LOCUSTFILE = Path(__file__).with_name("locustfile.py")


# --------------------------------------------------------------------------- machine


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


# --------------------------------------------------------------------------- FLOPs


def flops_per_sentence(entry: ModelEntry, seq_len: float) -> float:
    """Analytic FLOPs (2 x multiply-accumulates) of one forward pass over ``seq_len`` tokens.

    Student: per token and layer, each direction's LSTM does 4 gates x (input x hidden +
    hidden x hidden) MACs; plus the output layer. Transformer (BERT/MPNet config): per
    layer 4 L d^2 (Q, K, V, output projections) + 2 L^2 d (scores, weighted values) +
    2 L d d_ff (feed-forward) MACs; plus pooler d^2 and classifier d C. Embedding
    lookups, norms, softmax and biases are left out (a few percent at these sizes).
    """
    cfg = json.loads((entry.source_dir / CONFIG_FILE).read_text())
    L = float(seq_len)
    if entry.kind == "student":
        h, layers = cfg["hidden_size"], cfg["num_layers"]
        macs = 0.0
        for layer in range(layers):
            inp = cfg["embedding_dim"] if layer == 0 else 2 * h
            macs += 2 * 4 * (inp * h + h * h) * L
        pooled = 2 * h * (2 if cfg["pooling"] == "both" else 1)
        macs += pooled * cfg["num_labels"]
        return 2.0 * macs
    d, layers, ff = cfg["hidden_size"], cfg["num_hidden_layers"], cfg["intermediate_size"]
    num_labels = len(entry.label_names)
    per_layer = 4 * L * d * d + 2 * L * L * d + 2 * L * d * ff
    return 2.0 * (layers * per_layer + d * d + d * num_labels)


# --------------------------------------------------------------------------- in-process benchmark


def latency_ms(predictor: Predictor, texts: Sequence[str], samples: int, warmup: int = 10) -> dict[str, float]:
    """Batch-1 latency percentiles over ``samples`` single sentences (cycling through ``texts``)."""
    return interleaved_latency({"model": predictor}, texts, samples, rounds=1, warmup=warmup)["model"]


def interleaved_latency(predictors: dict[str, Predictor], texts: Sequence[str], samples: int, rounds: int = 10,
                        warmup: int = 10) -> dict[str, dict[str, float]]:
    """Batch-1 latency percentiles of several predictors, measured in interleaved rounds.

    On a shared (virtual) machine the speed of the cores drifts by up to 2x over minutes; timed
    one after another, two models would be compared across different machine states. Here each
    round times a slice of the sentences on every predictor in turn (the order rotating between
    rounds), so drift hits every predictor alike and ratios between them stay fair.
    """
    names = list(predictors)
    for name in names:
        for i in range(warmup):
            predictors[name].predict_logits([texts[i % len(texts)]])
    times: dict[str, list[float]] = {name: [] for name in names}
    rounds = max(1, min(rounds, samples))
    bounds = np.linspace(0, samples, rounds + 1).astype(int)
    for r in range(rounds):
        order = names[r % len(names):] + names[: r % len(names)]
        for name in order:
            predictor = predictors[name]
            for i in range(bounds[r], bounds[r + 1]):
                text = texts[i % len(texts)]
                t0 = time.perf_counter()
                predictor.predict_logits([text])
                times[name].append((time.perf_counter() - t0) * 1000)
    return {name: {"p50": float(np.percentile(t, 50)), "p95": float(np.percentile(t, 95)),
                   "mean": float(np.mean(t)), "n": len(t)} for name, t in times.items()}


def batched_pass(predictor: Predictor, texts: Sequence[str], batch_size: int) -> tuple[np.ndarray, float]:
    """Logits of ``texts`` in batches of ``batch_size`` in their given order, and sentences per second."""
    predictor.predict_logits(list(texts[:batch_size]))  # warm-up at the batch shape
    out = []
    t0 = time.perf_counter()
    for start in range(0, len(texts), batch_size):
        out.append(predictor.predict_logits(list(texts[start:start + batch_size])))
    seconds = time.perf_counter() - t0
    return np.concatenate(out), len(texts) / seconds


def benchmark_predictor(predictor: Predictor, texts: Sequence[str], labels: Sequence[int], *,
                        latency_samples: int, batch_size: int,
                        eager_predictions: np.ndarray | None = None,
                        latency: dict[str, float] | None = None) -> tuple[dict[str, Any], np.ndarray]:
    """One row of the inference table, and the predicted labels (for the agreement of other runtimes).

    ``latency``: percentiles already measured (by :func:`interleaved_latency`); else measured here.
    """
    entry = predictor.entry
    lat = latency if latency is not None else latency_ms(predictor, texts, latency_samples)
    logits, per_s = batched_pass(predictor, texts, batch_size)
    preds = logits.argmax(axis=1)
    seq_len = float(np.mean(predictor.encoder.lengths(list(texts))))
    flops = flops_per_sentence(entry, seq_len)
    row = {
        "latency_ms_p50": lat["p50"], "latency_ms_p95": lat["p95"], "latency_ms_mean": lat["mean"],
        "latency_samples": lat["n"],
        # Named by its batch size: throughput_per_s_b64 at the default batch of 64.
        f"throughput_per_s_b{batch_size}": per_s,
        "throughput_batch": batch_size,
        "accuracy": float((preds == np.asarray(labels)).mean()),
        "size_mb": entry.size_mb, "params": entry.params,
        "mean_tokens": seq_len, "flops_per_sentence": flops,
        "gflops_achieved": flops * per_s / 1e9,
        "gflops_achieved_b1": flops / (lat["p50"] / 1000) / 1e9,
        "agreement_with_eager": (1.0 if eager_predictions is None
                                 else float((preds == eager_predictions).mean())),
    }
    return row, preds


def micro_benchmark(run_or_models: str | Path | Any, texts: Sequence[str], labels: Sequence[int], *,
                    threads: int, latency_samples: int, batch_size: int = 64,
                    models: Sequence[str] | None = None, runtimes: Sequence[str] = RUNTIMES,
                    progress: Callable[[str], None] | None = None) -> dict[str, Any]:
    """``{model: {runtime: row}, "machine": {...}}`` for every discovered model and runtime.

    Batch-1 latency is measured for all of them together in interleaved rounds
    (:func:`interleaved_latency`); throughput and accuracy then model by model, eager first so
    the other runtimes' agreement is measured against it.
    """
    machine = machine_info(threads)
    entries = discover(run_or_models)
    bases = list(dict.fromkeys(split_name(n)[0] for n in entries))
    if models is not None:
        bases = [b for b in bases if b in models]
    plan = [(base, runtime, base if runtime == "torch" else f"{base}@{runtime}") for base in bases
            for runtime in runtimes]
    plan = [(base, runtime, name) for base, runtime, name in plan if name in entries]
    out: dict[str, Any] = {}
    with OtherLoad() as other:
        predictors = {name: make_predictor(entries[name], threads) for _, _, name in plan}
        if progress:
            progress(f"batch-1 latency of {len(predictors)} model/runtime pairs, interleaved")
        latencies = interleaved_latency(predictors, texts, latency_samples)
        eager_preds: dict[str, np.ndarray] = {}
        for base, runtime, name in plan:
            if progress:
                progress(name)
            row, preds = benchmark_predictor(predictors[name], texts, labels, latency_samples=latency_samples,
                                             batch_size=batch_size, eager_predictions=eager_preds.get(base),
                                             latency=latencies[name])
            if runtime == "torch":
                eager_preds[base] = preds
            out.setdefault(base, {})[runtime] = row
    machine["other_processes_cpu_share"] = other.share
    machine["latency_measurement"] = "interleaved rounds over all model/runtime pairs"
    out["machine"] = machine
    return out


def inference_frame(inference: dict[str, Any]) -> pd.DataFrame:
    """The inference section as a long table: one row per model and runtime."""
    rows = [{"model": m, "runtime": rt, **vals} for m, by_rt in inference.items() if m != "machine"
            for rt, vals in by_rt.items()]
    return pd.DataFrame(rows)


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


# --------------------------------------------------------------------------- the summary's serving section

LOAD_GENERATOR = "locust (headless, own process, FastHttpUser, no wait time)"
LATENCY_CLIENT = "kdutils.lightload (http.client keep-alive, own process, interleaved)"


def with_in_process(http_overhead: dict[str, Any], inference: dict[str, Any]) -> dict[str, Any]:
    """``http_overhead`` of :func:`peer_comparison` (a copy) with each served runtime's in-process
    batch-1 p50 from ``inference`` (:func:`micro_benchmark`) beside its HTTP p50, in ms:
    ``in_process_p50_ms`` per runtime and, for the first served model, at the top."""
    out = copy.deepcopy(http_overhead)
    for name, result in out["runtimes"].items():
        base, runtime = split_name(name)
        result["in_process_p50_ms"] = inference[base][runtime]["latency_ms_p50"]
    out["in_process_p50_ms"] = out["runtimes"][out["model"]]["in_process_p50_ms"]
    return out


def serving_section(*, machine: dict[str, Any], replicas: int, threads_per_replica: int, warmup_s: float,
                    duration_s: float, peers: dict[str, Any], batching: dict[str, Any],
                    http_overhead: dict[str, Any], one_replica: dict[str, Any], micro_batching: dict[str, Any],
                    other_load: dict[str, float | None], nginx_version: str | None,
                    nginx_sweep: dict[str, Any] | None = None,
                    fault_test: dict[str, Any] | None = None) -> ServingSection:
    """Notebook 05's measurements as ``summary.json``'s ``serving`` section.

    ``machine`` is ``inference["machine"]`` (:func:`micro_benchmark`); ``peers``, ``batching`` and
    ``http_overhead`` come from :func:`peer_comparison` (the last through :func:`with_in_process`),
    ``one_replica`` and ``nginx_sweep`` from :func:`sweep`, ``fault_test`` from :func:`fault_test`,
    ``micro_batching`` from :func:`compare_micro_batching`; ``other_load`` is each block's
    :class:`OtherLoad` share (fraction of the cores, None where not measurable) and
    ``nginx_version`` :func:`kdutils.deploy.nginx_version`. Without nginx (``nginx_sweep`` and
    ``fault_test`` None) the fault test is recorded as skipped. Raises pydantic's ValidationError
    when a value does not fit :class:`kdutils.summary.ServingSection`.
    """
    settings = {"cpu": machine["cpu"], "cores": machine["cores"], "replicas": replicas,
                "threads_per_replica": threads_per_replica, "warmup_s": warmup_s, "duration_s": duration_s,
                "load_generator": LOAD_GENERATOR, "latency_client": LATENCY_CLIENT, "nginx": nginx_version,
                "other_processes_cpu_share": other_load}
    section = {"settings": settings, "peers": peers, "batching": batching, "http_overhead": http_overhead,
               "1_replica": one_replica}
    if nginx_sweep is not None:
        section["N_replicas_nginx"] = nginx_sweep
    section["fault_test"] = fault_test if fault_test is not None else {"skipped": "nginx is not installed"}
    section["micro_batching"] = micro_batching
    return ServingSection.from_record(section)


# --------------------------------------------------------------------------- figures
# matplotlib and seaborn are imported inside each figure function: the servers and load clients
# started from this module never draw.


def plot_inference(inference: dict[str, Any]) -> Any:
    """Batch-1 p50 latency (log scale) per model, one bar per runtime."""
    import matplotlib.pyplot as plt
    import seaborn as sns

    plots.set_style()
    df = inference_frame(inference)
    fig, ax = plt.subplots(figsize=plots.DOUBLE_COLUMN)
    sns.barplot(data=df, y="model", x="latency_ms_p50", hue="runtime", ax=ax, orient="h",
                palette=dict(zip(RUNTIMES, ("#34495e", "#5dade2", "#c0392b"), strict=True)))
    ax.set_xscale("log")
    ax.set_xlabel("batch-1 latency p50 (ms, log scale)")
    ax.set_ylabel("")
    ax.set_title(f"In-process inference time ({inference['machine']['cpu']}, "
                 f"{inference['machine']['torch_threads']} threads)")
    return fig


def plot_pareto(inference: dict[str, Any]) -> Any:
    """Test accuracy against batch-1 latency (log scale); the Pareto front joined by a line."""
    import matplotlib.pyplot as plt
    from matplotlib.lines import Line2D

    plots.set_style()
    df = inference_frame(inference).sort_values("latency_ms_p50")
    fig, ax = plt.subplots(figsize=plots.SINGLE_COLUMN)
    markers = {"torch": "o", "onnx": "s", "onnx-int8": "^"}
    for _, r in df.iterrows():
        ax.scatter(r["latency_ms_p50"], 100 * r["accuracy"], color=plots.model_color(r["model"]),
                   marker=markers.get(r["runtime"], "o"), s=22, zorder=3)
    front = df[100 * df["accuracy"] >= (100 * df["accuracy"]).cummax()]
    ax.plot(front["latency_ms_p50"], 100 * front["accuracy"], color="0.6", lw=0.8, zorder=2, ls="--")
    for model, g in df.groupby("model"):
        r = g.iloc[0]
        ax.annotate(model, (r["latency_ms_p50"], 100 * r["accuracy"]), fontsize=5, xytext=(3, 3),
                    textcoords="offset points")
    ax.legend(handles=[Line2D([], [], marker=m, ls="", color="0.3", label=k) for k, m in markers.items()],
              loc="lower right")
    ax.set_xscale("log")
    ax.set_xlabel("batch-1 latency p50 (ms, log scale)")
    ax.set_ylabel("test accuracy (%)")
    return fig


def plot_serving(serving: dict[str, Any]) -> Any:
    """Throughput and p95 latency against concurrency, per model, for each setup."""
    import matplotlib.pyplot as plt

    plots.set_style()
    df = serving_frame(serving)
    fig, axes = plt.subplots(1, 2, figsize=plots.DOUBLE_COLUMN)
    styles = {"1_replica": "-", "N_replicas_nginx": "--"}
    n = serving.get("settings", {}).get("replicas", "N")
    names = {"1_replica": "1 replica", "N_replicas_nginx": f"{n} replicas + nginx"}
    for (setup, model), g in df.groupby(["setup", "model"]):
        g = g.sort_values("concurrency")
        kw = {"color": plots.model_color(model), "ls": styles.get(setup, ":"), "marker": "o", "ms": 3,
              "label": f"{model} ({names.get(setup, setup)})"}
        axes[0].plot(g["concurrency"], g["rps"], **kw)
        axes[1].plot(g["concurrency"], g["p95_ms"], **kw)
    for ax, label in zip(axes, ("requests / s", "p95 latency (ms)"), strict=True):
        ax.set_xscale("log", base=2)
        ax.set_xlabel("concurrent requests (locust users)")
        ax.set_ylabel(label)
    axes[1].set_yscale("log")
    axes[0].legend(fontsize=5)
    return fig


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
    (``serving.micro_batching`` of :mod:`kdutils.summary`; no ``rps_ratio`` when off served nothing).
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


def _load_runs(serving: dict[str, Any]) -> list[dict[str, Any]]:
    """Every load run's stats in the serving section (sweeps, HTTP overhead, micro-batching)."""
    runs = serving_frame(serving).to_dict("records")
    overhead = serving.get("http_overhead", {})
    runs += [overhead["noop"], *(r["stats"] for r in overhead["runtimes"].values())] if overhead else []
    mb = serving.get("micro_batching", {})
    runs += [mb[k] for k in ("off", "on") if k in mb]
    peers = serving.get("peers", {})
    runs += [st for k in ("floor", "naive", "ours") for st in peers.get(k, {}).values()]
    runs += [st for k in ("off", "on") for st in serving.get("batching", {}).get(k, {}).values()]
    return runs


# Batching must not cost throughput where it cannot help: "within noise" is this ratio, the
# spread measured between identical copies of one server (up to 6%).
BATCHING_NOISE = 0.94


def peer_targets(serving: dict[str, Any], in_process_p50_ms: float | None) -> list[dict[str, Any]]:
    """Issue 15's serving targets from ``serving.peers`` and ``serving.batching``.

    1. our p50 at one request in flight <= floor p50 + 2 x the in-process p50 of the same runtime;
    2. our throughput at 16 in flight >= 1.25 x the naive peer's;
    3. our p50 at one in flight <= 0.9 x the naive peer's;
    4. batching on never below off (within noise) at every concurrency, and above it at the highest.
    """
    out: list[dict[str, Any]] = []
    peers, batching = serving.get("peers"), serving.get("batching")
    if not peers:
        return out
    ours, naive, floor = peers["ours"], peers["naive"], peers["floor"]
    low, high = min(ours, key=int), max(ours, key=int)
    if in_process_p50_ms is not None:
        bound = floor[low]["p50_ms"] + 2 * in_process_p50_ms
        out.append({"target": f"our p50 at {low} in flight <= floor p50 + 2 x in-process p50 ({bound:.3f} ms)",
                    "value": ours[low]["p50_ms"], "unit": "ms", "met": ours[low]["p50_ms"] <= bound})
    ratio = ours[high]["rps"] / naive[high]["rps"]
    out.append({"target": f"our throughput at {high} in flight >= 1.25x the naive peer's", "value": ratio,
                "unit": "x", "met": ratio >= 1.25})
    ratio = ours[low]["p50_ms"] / naive[low]["p50_ms"]
    out.append({"target": f"our p50 at {low} in flight <= 0.9x the naive peer's", "value": ratio, "unit": "x",
                "met": ratio <= 0.9})
    if batching:
        for c in sorted(batching["off"], key=int):
            ratio = batching["on"][c]["rps"] / batching["off"][c]["rps"]
            above = c == max(batching["off"], key=int)
            out.append({"target": f"batching throughput at {c} in flight {'above' if above else 'not below'} "
                                  f"batching off{'' if above else ' (within noise)'}", "value": ratio, "unit": "x",
                        "met": ratio > 1 if above else ratio >= BATCHING_NOISE})
    return out


# --------------------------------------------------------------------------- targets


def evaluate_targets(inference: dict[str, Any], serving: dict[str, Any], student: str = "student_distilled",
                     teacher: str = "teacher", latency_ratio_target: float | None = None) -> list[dict[str, Any]]:
    """The study's deployment targets, each ``{"target", "value", "unit", "met", "measured"}``
    (``measured``: value and unit in words; rows of ``targets.deployment`` in :mod:`kdutils.summary`).

    0. with ``latency_ratio_target`` (the profile's ``deploy.target_latency_ratio``), the student's
       batch-1 p50 at least that many times below the teacher's, eager PyTorch on both;
    1. the student's batch-1 p50 latency at least 10x below the teacher's, per runtime;
    2. ONNX int8 student faster (p50) than ONNX fp32, accuracy within 0.5 points;
    3. zero failed requests in the load and fault tests (peer and batching runs included);
    4. with ``serving.peers``, issue 15's serving targets (:func:`peer_targets`).
    The HTTP p50 is not held to a multiple of the no-op endpoint's (issue 24): once a model call
    costs more than half the no-op, no server can meet "within 1.5x". The overhead run is still
    measured (``serving.http_overhead``); the floor and peer targets judge the server.
    A target whose measurement is missing is reported with ``met: None``.
    """
    out: list[dict[str, Any]] = []
    ratios = {}
    for rt in RUNTIMES:
        s, t = inference.get(student, {}).get(rt), inference.get(teacher, {}).get(rt)
        ratios[rt] = t["latency_ms_p50"] / s["latency_ms_p50"] if s and t else None
    bars = [(latency_ratio_target, "torch", "eager")] if latency_ratio_target is not None else []
    for bar, rt, label in [*bars, *((10, rt, rt) for rt in RUNTIMES)]:
        ratio = ratios[rt]
        out.append({"target": f"{student} batch-1 latency >= {bar:g}x lower than {teacher} ({label})",
                    "value": ratio, "unit": "x", "met": None if ratio is None else ratio >= bar})
    fp32, int8 = inference.get(student, {}).get("onnx"), inference.get(student, {}).get("onnx-int8")
    if fp32 and int8:
        speedup = fp32["latency_ms_p50"] / int8["latency_ms_p50"]
        change = 100 * (int8["accuracy"] - fp32["accuracy"])
        out.append({"target": f"{student} ONNX int8 faster than ONNX fp32", "value": speedup, "unit": "x",
                    "met": speedup > 1})
        out.append({"target": f"{student} ONNX int8 accuracy within 0.5 points of fp32", "value": change,
                    "unit": "points", "met": abs(change) <= 0.5})
    peer_model = serving.get("peers", {}).get("model")
    if peer_model:
        rt = split_name(peer_model)[1]
        in_process = inference.get(split_name(peer_model)[0], {}).get(rt, {}).get("latency_ms_p50")
        out += peer_targets(serving, in_process)
    runs = _load_runs(serving)
    load_errors = sum(r["errors"] for r in runs) if runs else None
    fault = serving.get("fault_test", {})
    fault_errors = fault.get("failed")
    out.append({"target": "zero failed requests in the load tests", "value": load_errors, "unit": "requests",
                "met": None if load_errors is None else load_errors == 0})
    out.append({"target": "zero failed requests in the fault test (replica killed)", "value": fault_errors,
                "unit": "requests", "met": None if fault_errors is None else fault_errors == 0})
    for row in out:
        value, unit = row["value"], row["unit"]
        if value is None:
            row["measured"] = "not measured"
        else:
            number = f"{value:d}" if isinstance(value, int) else f"{value:.3g}"
            row["measured"] = f"{number}{'' if unit == 'x' else ' '}{unit}"
    return out


# --------------------------------------------------------------------------- floor, peer and ours

# Requests in flight of the peer comparison (the contract of summary.json's serving.peers).
PEER_CONCURRENCY = (1, 4, 16)


def split_cpus() -> tuple[set[int] | None, set[int] | None]:
    """(server CPUs, client CPUs): the first usable CPU for servers, the rest for the client.

    ``(None, None)`` on a one-core machine or where affinity cannot be set.
    """
    if not hasattr(os, "sched_getaffinity"):
        return None, None
    cpus = sorted(os.sched_getaffinity(0))
    return ({cpus[0]}, set(cpus[1:])) if len(cpus) >= 2 else (None, None)


def peer_comparison(run_dir: str | Path, model: str, texts: Sequence[str], out_dir: Path, *,
                    overhead_models: Sequence[str] = (), concurrency: Sequence[int] = PEER_CONCURRENCY,
                    requests: int = 2000, repeats: int = 3, block: int = 100, threads: int = 1,
                    max_batch: int = 64, progress: Callable[[str], None] | None = None) -> dict[str, Any]:
    """The floor, the naive peer and our server on the same model, measured interleaved.

    Four servers run side by side (separate uvicorn processes, pinned to one core where the
    machine has two or more; the client gets the others): ``floor`` and ``naive`` from
    :mod:`kdutils.serving_peers`, ``ours`` (:mod:`kdutils.serve` with its defaults, batching
    on) and ``ours_no_batching`` (batching off). At each concurrency :func:`kdutils.lightload.interleaved`
    sends ``requests`` requests x ``repeats`` to each, one real test sentence per request. At
    one request in flight it also measures our ``/noop`` and ``/predict`` of each of
    ``overhead_models`` (the HTTP overhead).

    Returns ``{"peers": {model, runtime, floor, naive, ours, settings}, "batching": {model,
    off, on}, "http_overhead": {...}}``; each server entry maps str(concurrency) to stats
    (``p50_ms``, ``p95_ms``, ``p99_ms``, ``rps``, ``errors``, ``requests``). Raises
    :class:`kdutils.deploy.DeployError` when a server does not come up.
    """
    out_dir = Path(out_dir)
    server_cpus, client_cpus = split_cpus()
    pin = tuple(sorted(server_cpus)) if server_cpus else None
    runtime = split_name(model)[1]
    ports = free_ports(4)
    procs: dict[str, Any] = {}
    try:
        for peer, port in zip(("floor", "naive"), ports, strict=False):
            cmd = [sys.executable, "-m", "kdutils.serving_peers", peer, "--run", str(run_dir), "--model", model,
                   "--port", str(port), "--threads", str(threads)] + (["--cpus", ",".join(map(str, pin))] if pin else [])
            procs[peer] = spawn(peer, cmd, out_dir / f"peer_{peer}_{port}.log", cwd=REPO_ROOT,
                                env={"PYTHONUNBUFFERED": "1"}, url=f"http://127.0.0.1:{port}")
        served = tuple(dict.fromkeys([model, *overhead_models]))
        # "ours" is the server as shipped (batching on); "ours_no_batching" the same with it off.
        for name, port, batching in (("ours", ports[2], True), ("ours_no_batching", ports[3], False)):
            opts = ServerOptions(models=served if name == "ours" else (model,), threads=threads, batching=batching,
                                 cpus=pin, log_level="info")
            procs[name] = start_server(run_dir, port, out_dir / f"peer_{name}_{port}.log", opts, name=name)
        for proc in procs.values():
            wait_healthy(proc.url, proc, timeout=180)
        bodies = [json.dumps({"texts": [t]}).encode() for t in texts]
        base = {n: p.url for n, p in procs.items()}
        runs: dict[int, dict[str, Any]] = {}
        for c in concurrency:
            targets = [lightload.Target(n, f"{u}/predict/{model}") for n, u in base.items()]
            if c == 1:
                targets.append(lightload.Target("ours_noop", f"{base['ours']}/noop"))
                targets += [lightload.Target(f"ours:{m}", f"{base['ours']}/predict/{m}") for m in overhead_models
                            if m != model]
            if progress:
                progress(f"interleaved: {len(targets)} targets at {c} in flight")
            runs[c] = lightload.interleaved(targets, bodies, c, requests=requests, repeats=repeats, block=block,
                                            warmup=min(requests, 200), cpus=client_cpus)
    finally:
        for proc in procs.values():
            proc.stop()

    def by_c(name: str) -> dict[str, Any]:
        return {str(c): runs[c][name] for c in concurrency}

    settings = {"method": "kdutils.lightload (http.client keep-alive, own process, interleaved shuffled blocks)",
                "requests_per_repeat": requests, "repeats": repeats, "block": block, "threads": threads,
                "server_cpus": sorted(server_cpus) if server_cpus else None,
                "client_cpus": sorted(client_cpus) if client_cpus else None,
                "client": {str(c): runs[c]["_client"] for c in concurrency}}
    peers = {"model": model, "runtime": runtime, "floor": by_c("floor"), "naive": by_c("naive"),
             "ours": by_c("ours"), "settings": settings}
    batching = {"model": model, "max_batch": max_batch, "off": by_c("ours_no_batching"), "on": by_c("ours")}
    one = runs[min(concurrency)]
    noop = one["ours_noop"]
    runtimes = {}
    for m in overhead_models or (model,):
        st = one["ours"] if m == model else one[f"ours:{m}"]
        runtimes[m] = {"stats": st, "p50_ratio": st["p50_ms"] / noop["p50_ms"] if st["p50_ms"] and noop["p50_ms"] else None}
    first = next(iter(runtimes))
    overhead = {"users": min(concurrency), "model": first, "noop": noop, "predict": runtimes[first]["stats"],
                "p50_ratio": runtimes[first]["p50_ratio"], "runtimes": runtimes, "floor": one["floor"],
                "method": settings["method"]}
    return {"peers": peers, "batching": batching, "http_overhead": overhead}


def peers_frame(peers: dict[str, Any]) -> pd.DataFrame:
    """serving.peers as a table: one row per server and concurrency."""
    rows = [{"server": s, "concurrency": int(c), **{k: v for k, v in st.items() if k != "p50_ms_repeats"}}
            for s in ("floor", "naive", "ours") for c, st in peers.get(s, {}).items()]
    return pd.DataFrame(rows)


def plot_peers(peers: dict[str, Any]) -> Any:
    """p50 latency and throughput against requests in flight: floor, naive peer and ours."""
    import matplotlib.pyplot as plt

    plots.set_style()
    df = peers_frame(peers)
    fig, axes = plt.subplots(1, 2, figsize=plots.DOUBLE_COLUMN)
    colors = {"floor": "0.55", "naive": "#c0392b", "ours": "#2471a3"}
    labels = {"floor": "floor (bare ASGI)", "naive": "naive FastAPI peer", "ours": "kdutils.serve"}
    for server, g in df.groupby("server"):
        g = g.sort_values("concurrency")
        kw = {"color": colors[server], "marker": "o", "ms": 3, "label": labels[server]}
        axes[0].plot(g["concurrency"], g["p50_ms"], **kw)
        axes[0].fill_between(g["concurrency"], g["p50_ms"], g["p95_ms"], color=colors[server], alpha=0.12, lw=0)
        axes[1].plot(g["concurrency"], g["rps"], **kw)
    for ax, label in zip(axes, ("latency p50 (line) to p95 (band), ms", "requests / s"), strict=True):
        ax.set_xscale("log", base=2)
        ax.set_xlabel("requests in flight")
        ax.set_ylabel(label)
    axes[0].legend(fontsize=6)
    fig.suptitle(f"{peers['model']} over HTTP, one server process each", fontsize=8)
    return fig
