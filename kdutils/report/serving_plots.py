"""Figures of notebook 05: in-process latency and throughput, the accuracy-latency Pareto front,
the load sweeps and the floor/peer/ours comparison, drawn from what :mod:`kdutils.serving` measured.
"""

from __future__ import annotations

from typing import Any

from kdutils import plots
from kdutils.inference.predictors import (
    RUNTIMES,
)
from kdutils.serving.bench import peers_frame
from kdutils.serving.loadtest import serving_frame
from kdutils.serving.micro import inference_frame

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
