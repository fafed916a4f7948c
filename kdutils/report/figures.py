"""The figures the paper shows, the notebook that saves each, and their numbering in a paper."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from kdutils import plots
from kdutils.report.formatting import millions, times
from kdutils.report.reading import PAPER_FIGURES_DIR
from kdutils.report.results import TeacherComparison
from kdutils.study.files import save_figure_files


@dataclass(frozen=True)
class FigureSpec:
    """A figure the paper shows: its file name (no suffix), who makes it, where it goes, its caption."""

    name: str
    notebook: str
    section: str  # where the paper places it: one of PAPER_SECTIONS
    caption: str


# Sections of the paper that hold figures, in the order the paper shows them.
PAPER_SECTIONS = ("data", "teachers", "students", "ablation", "deployment", "batch")

# In section order: a figure's number is its place among the figures the run produced.
PAPER_FIGURES: tuple[FigureSpec, ...] = (
    FigureSpec("data_label_balance", "01_data", "data", "Share of each label in each split."),
    FigureSpec("data_length_words", "01_data", "data",
               "Sentence length in words per split (x axis clipped at a high quantile)."),
    FigureSpec("teacher_results", "02_teacher", "teachers",
               "Teacher fine-tuning: training loss and validation accuracy per epoch."),
    FigureSpec("teacher_reliability", "02_teacher", "teachers",
               "Reliability diagram of the fine-tuned teacher on the test split: accuracy against confidence "
               "per bin."),
    FigureSpec("teacher_depth", "02_teacher", "teachers",
               "Test accuracy and batch-1 CPU latency against the number of teacher layers kept; latency as "
               "timed by the teacher notebook right after training, with its own thread count (the tables and "
               "text take every latency from the deployment benchmark)."),
    FigureSpec("student_results", "03_student", "students",
               "Label-trained students: validation accuracy (top) and training loss (bottom) per epoch, one "
               "line per seed with its best epoch marked, one column per model."),
    FigureSpec("distilled_training", "04_distillation", "students",
               "Distilled students beside the label-trained baseline: validation accuracy and "
               "cross-entropy on gold labels per epoch, one thin line per seed."),
    FigureSpec("accuracy_comparison", "04_distillation", "students",
               "Test accuracy of every model, with 95% intervals over seeds for the students (from 3 seeds on)."),
    FigureSpec("gain_per_seed", "04_distillation", "students",
               "Per-seed test accuracy of the baseline and the distilled student; a line joins each seed's pair."),
    FigureSpec("calibration", "04_distillation", "students",
               "Reliability diagrams on the test split: accuracy against confidence per bin."),
    FigureSpec("ablation", "04_distillation", "ablation",
               "Ablation: test accuracy of each setting, mean over seeds with a 95% interval from 3 seeds on; "
               "hollow markers show validation accuracy, on which the setting is chosen."),
    FigureSpec("inference_time", "05_deployment", "deployment",
               "In-process inference time: batch-1 p50 latency per model, one bar per runtime (log scale)."),
    FigureSpec("accuracy_vs_latency", "05_deployment", "deployment",
               "Test accuracy against batch-1 latency (log scale) for every model and runtime; the dashed "
               "line joins the Pareto front."),
    FigureSpec("serving_peers", "05_deployment", "deployment",
               "The same ONNX student served by a bare ASGI app (the floor), by the FastAPI app a user would "
               "write (the naive peer) and by our service, measured interleaved: p50 latency (line) to p95 "
               "(band) and throughput against requests in flight."),
    FigureSpec("serving_load", "05_deployment", "deployment",
               "Throughput and p95 latency against concurrency, per model, for one replica and for replicas "
               "behind nginx."),
    # Its own section: the paper shows it only for runs with notebook 06 (older runs say nothing of it).
    FigureSpec("batch_scoring", "06_batch_scoring", "batch",
               "Batch scoring file to file: sentences per second per core of each model, engine and worker "
               "count, and of the transformers pipeline on the same teacher (log scale); the dashed line is the "
               "distilled student's FLOP floor at this machine's single-core fp32 matmul rate."),
)

FIGURE_SECTIONS: dict[str, tuple[str, ...]] = {
    section: tuple(f.name for f in PAPER_FIGURES if f.section == section) for section in PAPER_SECTIONS
}

# Drawn by the report itself, from the published runs' summaries, when the paper shows two
# teachers (kdutils.report.rendering.render_paper); numbered after the deployment figures.
COMPARISON_FIGURE = FigureSpec(
    "teacher_comparison", "", "comparison",
    "The teachers side by side. Left: test accuracy of each teacher, of the label-trained (baseline) and "
    "of the distilled BiLSTM (students: mean over seeds, with a 95% interval from 3 seeds on). Middle: "
    "share of the teacher-baseline gap that distillation closes. Right: how many times the full teacher "
    "is slower (batch-1 p50 latency in eager PyTorch) and larger (weights on disk) than the distilled "
    "student (log scale).")


def figure_caption(name: str) -> str:
    """The paper's caption of figure ``name`` (:data:`PAPER_FIGURES`), or its name in words."""
    spec = next((f for f in PAPER_FIGURES if f.name == name), None)
    return spec.caption if spec else name.replace("_", " ").capitalize() + "."


