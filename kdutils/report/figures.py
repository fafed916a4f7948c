"""The figures the paper shows, the notebook that saves each, and their numbering in a paper."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path


@dataclass(frozen=True)
class FigureSpec:
    """A figure the paper shows: its file name (no suffix), who makes it, where it goes, its caption."""

    name: str
    notebook: str
    section: str  # where the paper places it: one of PAPER_SECTIONS
    caption: str


# Sections of the paper that hold figures, in the order the paper shows them.
PAPER_SECTIONS = ("data", "teachers", "students", "ablation", "deployment")

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
)

FIGURE_SECTIONS: dict[str, tuple[str, ...]] = {
    section: tuple(f.name for f in PAPER_FIGURES if f.section == section) for section in PAPER_SECTIONS
}


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


def collect_figures(figures_dir: Path | None) -> PaperFigures:
    """Number the paper's figures that exist; list the missing ones; append any others the run made."""
    present = sorted(p.stem for p in figures_dir.glob("*.png")) if figures_dir and figures_dir.is_dir() else []
    out = PaperFigures()
    n = 0
    for spec in PAPER_FIGURES:
        if spec.name in present:
            n += 1
            out.available[spec.name] = FigureRef(spec.name, n, spec.caption, spec.notebook, f"figures/{spec.name}.png")
        else:
            out.missing.append(spec)
    known = {s.name for s in PAPER_FIGURES}
    for name in present:
        if name not in known:
            n += 1
            out.extra.append(FigureRef(name, n, name.replace("_", " ").capitalize() + ".", "", f"figures/{name}.png"))
    return out
