"""Notebook 04 described and drawn: its targets in words (the gain's interval, the paired test's
verdict), its figures (training curves, accuracy comparison, gain per seed, ablation, calibration)
from what :mod:`kdutils.student.distill` computed."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

from kdutils import plots
from kdutils.metrics import (
    expected_calibration_error,
    reliability_curve,
    softmax,
)

# Where a transfer-set row comes from, in the order the set stores them and data_label joins them.
from kdutils.report.formatting import p_clause, points_ci
from kdutils.report.results import significance_caveat
from kdutils.stats import (
    MIN_SEEDS_FOR_INTERVAL,
    gap_closed,
)
from kdutils.study.specs import LOSSES
from kdutils.study.summary import DistillationSection, DistilledStudentEntry, Models

# --------------------------------------------------------------------------- targets


def gain_interval_phrase(ci: Sequence[float] | None, n_seeds: int) -> str:
    """The gain's 95% interval over seeds as notebook 04 reports it, ``ci`` in points:
    ``"95% interval [+1.20, +3.40] points over 5 seeds"``, or why there is none (``ci`` None)."""
    if ci:
        return f"95% interval {points_ci(ci, 2)} points over {n_seeds} seeds"
    return f"no interval over {n_seeds} seeds (none below {MIN_SEEDS_FOR_INTERVAL})"


def significance_phrase(p: float, ci: Sequence[float] | None, n_seeds: int) -> str:
    """The paired test's verdict in the words of the paper and the run index: ``"p = 0.012:
    significant at the 0.05 level"`` and, when the interval over seeds (``ci``, points) is
    missing or includes zero, the same caveat (:func:`kdutils.report.significance_caveat`)."""
    significant = p < 0.05
    verdict = p_clause(p) + (": significant" if significant else ": not significant") + " at the 0.05 level"
    return verdict + significance_caveat(significant, ci, n_seeds)


# The study's distillation targets (set for the default profile: rotten_tomatoes, 5 seeds).
TARGET_SIZE_RATIO = 20


def evaluate_targets(entry: DistilledStudentEntry, distillation: DistillationSection,
                     models: Models, gain_target: float, gap_target: float | None = None,
                     teacher_target: float | None = None) -> list[dict[str, Any]]:
    """Notebook 04's targets, each ``{"target", "met", "measured" (str)}`` (rows of
    ``targets.distillation`` in :mod:`kdutils.study.summary`), in this order:

    0. with ``teacher_target`` (``distill.target_teacher_accuracy``, a fraction), the teacher's test
       accuracy at least that;
    1. a gain of at least ``gain_target`` points (distilled over baseline, mean over seeds;
       the profile's ``distill.target_gain_points``);
    2. its 95% interval over seeds above zero;
    3. the paired bootstrap's p below 0.05;
    4. the distilled student more accurate than TF-IDF;
    5. the student at least 20x smaller on disk than the teacher;
    6. with ``gap_target`` (``distill.target_gap_closed``, a fraction), at least that share of the
       teacher-baseline gap closed (:func:`kdutils.stats.gap_closed`).

    ``met`` is True or False, or None when the run has nothing to judge the target by (no teacher
    entry, no interval below 3 seeds, no TF-IDF result, no teacher size, no teacher above the
    baseline); ``measured`` then says what is missing. Thresholds are printed as given (``:g``).
    ``entry`` and ``distillation`` are :func:`summary_sections`'s; ``models`` is the summary's
    ``models`` section as notebook 04 read it (``student_baseline`` required, as notebook 04
    requires it; ``teacher`` gives the sizes' MB). Accuracies are printed in percent, the gain in
    points. Raises AttributeError when ``models`` has no ``student_baseline``.
    """
    gain, ci, p = distillation.gain_points_mean, distillation.gain_ci95, distillation.p_value
    n_seeds = len(distillation.seeds)
    d_acc, b_acc = entry.accuracy_mean, models.student_baseline.accuracy_mean
    tfidf = models.tfidf_logreg.accuracy_mean if models.tfidf_logreg is not None else None
    size_ratio = distillation.size_ratio_teacher_over_student
    params_ratio = distillation.params_ratio_teacher_over_student
    t_acc = models.teacher.accuracy if models.teacher is not None else None

    checks = []
    if teacher_target is not None:
        checks.append((f"teacher test accuracy at least {100 * teacher_target:g}%",
                       None if t_acc is None else t_acc >= teacher_target,
                       "no teacher entry" if t_acc is None else f"{100 * t_acc:.2f}%"))
    checks += [
        (f"gain of at least {gain_target:g} points", gain >= gain_target,
         f"{gain:+.2f} points ({100 * b_acc:.2f}% -> {100 * d_acc:.2f}%)"),
        ("95% interval of the gain above zero", ci[0] > 0 if ci else None,
         gain_interval_phrase(ci, n_seeds)),
        ("paired bootstrap p < 0.05", p < 0.05,
         f"{significance_phrase(p, ci, n_seeds)} ({distillation.p_value_test})"),
        ("distilled student above TF-IDF", None if tfidf is None else d_acc > tfidf,
         "no TF-IDF result in summary.json" if tfidf is None else f"{100 * d_acc:.2f}% vs {100 * tfidf:.2f}%"),
        (f"student at least {TARGET_SIZE_RATIO}x smaller than the teacher",
         None if size_ratio is None else size_ratio >= TARGET_SIZE_RATIO,
         "teacher size unknown" if size_ratio is None else
         f"{size_ratio:.1f}x on disk ({models.teacher.size_mb:.1f} MB vs {entry.size_mb:.2f} MB), "
         f"{params_ratio:.1f}x in parameters"),
    ]
    if gap_target is not None:
        closed = gap_closed(t_acc, b_acc, d_acc) if t_acc is not None else None
        checks.append((
            f"at least {100 * gap_target:g}% of the teacher-baseline gap closed",
            None if closed is None else closed >= gap_target,
            "no teacher accuracy above the baseline's" if closed is None else
            f"{100 * closed:.0f}% of {100 * (t_acc - b_acc):.2f} points "
            f"(teacher {100 * t_acc:.2f}%, baseline {100 * b_acc:.2f}%, distilled {100 * d_acc:.2f}%)"))
    return [{"target": target, "met": met, "measured": measured} for target, met, measured in checks]


# --------------------------------------------------------------------------- figures
# matplotlib and seaborn are imported inside each figure function: the worker processes of
# run_setting import this module to train and never draw.


def _curves_frame(histories: dict[int, list[dict[str, Any]]], model: str) -> pd.DataFrame:
    rows = [{"model": model, "seed": seed, **h} for seed, hist in histories.items() for h in hist]
    return pd.DataFrame(rows)


def plot_training_curves(distilled: dict[int, list[dict[str, Any]]],
                         baseline: dict[int, list[dict[str, Any]]] | None = None) -> Any:
    """Validation accuracy and validation cross-entropy per epoch, one thin line per seed.

    The baseline's curves (label training) stand beside the distilled students'. The
    training losses are not comparable (cross-entropy vs logit MSE), so the panels show
    validation metrics on gold labels, which are.
    """
    import matplotlib.pyplot as plt
    import seaborn as sns
    from matplotlib.ticker import MaxNLocator

    plots.set_style()
    frames = [_curves_frame(distilled, "student_distilled")]
    if baseline:
        frames.insert(0, _curves_frame(baseline, "student_baseline"))
    df = pd.concat(frames, ignore_index=True)
    df["label"] = df["model"].map(plots.model_label)
    palette = {plots.model_label(m): plots.model_color(m) for m in df["model"].unique()}
    fig, axes = plots.new_figure("double", 1, 2)
    for ax, (col, ylabel) in zip(axes, [("val_accuracy", "validation accuracy"),
                                        ("val_loss", "validation cross-entropy")], strict=True):
        sns.lineplot(df, x="epoch", y=col, hue="label", units="seed", estimator=None, palette=palette,
                     alpha=0.45, linewidth=0.8, ax=ax, legend=False)
        sns.lineplot(df, x="epoch", y=col, hue="label", errorbar=None, palette=palette, linewidth=1.8,
                     marker="o", ax=ax)
        ax.set_ylabel(ylabel)
        ax.set_xlabel("epoch")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.legend(title="", frameon=True)
    plots.percent_axis(axes[0])
    axes[1].get_legend().remove()
    plt.close(fig)
    return fig


_COMPARISON_ORDER = ("teacher", "teacher_L", "tfidf_logreg", "student_original", "student_baseline",
                     "student_distilled")


def comparison_frame(models: dict[str, dict[str, Any]]) -> pd.DataFrame:
    """Accuracy (mean and 95% interval) of every model in ``summary["models"]``, in reading order.

    Single runs (the teachers) and students with too few seeds have no interval over seeds:
    ``accuracy_ci95`` is ``None`` and ``ci_low == ci_high == accuracy``, so their bars carry none.
    """
    def rank(name: str) -> tuple[int, str]:
        for i, prefix in enumerate(_COMPARISON_ORDER):
            if name == prefix or (prefix == "teacher_L" and name.startswith(prefix)):
                depth = name[len("teacher_L"):]
                return i, depth.zfill(4) if depth.isdigit() else name
        return len(_COMPARISON_ORDER), name

    rows = []
    for name in sorted(models, key=rank):
        m = models[name]
        acc = m.get("accuracy_mean", m.get("accuracy"))
        if acc is None:
            continue
        ci = m.get("accuracy_ci95")
        lo, hi = ci or (acc, acc)
        rows.append({"model": name, "label": plots.model_label(name), "accuracy": float(acc),
                     "accuracy_ci95": list(ci) if ci else None,
                     "ci_low": float(lo), "ci_high": float(hi), "seeds": len(m.get("per_seed", [])) or 1,
                     "params": m.get("params"), "size_mb": m.get("size_mb")})
    return pd.DataFrame(rows)


def plot_accuracy_comparison(models: dict[str, dict[str, Any]]) -> Any:
    """Horizontal bars of test accuracy for every model, with 95% CI error bars over seeds."""
    import matplotlib.pyplot as plt

    plots.set_style()
    df = comparison_frame(models)
    fig, ax = plots.new_figure("single", height=0.32 * len(df) + 0.8)
    y = np.arange(len(df))[::-1]
    # Single runs have no interval: no error bar rather than a zero-width one.
    single = (df["ci_high"] - df["ci_low"]) <= 0
    err = np.vstack([df["accuracy"] - df["ci_low"], df["ci_high"] - df["accuracy"]])
    err[:, single.to_numpy()] = np.nan
    ax.barh(y, df["accuracy"], color=[plots.model_color(m) for m in df["model"]], xerr=err,
            error_kw={"elinewidth": 0.9, "ecolor": "black"})
    ax.set_yticks(y, [f"{lab} (n={n})" if n > 1 else lab for lab, n in zip(df["label"], df["seeds"], strict=True)])
    low = max(0.0, float(df["ci_low"].min()) - 0.05)
    high = min(1.0, float(df["ci_high"].max()) + 0.06)
    ax.set_xlim(low, high)
    for yi, acc, top in zip(y, df["accuracy"], df["ci_high"], strict=True):
        # The value sits right of the error bar, or inside the bar when the bar reaches the edge.
        x, ha, colour = max(acc, top) + 0.006, "left", "black"
        if x > high - 0.04:
            x, ha, colour = acc - 0.006, "right", "white"
        ax.text(x, yi, f"{100 * acc:.1f}%", va="center", ha=ha, fontsize=6, color=colour)
    ax.set_xlabel("test accuracy (students: mean over n seeds" + (", 95% CI)" if (~single).any() else ")"))
    plots.percent_axis(ax, "x")
    plt.close(fig)
    return fig


def plot_gain_per_seed(seeds: Sequence[int], baseline: Sequence[float], distilled: Sequence[float]) -> Any:
    """Per-seed test accuracy of baseline and distilled student; a line joins each seed's pair."""
    import matplotlib.pyplot as plt

    plots.set_style()
    fig, ax = plots.new_figure("single")
    for s, b, d in zip(seeds, baseline, distilled, strict=True):
        ax.plot([0, 1], [b, d], color="0.6", linewidth=0.8, zorder=1)
        ax.annotate(f"seed {s}", (1, d), xytext=(4, 0), textcoords="offset points", va="center", fontsize=6)
    ax.scatter(np.zeros(len(baseline)), baseline, color=plots.model_color("student_baseline"), zorder=2)
    ax.scatter(np.ones(len(distilled)), distilled, color=plots.model_color("student_distilled"), zorder=2)
    ax.set_xticks([0, 1], [plots.model_label("student_baseline"), plots.model_label("student_distilled")])
    ax.set_xlim(-0.4, 1.5)
    ax.set_ylabel("test accuracy")
    plots.percent_axis(ax, decimals=0)
    plt.close(fig)
    return fig


def plot_ablation(rows: Sequence[dict[str, Any]], chosen: str | None = None) -> Any:
    """Test accuracy (mean, 95% CI) of each ablation row; hollow markers show validation accuracy.

    ``chosen`` (a row's ``setting``) is starred: the recipe selected on validation.
    """
    import matplotlib.pyplot as plt
    from matplotlib.lines import Line2D

    plots.set_style()
    df = pd.DataFrame(rows)
    fig, ax = plots.new_figure("double", height=0.28 * len(df) + 0.9)
    y = np.arange(len(df))[::-1]
    # Rows with too few seeds for an interval (kdutils.stats.mean_ci gives None) get no error bar.
    has_ci = np.array([isinstance(c, list | tuple) for c in df["accuracy_ci95"]])
    lo = np.array([c[0] if ok else np.nan for c, ok in zip(df["accuracy_ci95"], has_ci, strict=True)])
    hi = np.array([c[1] if ok else np.nan for c, ok in zip(df["accuracy_ci95"], has_ci, strict=True)])
    colours = [plots.model_color("student_distilled" if LOSSES[r].distills else "student_baseline") for r in df["loss"]]
    if has_ci.any():
        mean = df["accuracy_mean"].to_numpy()[has_ci]
        ax.errorbar(mean, y[has_ci], xerr=[mean - lo[has_ci], hi[has_ci] - mean], fmt="none",
                    ecolor="black", elinewidth=0.8, capsize=2)
    ax.scatter(df["accuracy_mean"], y, c=colours, zorder=3)
    if "val_accuracy_mean" in df and df["val_accuracy_mean"].notna().any():
        ax.scatter(df["val_accuracy_mean"], y, facecolors="none", edgecolors=colours, zorder=3)
    labels = [f"{s} (n={n})" + (" *" if s == chosen else "")
              for s, n in zip(df["setting"], df["seeds"], strict=True)]
    ax.set_yticks(y, labels)
    ax.set_xlabel("accuracy" + ("   (* chosen on validation)" if chosen else ""))
    # Without error bars the range can be a few points wide: whole percents would repeat labels.
    low, high = ax.get_xlim()
    plots.percent_axis(ax, "x", decimals=0 if high - low > 0.08 else 1)
    test_label = "test, mean and 95% CI over seeds" if has_ci.any() else "test, mean over seeds"
    handles = [Line2D([], [], marker="o", linestyle="", color="0.3", label=test_label),
               Line2D([], [], marker="o", linestyle="", markerfacecolor="none", color="0.3",
                      label="validation (used for selection)")]
    # Above the axes, not inside: any corner of the plot can hold a setting's point.
    ax.legend(handles=handles, loc="lower left", bbox_to_anchor=(0, 1.02), ncol=2, frameon=False,
              borderaxespad=0)
    plt.close(fig)
    return fig


def plot_calibration(labels: np.ndarray, logits: dict[str, np.ndarray], n_bins: int = 10,
                     note: str = "") -> Any:
    """Reliability diagrams (accuracy against confidence per bin) of several models on the test set.

    ``note`` is appended to each legend entry (e.g. which seed a student's curve comes from).
    """
    import matplotlib.pyplot as plt

    plots.set_style()
    fig, ax = plots.new_figure("single")
    ax.plot([0, 1], [0, 1], linestyle="--", color="0.5", linewidth=0.8)
    for name, lg in logits.items():
        probs = softmax(lg)
        curve = reliability_curve(probs, labels, n_bins)
        ece = expected_calibration_error(probs, labels)
        ax.plot(curve["confidence"], curve["accuracy"], marker="o", color=plots.model_color(name),
                label=f"{plots.model_label(name)} (ECE {100 * ece:.1f}%)" + (note if name.startswith("student") else ""))
    ax.set_xlabel("confidence")
    ax.set_ylabel("accuracy")
    ax.set_ylim(0, 1.02)
    lo = 1.0 / max(2, next(iter(logits.values())).shape[1]) if logits else 0.5
    ax.set_xlim(lo - 0.02, 1.0)
    ax.legend(frameon=True, loc="upper left")
    plt.close(fig)
    return fig
