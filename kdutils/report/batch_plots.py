"""Batch scoring file to file (notebook 06): its table as a frame and its figure."""

from __future__ import annotations

from typing import Any

import pandas as pd

from kdutils import plots

# How the table and figure name each configuration of kdutils.serving.batch_scoring.
ENGINE_LABELS = {"local": "local", "ray": "Ray", "transformers-pipeline": "transformers pipeline"}


def run_label(run: dict[str, Any]) -> str:
    """A configuration in words: ``ONNX student, local x2`` or ``teacher, transformers pipeline (batch 8)``."""
    model = run["model"]
    base, _, runtime = model.partition("@")
    what = plots.model_label(base) + {"onnx": " (ONNX)", "onnx-int8": " (ONNX int8)"}.get(runtime, "")
    if run["engine"] == "transformers-pipeline":
        return f"{what}, transformers pipeline (batch {run['batch_size']})"
    return f"{what}, {ENGINE_LABELS.get(run['engine'], run['engine'])} x{run['workers']}"


def batch_frame(section: dict[str, Any]) -> pd.DataFrame:
    """One row per configuration of a ``batch_scoring`` section (as written to ``summary.json``):
    sentences, cores, whole-job and steady sentences/s, per core, start-up and GFLOP/s per core."""
    rows = []
    for r in section["runs"]:
        rows.append({
            "configuration": run_label(r), "sentences": r["sentences"], "cores": r["cores"],
            "sentences/s": r["sentences_per_s"], "steady sentences/s": r.get("steady_sentences_per_s"),
            "per core": r["per_core_per_s"], "start-up (s)": r.get("startup_s"),
            "ray.init (s)": r.get("ray_init_s"), "GFLOP/s per core": r.get("gflops_per_core"),
        })
    return pd.DataFrame(rows)


def plot_batch_scoring(section: dict[str, Any]) -> Any:
    """Sentences per second per core of every configuration, file to file, on a log axis, with the
    student's FLOP floor (single-core matmul rate over its FLOPs per sentence) as a dashed line."""
    import matplotlib.pyplot as plt

    plots.set_style()
    runs = section["runs"]
    labels = [run_label(r) for r in runs]
    values = [r["per_core_per_s"] for r in runs]
    colours = [plots.model_color(r["model"].partition("@")[0]) for r in runs]
    fig, ax = plt.subplots(figsize=(plots.DOUBLE_COLUMN[0], 0.32 * len(runs) + 1.0), layout="constrained")
    y = list(range(len(runs)))[::-1]
    ax.barh(y, values, color=colours)
    for yy, v in zip(y, values, strict=True):
        ax.annotate(f"{v:,.0f}" if v >= 10 else f"{v:.1f}", (v, yy), xytext=(3, 0), textcoords="offset points",
                    va="center", fontsize=7)
    ax.axvline(section["floor_per_core_per_s"], color="black", linestyle="--", linewidth=0.8,
               label=f"student FLOP floor ({section['floor_per_core_per_s']:,.0f}/s per core)")
    ax.set_xscale("log")
    ax.set_xlim(min(values) / 2, max(max(values), section["floor_per_core_per_s"]) * 3)
    ax.set_yticks(y, labels)
    ax.set_xlabel("sentences per second per core, file to file (log scale)")
    ax.legend(loc="lower right", frameon=False, fontsize=7)
    return fig
