"""In-process benchmarks: batch-1 latency p50/p95 over single test sentences after a warm-up,
throughput at a fixed batch size over the test split, accuracy and agreement with eager PyTorch
from that same pass, FLOPs per sentence (analytic, at the mean tokenized length of the test
sentences) and the GFLOP/s this achieves, beside the machine's float32 matmul peak with the same
thread count. Threads are set explicitly and recorded.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from kdutils.host import OtherLoad, machine_info
from kdutils.inference.predictors import (
    RUNTIMES,
    ModelEntry,
    Predictor,
    discover,
    make_predictor,
    split_name,
)
from kdutils.machine import Precision
from kdutils.study.model_files import CONFIG_FILE

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
                    teacher_precision: Precision = "fp32",
                    progress: Callable[[str], None] | None = None) -> dict[str, Any]:
    """``{model: {runtime: row}, "machine": {...}}`` for every discovered model and runtime.

    Batch-1 latency is measured for all of them together in interleaved rounds
    (:func:`interleaved_latency`); throughput and accuracy then model by model, eager first so
    the other runtimes' agreement is measured against it. Eager teachers run in
    ``teacher_precision`` (resolved for this machine: ``fp32`` or ``bf16`` autocast), recorded as
    each eager teacher row's ``precision``.
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
        predictors = {name: make_predictor(entries[name], threads, teacher_precision) for _, _, name in plan}
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
                if entries[name].kind == "teacher":
                    row["precision"] = teacher_precision
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