@dataclass
class FigureRef:
    """A figure placed in one paper: its number there and its path relative to the paper."""

    name: str
    number: int
    caption: str
    notebook: str
    path: str  # relative to the paper


@dataclass
class PaperFigures:
    """The figures of one paper: those found (numbered), those expected but missing, and others."""

    available: dict[str, FigureRef] = field(default_factory=dict)
    missing: list[FigureSpec] = field(default_factory=list)
    extra: list[FigureRef] = field(default_factory=list)

    def names(self) -> list[str]:
        return [*self.available, *(f.name for f in self.extra)]


def _link(name: str) -> str:
    """Where the paper's text finds figure ``name``: relative to ``paper.md``."""
    return f"{PAPER_FIGURES_DIR}/{name}.png"


def collect_figures(figures_dir: Path | None, drawn: Sequence[FigureSpec] = ()) -> PaperFigures:
    """Number the paper's figures that exist in ``figures_dir``, then ``drawn`` (figures the report
    draws into the paper itself); list the missing ones; append any others the run made."""
    present = sorted(p.stem for p in figures_dir.glob("*.png")) if figures_dir and figures_dir.is_dir() else []
    out = PaperFigures()
    n = 0
    for spec in PAPER_FIGURES:
        if spec.name in present:
            n += 1
            out.available[spec.name] = FigureRef(spec.name, n, spec.caption, spec.notebook, _link(spec.name))
        else:
            out.missing.append(spec)
    for spec in drawn:
        n += 1
        out.available[spec.name] = FigureRef(spec.name, n, spec.caption, spec.notebook, _link(spec.name))
    known = {s.name for s in (*PAPER_FIGURES, *drawn)}
    for name in present:
        if name not in known:
            n += 1
            out.extra.append(FigureRef(name, n, name.replace("_", " ").capitalize() + ".", "", _link(name)))
    return out


