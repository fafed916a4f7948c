"""Figures of notebook 02: the teacher's training curves, its reliability diagram and the depth sweep."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from kdutils import metrics, plots
from kdutils.teacher.finetune import TeacherResult


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
