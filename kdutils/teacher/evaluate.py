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

from kdutils import metrics, plots
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


def plot_training_curves(results: dict[str, TeacherResult]) -> Any:
    """Train loss and validation accuracy per epoch, one line per model."""
    import matplotlib.pyplot as plt

    plots.set_style()
    fig, (ax_loss, ax_acc) = plt.subplots(1, 2, figsize=plots.DOUBLE_COLUMN)
    for label, res in results.items():
        hist = pd.DataFrame(res.history)
        colour = plots.model_color(label)
        style = "-" if label == "teacher" else "--"
        ax_loss.plot(hist["epoch"], hist["train_loss"], style, marker="o", color=colour, label=label)
        ax_acc.plot(hist["epoch"], hist["val_accuracy"], style, marker="o", color=colour, label=label)
    ax_loss.set(xlabel="epoch", ylabel="training loss", title="Training loss")
    ax_acc.set(xlabel="epoch", ylabel="validation accuracy", title="Validation accuracy")
    epochs = sorted({int(h["epoch"]) for res in results.values() for h in res.history})
    for ax in (ax_loss, ax_acc):
        ax.set_xticks(epochs)
    ax_acc.legend(loc="lower right")
    fig.tight_layout()
    return fig


def plot_reliability(labels: np.ndarray, logits: np.ndarray, name: str = "teacher", n_bins: int = 10) -> Any:
    """Reliability diagram: accuracy against confidence per bin, with the ECE in the title."""
    import matplotlib.pyplot as plt

    plots.set_style()
    probs = metrics.softmax(logits)
    curve = metrics.reliability_curve(probs, labels, n_bins=n_bins)
    ece = metrics.expected_calibration_error(probs, labels)
    fig, ax = plt.subplots(figsize=plots.SINGLE_COLUMN)
    lo = 1.0 / probs.shape[1]
    ax.plot([lo, 1], [lo, 1], ":", color="grey", label="perfect calibration")
    ax.plot(curve["confidence"], curve["accuracy"], marker="o", color=plots.model_color(name), label=name)
    for c, a, n in zip(curve["confidence"], curve["accuracy"], curve["count"], strict=True):
        ax.annotate(str(n), (c, a), textcoords="offset points", xytext=(0, 4), ha="center", fontsize=5)
    ax.set(xlabel="confidence (max softmax)", ylabel="accuracy", xlim=(lo, 1.0), ylim=(0, 1.02),
           title=f"Reliability of {name} on test (ECE {ece:.3f})")
    ax.legend(loc="upper left")
    fig.tight_layout()
    return fig


def plot_depth_sweep(table: pd.DataFrame, threads: int | None = None) -> Any:
    """Test accuracy and batch-1 latency against the number of layers kept.

    ``threads`` (torch threads used by :func:`measure_latency`) is named in the latency panel's
    title: this timing is the teacher notebook's own, not the deployment benchmark's.
    """
    import matplotlib.pyplot as plt

    plots.set_style()
    fig, (ax_acc, ax_lat) = plt.subplots(1, 2, figsize=plots.DOUBLE_COLUMN)
    colours = [plots.model_color(m) for m in table["model"]]
    ax_acc.plot(table["layers"], table["accuracy"], color="grey", lw=0.8, zorder=1)
    ax_acc.scatter(table["layers"], table["accuracy"], c=colours, zorder=2)
    for _, row in table.iterrows():
        ax_acc.annotate(f"{row['params'] / 1e6:.1f}M", (row["layers"], row["accuracy"]),
                        textcoords="offset points", xytext=(0, 5), ha="center", fontsize=6)
    ax_acc.set(xlabel="layers kept", ylabel="test accuracy", title="Accuracy by depth (parameters annotated)",
               xticks=table["layers"].tolist())
    ax_lat.bar(table["layers"].astype(str), table["latency_ms_b1"], color=colours)
    timed = f" ({threads} thread{'s' if threads != 1 else ''}, after training)" if threads else ""
    ax_lat.set(xlabel="layers kept", ylabel="median latency (ms)", title=f"Batch-1 CPU latency{timed}")
    fig.tight_layout()
    return fig