def draw_teacher_comparison(rows: Sequence[TeacherComparison], directory: Path) -> list[Path]:
    """Draw :data:`COMPARISON_FIGURE` from ``rows`` (one per teacher, as the comparison table) and
    write ``teacher_comparison.png`` and ``.pdf`` into ``directory`` (atomically); the paths.

    Three panels: accuracies (fractions shown as %, students with their 95% interval when there
    is one), the share of the gap closed, and the latency and size ratios (log scale from 1x).
    Drawn on a bare :class:`matplotlib.figure.Figure` in the study's style, so nothing changes
    pyplot's state or the caller's rcParams.
    """
    import matplotlib
    from matplotlib.figure import Figure
    from matplotlib.ticker import FuncFormatter, MultipleLocator, NullFormatter

    names = [f"{c.teacher_label}\n({millions(c.teacher_params)})" for c in rows]
    x = list(range(len(rows)))
    with matplotlib.rc_context():
        plots.set_style()
        fig = Figure(figsize=(plots.DOUBLE_COLUMN[0], 2.8), layout="constrained")
        acc, gap, cost = fig.subplots(1, 3, gridspec_kw={"width_ratios": [1.5, 1, 1.2]})

        width = 0.26
        bars = (("teacher", "Teacher", [(c.teacher_accuracy, None) for c in rows]),
                ("student_baseline", "BiLSTM baseline", [(c.baseline_accuracy, c.baseline_ci95) for c in rows]),
                ("student_distilled", "BiLSTM distilled", [(c.distilled_accuracy, c.distilled_ci95) for c in rows]))
        for i, (model, label, values) in enumerate(bars):
            errors = [[v - ci[0] if ci else 0 for v, ci in values], [ci[1] - v if ci else 0 for v, ci in values]]
            acc.bar([p + (i - 1) * width for p in x], [v for v, _ in values], width, label=label,
                    color=plots.model_color(model), yerr=errors if any(ci for _, ci in values) else None)
        low = min(min(c.baseline_accuracy, c.distilled_accuracy) for c in rows)
        acc.set_ylim(max(0.0, low - 0.05), min(1.0, max(c.teacher_accuracy for c in rows) + 0.02))
        acc.yaxis.set_major_locator(MultipleLocator(0.05))
        plots.percent_axis(acc)
        acc.set_title("Test accuracy")

        shares = [c.gap_closed if c.gap_closed is not None else 0.0 for c in rows]
        gap.bar(x, shares, 0.5, color=plots.model_color("student_distilled"))
        gap.axhline(0, color="black", linewidth=0.6)
        for p, c in zip(x, rows, strict=True):
            gap.annotate("n/a" if c.gap_closed is None else f"{100 * c.gap_closed:.0f}%", (p, max(shares[p], 0)),
                         ha="center", va="bottom", fontsize=7, xytext=(0, 2), textcoords="offset points")
        gap.set_ylim(min(0.0, *shares) * 1.2, max(0.05, *shares) * 1.25)
        plots.percent_axis(gap)
        gap.set_title("Teacher-baseline gap closed")

        # Greys: these bars are ratios of two models, not a model.
        ratios = {"latency_ratio": ("Teacher / student: batch-1 latency", "#4d4d4d"),
                  "size_ratio": ("Teacher / student: size on disk", "#a6a6a6")}
        largest = 1.0
        for i, (attr, (label, colour)) in enumerate(ratios.items()):
            values = [getattr(c, attr) for c in rows]
            positions = [p + (i - 0.5) * 0.35 for p in x]
            cost.bar(positions, [v - 1 if v is not None else float("nan") for v in values], 0.35, bottom=1,
                     label=label, color=colour)
            for p, v in zip(positions, values, strict=True):
                if v is not None:
                    largest = max(largest, v)
                    cost.annotate(times(v), (p, v), ha="center", va="bottom", fontsize=7, xytext=(0, 2),
                                  textcoords="offset points")
        cost.set_yscale("log")
        cost.set_ylim(1, largest * 2)
        cost.yaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}x"))
        cost.yaxis.set_minor_formatter(NullFormatter())
        cost.set_title("Teacher / distilled student")

        for ax in (acc, gap, cost):
            ax.set_xticks(x, names)
            ax.tick_params(axis="x", labelsize=6)
        handles = [h for ax in (acc, cost) for h in ax.get_legend_handles_labels()[0]]
        labels = [lab for ax in (acc, cost) for lab in ax.get_legend_handles_labels()[1]]
        fig.legend(handles, labels, loc="outside lower center", ncol=len(labels), frameon=False)
        # Deterministic: publishing draws it and the check draws it again, and the bytes must agree.
        paths = save_figure_files(fig, directory, COMPARISON_FIGURE.name, deterministic=True)
    return paths
