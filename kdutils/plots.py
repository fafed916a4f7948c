"""One figure style for the whole study: seaborn theme, fonts, sizes and a colour per model.

Every notebook figure calls :func:`set_style` first and colours models with
:func:`model_color` (or :func:`model_palette` for seaborn's ``palette=``), so a
model has the same colour and name in every figure of the paper. Sizes are for
a two-column paper: :data:`SINGLE_COLUMN` figures fit one column,
:data:`DOUBLE_COLUMN` figures span both.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, Literal

from kdutils.study.files import FIGURE_DPI

# matplotlib and seaborn are imported inside the functions that draw: the report and other modules
# import this one for model names and colours only, and should not pay for a plotting stack.

# Widths for a two-column paper (inches).
SINGLE_COLUMN = (3.4, 2.6)
DOUBLE_COLUMN = (7.0, 2.8)

MODEL_COLORS = {
    "teacher": "#1b4f72",
    "teacher_L": "#5dade2",
    "tfidf_logreg": "#7f8c8d",
    "student_original": "#d4ac0d",
    "student_baseline": "#e67e22",
    "student_distilled": "#c0392b",
}

# Names a reader sees (legends, tables, the paper, the try page); code keeps the run's model names.
# Kept in the order the paper lists models: the try page (kdutils.serving.page) orders its cards by it.
MODEL_LABELS = {
    "teacher": "Teacher",
    "tfidf_logreg": "TF-IDF + log. reg.",
    "student_original": "BiLSTM, original sizes",
    "student_baseline": "BiLSTM baseline",
    "student_distilled": "BiLSTM distilled",
}

# How tables, text and the try page name a runtime (kdutils.report.formatting re-exports it).
RUNTIME_LABELS = {"torch": "PyTorch (eager)", "onnx": "ONNX Runtime", "onnx-int8": "ONNX Runtime (int8)"}

_FALLBACK_COLOR = "#34495e"


def set_style() -> None:
    """Seaborn's paper theme with fonts sized for a two-column page; PDFs keep editable text."""
    import matplotlib.pyplot as plt
    import seaborn as sns

    sns.set_theme(context="paper", style="whitegrid", font_scale=1.0)
    plt.rcParams.update({
        "figure.dpi": 120,
        "savefig.dpi": FIGURE_DPI,
        "savefig.bbox": "tight",
        "font.family": "sans-serif",
        "font.sans-serif": ["DejaVu Sans", "Arial", "Helvetica"],
        "axes.titlesize": 9,
        "axes.labelsize": 8,
        "legend.fontsize": 7,
        "legend.title_fontsize": 7,
        "xtick.labelsize": 7,
        "ytick.labelsize": 7,
        "lines.linewidth": 1.4,
        "lines.markersize": 4,
        "errorbar.capsize": 2,
        # Text is drawn as written: a label name such as "$5 or $10" must not become mathtext
        # (or fail to parse as it). No figure of the study uses mathtext.
        "text.parse_math": False,
        # Type 42 (TrueType) keeps the text of PDFs selectable and editable in a paper.
        "pdf.fonttype": 42,
        "ps.fonttype": 42,
    })


def model_color(name: str) -> str:
    """Colour of a model name; depth-truncated teachers share a lighter blue."""
    if name in MODEL_COLORS:
        return MODEL_COLORS[name]
    if name.startswith("teacher_L"):
        return MODEL_COLORS["teacher_L"]
    for key, colour in MODEL_COLORS.items():
        if name.startswith(key):
            return colour
    return _FALLBACK_COLOR


def model_label(name: str) -> str:
    """A reader's name for a run's model name (``teacher_L4`` -> ``Teacher, 4 layers``)."""
    if name in MODEL_LABELS:
        return MODEL_LABELS[name]
    if name.startswith("teacher_L") and name[len("teacher_L"):].isdigit():
        return f"Teacher, {int(name[len('teacher_L'):])} layers"
    for key, label in MODEL_LABELS.items():
        if name.startswith(key + "_"):
            return f"{label} ({name[len(key) + 1:].replace('_', ' ')})"
    return name.replace("_", " ")


def model_palette(names: Iterable[str]) -> dict[str, str]:
    """``{name: colour}`` for seaborn's ``palette=`` argument."""
    return {n: model_color(n) for n in names}


def new_figure(
    width: Literal["single", "double"] = "single",
    nrows: int = 1,
    ncols: int = 1,
    height: float | None = None,
    **subplot_kw: Any,
) -> tuple[Any, Any]:
    """``plt.subplots`` at a paper width; ``height`` in inches overrides the default."""
    import matplotlib.pyplot as plt

    if width not in ("single", "double"):
        raise ValueError(f"width must be 'single' or 'double', got {width!r}")
    w, h = SINGLE_COLUMN if width == "single" else DOUBLE_COLUMN
    subplot_kw.setdefault("layout", "constrained")
    return plt.subplots(nrows, ncols, figsize=(w, height if height is not None else h), **subplot_kw)


def percent_axis(ax: Any, axis: Literal["x", "y"] = "y", decimals: int = 0) -> None:
    """Show fractions in [0, 1] on an axis as percentages."""
    from matplotlib.ticker import PercentFormatter

    target = ax.yaxis if axis == "y" else ax.xaxis
    target.set_major_formatter(PercentFormatter(xmax=1.0, decimals=decimals))
