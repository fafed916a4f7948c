"""Teachers after fine-tuning: test metrics, batch-1 latency, summary entries and figures.

Where the weights come from is :mod:`kdutils.teacher.weights`; fine-tuning is
:mod:`kdutils.teacher.finetune`; scoring many sentences (cached) is :mod:`kdutils.teacher.scoring`.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from kdutils.machine import quiet_transformers
from kdutils.metrics import classification_metrics
from kdutils.teacher.finetune import TeacherResult
from kdutils.teacher.scoring import TeacherScorer

# torch, transformers and matplotlib are imported where used: each takes seconds to import.

# --------------------------------------------------------------------------- evaluation, costs and figures


def evaluate_teacher(model_dir: str | Path, frame: pd.DataFrame, cache_dir: str | Path | None,
                     batch_size: int = 128) -> tuple[dict[str, Any], np.ndarray]:
    """Metrics (accuracy, macro-F1, ECE, confusion) and logits of a saved teacher on ``frame``."""
    scorer = TeacherScorer(model_dir, cache_dir, batch_size=batch_size)
    logits = scorer.logits(frame["text"].astype(str).tolist())
    return classification_metrics(frame["label"].to_numpy(), logits, len(scorer.meta.get("label_names", [])) or None), logits


def measure_latency(model_dir: str | Path, texts: Sequence[str], max_length: int, warmup: int = 5,
                    threads: int | None = None) -> dict[str, Any]:
    """Batch-1 CPU latency (tokenisation + forward) over ``texts``, one sentence at a time.

    Returns the median and 90th percentile in milliseconds, the number of sentences, and the torch
    thread count used (``threads``, default: the current setting).
    """
    import torch
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    quiet_transformers()
    old_threads = torch.get_num_threads()
    threads = threads or old_threads
    torch.set_num_threads(threads)
    try:
        tokenizer = AutoTokenizer.from_pretrained(model_dir)
        model = AutoModelForSequenceClassification.from_pretrained(model_dir).eval()
        times = []
        with torch.inference_mode():
            for i, text in enumerate([*texts[:warmup], *texts]):
                start = time.perf_counter()
                model(**tokenizer(text, truncation=True, max_length=max_length, return_tensors="pt"))
                if i >= warmup:
                    times.append((time.perf_counter() - start) * 1000)
    finally:
        torch.set_num_threads(old_threads)
    return {"latency_ms_b1": float(np.median(times)), "latency_ms_b1_p90": float(np.percentile(times, 90)),
            "latency_n": len(times), "torch_threads": threads}


def summary_entry(result: TeacherResult, metrics: dict[str, Any], latency: dict[str, Any] | None = None) -> dict[str, Any]:
    """The ``models.<name>`` section of summary.json (test metrics, size, training cost)."""
    entry = {
        "accuracy": metrics["accuracy"],
        "macro_f1": metrics["macro_f1"],
        "ece": metrics["ece"],
        "params": result.params,
        "size_mb": result.size_mb,
        "train_seconds": result.train_seconds,
        "val_accuracy": result.val_accuracy,
        "epochs_run": result.epochs_run,
        "best_epoch": result.best_epoch,
        "max_length": result.max_length,
        "num_layers": result.num_layers,
        "world_size": result.world_size,
        "precision": result.meta.get("training", {}).get("precision", "fp32"),
    }
    if latency:
        entry.update({k: latency[k] for k in ("latency_ms_b1", "torch_threads")})
    return entry


def compare_teachers(results: dict[str, TeacherResult], test: pd.DataFrame, cache_dir: str | Path | None,
                     latency_texts: Sequence[str], batch_size: int = 128,
                     threads: int | None = None) -> tuple[pd.DataFrame, dict[str, dict[str, Any]]]:
    """Test metrics, size and batch-1 latency of each model: a table (by depth) and summary entries."""
    rows, entries = [], {}
    for name, res in results.items():
        scores, _ = evaluate_teacher(res.model_dir, test, cache_dir, batch_size)
        latency = measure_latency(res.model_dir, latency_texts, res.max_length, threads=threads)
        entries[name] = summary_entry(res, scores, latency)
        rows.append({
            "model": name, "layers": res.num_layers, "params": res.params, "size_mb": res.size_mb,
            "val_accuracy": res.val_accuracy, "accuracy": scores["accuracy"], "macro_f1": scores["macro_f1"],
            "ece": scores["ece"], "latency_ms_b1": latency["latency_ms_b1"],
            "train_seconds": res.train_seconds, "epochs_run": res.epochs_run,
        })
    return pd.DataFrame(rows).sort_values("layers").reset_index(drop=True), entries


