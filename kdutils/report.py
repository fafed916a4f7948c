"""Tables, the paper and the HTML index of a run, rendered from its ``summary.json``.

    python -m kdutils.report render  --run outputs/<profile> [--out DIR] [--engine auto|pandoc|python]
    python -m kdutils.report publish --run outputs/default   [--dest DIR]
    python -m kdutils.report index   --run outputs/<profile>
    python -m kdutils.report check   --published paper/

Every number in the paper comes from ``summary.json`` (results) and ``manifest.json``
(parameters, machine, versions) through the Jinja2 template ``templates/paper.md.j2``;
sentences that depend on an outcome ("the gain is significant") are template logic.
Published figures come from :mod:`kdutils.anchors`. Nothing here trains or scores a
model, so a paper can be re-rendered from the committed files alone.

Layout
------
``render`` writes into ``<run>/paper/`` (or ``--out``)::

    paper.md, paper.html        the paper (HTML standalone: CSS inlined, figures as data URIs)
    tables/<name>.md, .tex      the paper's tables (Markdown and LaTeX)
    figures/<name>.png, .pdf    copies of the run's figures that the paper shows

``publish`` renders the same into the repository's ``paper/`` folder, adds the run's
``summary.json`` and ``manifest.json`` and the notebooks' own tables (under
``tables/notebooks/``). Only two profiles are published, so they never clobber each other:

    default -> paper/            (the committed study; ``make paper PROFILE=default``)
    paper   -> paper/mpnet-12/   (the large profile with the 110M MPNet teacher)

Any other profile is only rendered into its run, and ``render`` refuses an ``--out``
inside ``paper/`` for it. ``check`` re-renders tables and text from a published folder's
``summary.json`` + ``manifest.json`` into a temporary folder and diffs them with the
published files (non-zero exit on any difference). ``paper.html`` is compared when this
machine has the HTML engine that wrote it (recorded in the file); otherwise the check
says it skipped it.

HTML comes from pandoc (``/usr/bin/pandoc``; ``--embed-resources --standalone``, or
``--self-contained`` before pandoc 2.19) when it is installed, otherwise from python-markdown
with the CSS and images inlined here; ``--engine`` forces one. ``publish`` re-checks what it
wrote before it returns. The figures the paper expects, and the notebook that saves each, are
listed in :data:`PAPER_FIGURES`; a missing one is left out with a note.

``index`` writes ``<run>/reports/index.html``: every notebook's executed HTML (code and
reader versions), the paper, the manifest, the figures and the headline table, linking
only files that exist and listing what is missing in plain words.
"""

from __future__ import annotations

import argparse
import base64
import difflib
import functools
import html
import math
import os
import re
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import jinja2
import pandas as pd

from kdutils import anchors, plots
from kdutils.runs import REPO_ROOT, atomic_path, read_json
from kdutils.stats import MIN_SEEDS_FOR_INTERVAL

TEMPLATE_DIR = Path(__file__).parent / "templates"
PANDOC = Path("/usr/bin/pandoc")

# The level the paper's wording uses for "significant".
SIGNIFICANCE_LEVEL = 0.05

# Replicas must beat one replica's throughput by this factor before the paper calls it a speed-up.
BALANCER_GAIN = 1.2

# Where each published profile lands, relative to the repository root.
PUBLISH_DIRS: dict[str, Path] = {"default": Path("paper"), "paper": Path("paper") / "mpnet-12"}

ENGINE_META = "kdutils-html-engine"


class ReportError(RuntimeError):
    """A report cannot be built; the message says what is missing or refused."""


# --------------------------------------------------------------------------------------------
# What the study's named assets are (descriptive facts, not results; results come from the run)

TEACHER_INFO: dict[str, dict[str, Any]] = {
    "minilm-l6": {
        "label": "all-MiniLM-L6-v2",
        "family": "MiniLM (BERT architecture)",
        "layers": 6,
        "hidden": 384,
        "refs": ["wang2020", "reimers2019"],
    },
    "mpnet-12": {
        "label": "all-mpnet-base-v2",
        "family": "MPNet",
        "layers": 12,
        "hidden": 768,
        "refs": ["song2020", "reimers2019"],
    },
}

DATASET_INFO: dict[str, dict[str, Any]] = {
    "rotten_tomatoes": {
        "label": "rotten_tomatoes",
        "long": "the sentence polarity data of Pang & Lee (2005), known as rotten_tomatoes: "
                "single sentences from movie reviews, the source SST was built from",
        "refs": ["pang2005"],
    },
    "imdb": {"label": "IMDB", "long": "the IMDB review data of Maas et al. (2011): long reviews",
             "refs": ["maas2011"]},
    "tweets": {"label": "tweets", "long": "crowd-labelled tweets with three classes", "refs": []},
    "file": {"label": "a user-supplied file", "long": "a user-supplied labelled file", "refs": []},
}


# --------------------------------------------------------------------------------------------
# Figures the paper shows, and which notebook saves each (through ``run.save_figure``).


@dataclass(frozen=True)
class FigureSpec:
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


# --------------------------------------------------------------------------------------------
# Number formatting (also the template's filters)


def _is_num(x: Any) -> bool:
    return isinstance(x, int | float) and not isinstance(x, bool) and not (isinstance(x, float) and math.isnan(x))


def pct(x: Any, digits: int = 1) -> str:
    """A fraction as a percentage with its sign: ``0.8342 -> '83.4%'``."""
    return f"{100 * x:.{digits}f}%" if _is_num(x) else "n/a"


def pct_num(x: Any, digits: int = 1) -> str:
    """A fraction as a percentage number for a column headed '(%)': ``0.8342 -> '83.4'``."""
    return f"{100 * x:.{digits}f}" if _is_num(x) else "—"


def _clip_ci(ci: Any, low: float, high: float) -> list[float] | None:
    """``[lo, hi]`` clipped to ``[low, high]``; ``None`` for anything that is not a numeric pair."""
    if isinstance(ci, list | tuple) and len(ci) == 2 and all(_is_num(v) for v in ci):
        return [min(max(float(ci[0]), low), high), min(max(float(ci[1]), low), high)]
    return None


def pct_ci(ci: Any, digits: int = 1) -> str:
    """A confidence interval of fractions as percentages: ``[0.82, 0.85] -> '[82.0, 85.0]'``.

    Bounds are clipped to [0, 100]%: runs recorded before :func:`kdutils.stats.mean_ci`
    clipped its intervals still print only possible accuracies. No interval prints ``—``.
    """
    clipped = _clip_ci(ci, 0.0, 1.0)
    if clipped is not None:
        return f"[{100 * clipped[0]:.{digits}f}, {100 * clipped[1]:.{digits}f}]"
    return "—"


def points(x: Any, digits: int = 1) -> str:
    """Percentage points with a sign: ``2.31 -> '+2.3'``."""
    return f"{x:+.{digits}f}" if _is_num(x) else "n/a"


def points_ci(ci: Any, digits: int = 1) -> str:
    """An interval of percentage points with signs, clipped to [-100, +100]: ``'[+1.79, +3.65]'``."""
    clipped = _clip_ci(ci, -100.0, 100.0)
    if clipped is not None:
        return f"[{clipped[0]:+.{digits}f}, {clipped[1]:+.{digits}f}]"
    return "—"


def pval(p: Any) -> str:
    """A p-value as printed in the paper (without ``p =``)."""
    if not _is_num(p):
        return "n/a"
    if p < 0.001:
        return "< 0.001"
    return f"{p:.3f}" if p < 0.1 else f"{p:.2f}"


def p_clause(p: Any) -> str:
    """``p = 0.012`` or ``p < 0.001``."""
    text = pval(p)
    return f"p {text}" if text.startswith("<") else f"p = {text}"


def millions(n: Any) -> str:
    """A parameter count: ``22713216 -> '22.7M'``, ``843522 -> '844k'``."""
    if not _is_num(n):
        return "—"
    if n >= 1e9:
        return f"{n / 1e9:.2f}B"
    if n >= 1e6:
        return f"{n / 1e6:.1f}M" if n >= 1e7 else f"{n / 1e6:.2f}M"
    if n >= 1e3:
        return f"{n / 1e3:.0f}k"
    return f"{int(n)}"


def num(x: Any, sig: int = 3) -> str:
    """A plain number with ``sig`` significant digits (integers keep every digit)."""
    if not _is_num(x):
        return "—"
    if isinstance(x, int) or float(x).is_integer() and abs(x) >= 10 ** (sig - 1):
        return f"{int(round(x)):,}"
    rounded = float(f"{x:.{sig}g}")
    if abs(rounded) >= 10 ** sig:
        # 2043.7 -> '2,040', not '2.04e+03': readers of a table or a sentence expect digits.
        return f"{rounded:,.0f}"
    return f"{x:.{sig}g}"


def integer(x: Any) -> str:
    return f"{int(x):,}" if _is_num(x) else "—"


def seconds(s: Any) -> str:
    """A duration: seconds below two minutes, then minutes, then hours."""
    if not _is_num(s):
        return "—"
    if s < 120:
        return f"{s:.0f} s" if s >= 10 else f"{s:.1f} s"
    if s < 7200:
        return f"{s / 60:.1f} min"
    return f"{s / 3600:.1f} h"


def ms(x: Any) -> str:
    if not _is_num(x):
        return "—"
    return f"{x:.2f}" if x < 10 else f"{x:.1f}"


def times(x: Any) -> str:
    """A ratio: ``12.345 -> '12x'``, ``1.53 -> '1.5x'``."""
    if not _is_num(x):
        return "n/a"
    return f"{x:.0f}x" if x >= 10 else f"{x:.1f}x"


FILTERS: dict[str, Callable[..., str]] = {
    "pct": pct, "pct_num": pct_num, "pct_ci": pct_ci, "points": points, "points_ci": points_ci,
    "pval": pval, "p_clause": p_clause, "millions": millions, "num": num, "integer": integer,
    "seconds": seconds, "ms": ms, "times": times,
}


# --------------------------------------------------------------------------------------------
# Tables


@dataclass
class Table:
    """A paper table: cells are already formatted strings (so Markdown and LaTeX agree)."""

    name: str
    caption: str
    frame: pd.DataFrame

    def markdown(self) -> str:
        body = self.frame.to_markdown(index=False, disable_numparse=True)
        return body + "\n"

    def latex(self) -> str:
        cols = "".join("r" if self.frame[c].map(_looks_numeric).all() else "l" for c in self.frame.columns)
        text = self.frame.to_latex(index=False, escape=True, caption=_latex_escape(self.caption),
                                   label=f"tab:{self.name}", column_format=cols)
        # In LaTeX text mode < and > print as other glyphs.
        text = text.replace("<", r"\textless{}").replace(">", r"\textgreater{}")
        return text


_LATEX_SPECIALS = {"\\": r"\textbackslash{}", "&": r"\&", "%": r"\%", "$": r"\$", "#": r"\#", "_": r"\_",
                   "{": r"\{", "}": r"\}", "~": r"\textasciitilde{}", "^": r"\textasciicircum{}"}


def _latex_escape(text: str) -> str:
    """Escape a caption (pandas escapes cells, not captions); one pass so escapes are not re-escaped."""
    return re.sub(r"[\\&%$#_{}~^]", lambda m: _LATEX_SPECIALS[m.group(0)], text)


_NUMERIC_CELL = re.compile(r"[\s+\-\d.,%\[\]<>—kMBx]*|one run|not run")


def _looks_numeric(cell: Any) -> bool:
    return bool(_NUMERIC_CELL.fullmatch(str(cell)))


def _table(name: str, caption: str, rows: list[dict[str, str]]) -> Table:
    frame = pd.DataFrame(rows).fillna("—")
    # A column the run recorded nothing for says nothing; leave it out.
    empty = [c for c in frame.columns if (frame[c] == "—").all()]
    return Table(name, caption, frame.drop(columns=empty))


_PCT_HINTS = ("accuracy", "f1", "agreement", "share", "coverage", "confidence")

_HEADER_WORDS = {
    "ms": "(ms)", "mb": "(MB)", "s": "(s)", "ci95": "95% CI", "p": "p", "id": "id", "onnx": "ONNX",
    "int8": "int8", "rps": "req/s", "qps": "req/s", "ece": "ECE", "f1": "F1", "p50": "p50", "p95": "p95",
    "p99": "p99", "cpu": "CPU", "kl": "KL", "mse": "MSE", "ce": "CE", "total": "(all)",
}

_HEADERS = {
    "model": "Model", "accuracy": "Accuracy (%)", "accuracy_mean": "Accuracy (%)",
    "accuracy_std": "Std (points)", "accuracy_ci95": "95% CI (%)", "macro_f1": "Macro-F1 (%)",
    "macro_f1_mean": "Macro-F1 (%)", "p_value": "p", "gain_points_mean": "Gain (points)",
    "gain_points": "Gain (points)", "gain_ci95": "Gain 95% CI", "params": "Params", "size_mb": "Size (MB)",
    "train_seconds": "Train time", "teacher_agreement": "Agreement with teacher (%)", "n_seeds": "Seeds",
    "train_seconds_mean": "Train time (mean)",
    "seeds": "Seeds", "alpha": "alpha", "temperature": "T", "loss": "Loss",
    # data section (kdutils.data.summary_section and notebook 01's extras)
    "split_seed": "Split seed", "mean_words_train": "Mean words per training sentence",
    "mean_pieces_train": "Mean word pieces per training sentence", "piece_tokenizer": "Word-piece tokenizer",
    "teacher_truncated_share": "Training sentences cut at the teacher's max length (%)",
    "glove_token_coverage": "GloVe coverage of training tokens (%)",
    "glove_type_coverage": "GloVe coverage of training word types (%)", "word_tokenizer": "Student tokenizer",
    "texts_repaired": "Texts repaired (mojibake)", "duplicates_removed": "Duplicates removed",
    "conflicting_removed": "Conflicting duplicates removed",
}


def _header(key: str) -> str:
    if key in _HEADERS:
        return _HEADERS[key]
    words = [_HEADER_WORDS.get(w, w) for w in key.split("_") if w]
    text = " ".join(words)
    text = text[:1].upper() + text[1:]
    if any(h in key.lower() for h in _PCT_HINTS) and "points" not in key and "ci" not in key:
        text += " (%)"
    return text


def format_cell(key: str, value: Any) -> str:
    """Format one value of a generic record by what its key says it is."""
    k = key.lower()
    is_pct = any(h in k for h in _PCT_HINTS) and "points" not in k
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "—"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, str):
        return plots.model_label(value) if k in ("model", "name") else value
    if isinstance(value, list | tuple):
        if len(value) == 2 and all(_is_num(v) for v in value) and "ci" in k:
            if is_pct and all(0 <= v <= 1 for v in value):
                return pct_ci(value)
            if "points" in k or "gain" in k:
                return points_ci(value)
            return f"[{num(value[0])}, {num(value[1])}]"
        if len(value) <= 6 and all(not isinstance(v, dict | list) for v in value):
            return ", ".join(format_cell(key, v) for v in value)
        return f"{len(value)} values"
    if isinstance(value, dict):
        return ", ".join(f"{k2}: {format_cell(k2, v)}" for k2, v in value.items())
    if _is_num(value):
        if "p_value" in k or k == "p" or k.endswith(" p"):
            return pval(value)
        if "params" in k:
            return millions(value)
        if is_pct and 0 <= value <= 1:
            return pct_num(value)
        if "points" in k or "gain" in k:
            return points(value, 2)
        if isinstance(value, int):
            return f"{value:,}"
        if "seconds" in k or k.endswith("_s"):
            return seconds(value)
        if "_ms" in k or k.startswith("ms_") or "latency" in k:
            return ms(value)
        if "mb" in k.split("_"):
            return f"{value:.1f}"
        return num(value)
    return str(value)


def readable(frame: pd.DataFrame) -> pd.DataFrame:
    """A notebook's results frame as a reader sees it: the paper's headers and cell formats.

    Each cell goes through :func:`format_cell` by its column name (fractions of accuracy-like
    columns as percentages to one decimal, intervals as ``[lo, hi]``, p-values, durations,
    parameter counts, three significant digits otherwise) and a missing value (``None``, NaN)
    becomes ``—``. Columns are renamed by :func:`_header`. The result holds strings only, for
    ``display`` and for ``RunDir.save_table``; the numbers stay in ``summary.json``.
    """
    columns = {c: _header(str(c)) for c in frame.columns}
    out = pd.DataFrame({columns[c]: [format_cell(str(c), v) for v in frame[c]] for c in frame.columns},
                       index=range(len(frame)))
    # As in the paper's tables: a column with nothing recorded (e.g. no interval below 3 seeds) goes.
    return out.drop(columns=[c for c in out.columns if len(out) and (out[c] == "—").all()])


def show(frame: pd.DataFrame) -> None:
    """Display :func:`readable` ``frame`` in a notebook: no row numbers, text left, numbers right."""
    from IPython.display import display

    shown = readable(frame)
    text = [c for c in shown.columns if not shown[c].map(_looks_numeric).all()]
    styler = shown.style.hide(axis="index").set_properties(subset=text, **{"text-align": "left"})
    # Headers follow their column (nbconvert's stylesheet right-aligns every header).
    styler = styler.set_table_styles([{"selector": f"th.col_heading.col{shown.columns.get_loc(c)}",
                                       "props": [("text-align", "left")]} for c in text])
    display(styler)


def figure_caption(name: str) -> str:
    """The paper's caption of figure ``name`` (:data:`PAPER_FIGURES`), or its name in words."""
    spec = next((f for f in PAPER_FIGURES if f.name == name), None)
    return spec.caption if spec else name.replace("_", " ").capitalize() + "."


def show_figure(fig: Any, name: str, dpi: int = 110) -> None:
    """Display a matplotlib figure in a notebook with its caption as alt text, then close it.

    nbconvert's HTML export gives a plain ``image/png`` output no alt text (and warns
    "Alternative text is missing"), so the figure is shown as an HTML ``<img>`` that carries
    the paper's caption (:func:`figure_caption`) as ``alt`` and below the image. ``dpi`` sets
    the on-screen resolution; the files the paper uses come from ``RunDir.save_figure``.
    """
    import io

    import matplotlib.pyplot as plt
    from IPython.display import HTML, display

    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=dpi, bbox_inches="tight")
    plt.close(fig)
    data = base64.b64encode(buffer.getvalue()).decode("ascii")
    caption = html.escape(figure_caption(name))
    display(HTML(f'<figure style="margin: 0.5em 0"><img src="data:image/png;base64,{data}" alt="{caption}" '
                 f'style="max-width: 100%; height: auto"><figcaption style="font-size: 0.9em; color: #444">'
                 f"<b>{html.escape(name)}</b>: {caption}</figcaption></figure>"))


def records(obj: Any, key_name: str = "model") -> list[dict[str, Any]]:
    """Rows of a summary section of unknown shape: a list of dicts, or a dict of dicts keyed by model.

    Nested dicts one level down are flattened (``latency_ms: {p50: ..}`` -> ``latency_ms_p50``);
    long lists (per-seed values) are dropped from a table.
    """
    if isinstance(obj, dict):
        nested = [v for v in obj.values() if isinstance(v, list) and v and all(isinstance(r, dict) for r in v)]
        if all(isinstance(v, dict) for v in obj.values()) and obj:
            rows = [{key_name: k, **v} for k, v in obj.items()]
        elif len(nested) == 1:
            rows = nested[0]
        else:
            rows = [{k: v for k, v in obj.items() if not isinstance(v, dict | list) or _short_list(v)}]
    elif isinstance(obj, list):
        rows = [r for r in obj if isinstance(r, dict)]
    else:
        return []
    flat = []
    for row in rows:
        out: dict[str, Any] = {}
        for k, v in row.items():
            if isinstance(v, dict):
                for k2, v2 in v.items():
                    if not isinstance(v2, dict | list) or _short_list(v2):
                        out[f"{k}_{k2}"] = v2
            elif isinstance(v, list) and not _short_list(v):
                continue
            else:
                out[k] = v
        flat.append(out)
    return flat


def _short_list(v: Any) -> bool:
    return isinstance(v, list) and len(v) <= 6 and all(not isinstance(x, dict | list) for x in v)


def records_table(name: str, caption: str, rows: list[dict[str, Any]]) -> Table:
    keys: list[str] = []
    for row in rows:
        keys.extend(k for k in row if k not in keys)
    cells = [{_header(k): format_cell(k, row.get(k)) for k in keys} for row in rows]
    return _table(name, caption, cells)


# ---- intervals over seeds: one rule for every table, sentence and page


def _n_of(entry: dict[str, Any], *keys: str) -> int | None:
    """How many seeds an entry's interval is over: the first count or list of ``keys`` it has."""
    for key in keys:
        value = entry.get(key)
        if _is_num(value):
            return int(value)
        if isinstance(value, list) and value:
            return len(value)
    return None


def _guarded(ci: Any, n: int | None, low: float, high: float) -> list[float] | None:
    if n is not None and n < MIN_SEEDS_FOR_INTERVAL:
        return None
    return _clip_ci(ci, low, high)


def guard_intervals(summary: dict[str, Any]) -> dict[str, Any]:
    """A copy of ``summary`` whose intervals over seeds follow :func:`kdutils.stats.mean_ci`'s rule.

    Runs recorded before that rule have t-intervals from two seeds (``[-80.4, 173.7]`` %) and
    bounds beyond what is possible. Here an interval over fewer than
    :data:`kdutils.stats.MIN_SEEDS_FOR_INTERVAL` seeds becomes ``None`` and the others are
    clipped to the feasible range (accuracies [0, 1], gains [-100, 100] points), so the paper,
    its tables and the index say the same thing. ``summary.json`` itself is never changed.
    """
    out = dict(summary)
    models = summary.get("models")
    if isinstance(models, dict):
        out["models"] = {}
        for name, m in models.items():
            if isinstance(m, dict):
                m = dict(m)
                n = _n_of(m, "n_seeds", "per_seed")
                for key in [k for k in m if k.endswith("_ci95")]:
                    m[key] = _guarded(m[key], n, 0.0, 1.0)
            out["models"][name] = m
    dist = summary.get("distillation")
    if isinstance(dist, dict):
        dist = dict(dist)
        if "gain_ci95" in dist:
            dist["gain_ci95"] = _guarded(dist["gain_ci95"], _n_of(dist, "gain_points_per_seed", "seeds"),
                                         -100.0, 100.0)
        if "bootstrap_gain_ci95_points" in dist:  # over test sentences, not seeds: clipped only
            dist["bootstrap_gain_ci95_points"] = _clip_ci(dist["bootstrap_gain_ci95_points"], -100.0, 100.0)
        if isinstance(dist.get("ablation"), list):
            rows = []
            for r in dist["ablation"]:
                if isinstance(r, dict):
                    r = dict(r)
                    n = _n_of(r, "seeds")
                    for key in [k for k in r if k.endswith("_ci95")]:
                        r[key] = _guarded(r[key], n, 0.0, 1.0)
                rows.append(r)
            dist["ablation"] = rows
        out["distillation"] = dist
    return out


def significance_caveat(significant: bool, ci: Any, n_seeds: int | None) -> str:
    """What must follow "significant at the 0.05 level" wherever it is said ('' when nothing).

    The p-value comes from a paired test over test sentences (seed-averaged accuracies); it
    says nothing about new seeds. When the interval over seeds is missing (too few seeds) or
    includes zero, a "significant" gain is qualified in the same words in the abstract, the
    results, the discussion, the run index and notebook 04. Starts with ", " when not empty.
    """
    if not significant:
        return ""
    seeds = f"{n_seeds} seed{'s' if n_seeds != 1 else ''}" if n_seeds is not None else "these seeds"
    clipped = _clip_ci(ci, -100.0, 100.0)
    if clipped is None:
        return (f", although with {seeds} there is no interval over seeds (none below {MIN_SEEDS_FOR_INTERVAL}): "
                "the test covers new test sentences, not new seeds")
    if clipped[0] <= 0 <= clipped[1]:
        return f", although with {seeds} the 95% interval over seeds, {points_ci(clipped, 2)}, still includes zero"
    return ""


# ---- the study's tables


def _models(summary: dict[str, Any]) -> dict[str, Any]:
    return summary.get("models") or {}


def depth_of(name: str) -> int | None:
    m = re.fullmatch(r"teacher_L(\d+)", name)
    return int(m.group(1)) if m else None


def teacher_key(summary: dict[str, Any], manifest: dict[str, Any]) -> str | None:
    """The teacher's registry name (``minilm-l6``), from the run's summary or its parameters."""
    t = _models(summary).get("teacher") or {}
    for candidate in (t.get("name"), t.get("teacher"), (manifest.get("parameters") or {}).get("teacher", {}).get("name")):
        if isinstance(candidate, str) and candidate in TEACHER_INFO:
            return candidate
    return None


def teacher_layers(summary: dict[str, Any], manifest: dict[str, Any]) -> int | None:
    t = _models(summary).get("teacher") or {}
    for key in ("layers", "num_layers", "num_hidden_layers"):
        if _is_num(t.get(key)):
            return int(t[key])
    key = teacher_key(summary, manifest)
    return TEACHER_INFO[key]["layers"] if key else None


def depth_rows(summary: dict[str, Any], manifest: dict[str, Any]) -> list[dict[str, Any]]:
    """The truncated teachers and the full teacher, shallowest first."""
    rows = []
    for name, m in _models(summary).items():
        d = depth_of(name)
        if d is not None and isinstance(m, dict):
            rows.append({"name": name, "layers": d, **m})
    rows.sort(key=lambda r: r["layers"])
    full = _models(summary).get("teacher")
    if isinstance(full, dict):
        rows.append({"name": "teacher", "layers": teacher_layers(summary, manifest), **full})
    return rows


def data_table(summary: dict[str, Any]) -> Table | None:
    data = summary.get("data")
    if not isinstance(data, dict):
        return None
    info = DATASET_INFO.get(data.get("dataset", ""), {})
    rows = [{"Property": "Data set", "Value": info.get("label", str(data.get("dataset", "—")))}]
    if data.get("label_names"):
        rows.append({"Property": "Labels", "Value": ", ".join(map(str, data["label_names"]))})
    for key, label in (("n_train", "Train sentences"), ("n_val", "Validation sentences"),
                       ("n_test", "Test sentences")):
        if key in data:
            rows.append({"Property": label, "Value": integer(data[key])})
    if data.get("split_method"):
        rows.append({"Property": "Split", "Value": str(data["split_method"])})
    skip = {"dataset", "label_names", "n_train", "n_val", "n_test", "split_method", "sources", "files",
            "num_labels", "info"}
    for key, value in data.items():
        if key in skip or isinstance(value, dict) or (isinstance(value, list) and not _short_list(value)):
            continue
        rows.append({"Property": _header(key), "Value": format_cell(key, value)})
    sources = data.get("sources") or data.get("files") or {}
    for src, digest in sorted(sources.items()) if isinstance(sources, dict) else []:
        rows.append({"Property": f"sha256 of {Path(str(src)).name}", "Value": f"{str(digest)[:16]}…"})
    return _table("data_card", "Data card: the splits the study trains and tests on.", rows)


def teacher_table(summary: dict[str, Any], manifest: dict[str, Any]) -> Table | None:
    rows = depth_rows(summary, manifest)
    if not rows:
        return None
    key = teacher_key(summary, manifest)
    label = TEACHER_INFO[key]["label"] if key else "teacher"
    # One measurement for every latency in the paper: the deployment benchmark's interleaved
    # eager-PyTorch p50 (notebook 05). Notebook 02 times each teacher right after training,
    # with other threads and load; its figure is used, and named as such, only without 05's.
    benchmark = {str(b.get("model")): b.get("latency_ms_p50") for b in inference_rows(summary)
                 if str(b.get("runtime", "torch")) == "torch" and _is_num(b.get("latency_ms_p50"))}
    if benchmark:
        latency_header = "Batch-1 p50 latency (ms)"
        latency_note = (" Latency: batch-1 p50 in eager PyTorch from the deployment benchmark, the same "
                        "measurement as the inference table.")
    else:
        threads = sorted({int(r["torch_threads"]) for r in rows if _is_num(r.get("torch_threads"))})
        latency_header = "Batch-1 latency (ms, notebook 02)"
        latency_note = (" Latency: median batch-1 time measured by the teacher notebook right after training"
                        + (f" with {' or '.join(map(str, threads))} torch thread(s)" if threads else "")
                        + "; the deployment benchmark did not run.")
    cells = []
    for r in rows:
        name = f"{label} (full)" if r["name"] == "teacher" else f"{label}, first {r['layers']} layers"
        latency = benchmark.get(r["name"]) if benchmark else r.get("latency_ms_b1")
        cells.append({
            "Model": name,
            "Layers": integer(r.get("layers")),
            "Params": millions(r.get("params")),
            "Size (MB)": format_cell("size_mb", r.get("size_mb")),
            "Accuracy (%)": pct_num(r.get("accuracy")),
            "Macro-F1 (%)": pct_num(r.get("macro_f1")),
            "ECE": num(r.get("ece"), 2),
            "Train time": seconds(r.get("train_seconds")),
            latency_header: ms(latency),
        })
    return _table("teachers", "Teacher and depth sweep: the fine-tuned teacher and its truncations to "
                  "the first k layers (each fine-tuned), on the test split." + latency_note, cells)


STUDENT_ORDER = ("tfidf_logreg", "student_original", "student_baseline", "student_distilled")


def student_table(summary: dict[str, Any]) -> Table | None:
    models = _models(summary)
    rows = []
    for name in STUDENT_ORDER:
        m = models.get(name)
        if not isinstance(m, dict):
            continue
        n_runs = m.get("n_seeds", len(m["per_seed"]) if isinstance(m.get("per_seed"), list) else None)
        single = n_runs == 1  # one run (e.g. the deterministic TF-IDF model) has no interval
        rows.append({
            "Model": plots.model_label(name),
            "Seeds": integer(n_runs) if n_runs is not None else "—",
            "Accuracy (%)": pct_num(m.get("accuracy_mean")),
            "Std (points)": "—" if single or not _is_num(m.get("accuracy_std")) else f"{100 * m['accuracy_std']:.2f}",
            "95% CI (%)": "one run" if single else pct_ci(m.get("accuracy_ci95")),
            "Macro-F1 (%)": pct_num(m.get("macro_f1_mean")),
            "ECE": num(m.get("ece_mean"), 2),
            "Params": millions(m.get("params")),
            "Size (MB)": format_cell("size_mb", m.get("size_mb")),
            "Agreement with teacher (%)": pct_num(m.get("teacher_agreement")),
        })
    if not rows:
        return None
    return _table("students", "Students on the test split: mean over seeds, sample standard deviation "
                  f"and a 95% t-interval of the mean (clipped to 0-100%; none below {MIN_SEEDS_FOR_INTERVAL} "
                  "seeds).", rows)


def headline_rows(summary: dict[str, Any], manifest: dict[str, Any]) -> list[dict[str, str]]:
    models = _models(summary)
    dist = summary.get("distillation") if isinstance(summary.get("distillation"), dict) else {}
    rows = []
    t = models.get("teacher")
    if isinstance(t, dict):
        key = teacher_key(summary, manifest)
        rows.append({"Model": f"Teacher ({TEACHER_INFO[key]['label']})" if key else "Teacher",
                     "Accuracy (%)": pct_num(t.get("accuracy")), "95% CI (%)": "one run",
                     "Gain over baseline (points)": "", "p": ""})
    b = models.get("student_baseline")
    if isinstance(b, dict):
        rows.append({"Model": plots.model_label("student_baseline"), "Accuracy (%)": pct_num(b.get("accuracy_mean")),
                     "95% CI (%)": pct_ci(b.get("accuracy_ci95")), "Gain over baseline (points)": "", "p": ""})
    d = models.get("student_distilled")
    if isinstance(d, dict):
        gain = points(dist.get("gain_points_mean"), 2)
        if dist.get("gain_ci95"):
            gain += f" {points_ci(dist.get('gain_ci95'), 2)}"
        rows.append({"Model": plots.model_label("student_distilled"), "Accuracy (%)": pct_num(d.get("accuracy_mean")),
                     "95% CI (%)": pct_ci(d.get("accuracy_ci95")),
                     "Gain over baseline (points)": gain if dist else "not run",
                     "p": pval(dist.get("p_value")) if dist else "not run"})
    return rows


def headline_table(summary: dict[str, Any], manifest: dict[str, Any]) -> Table | None:
    rows = headline_rows(summary, manifest)
    if not rows:
        return None
    return _table("headline", "Headline: teacher, label-trained and distilled BiLSTM on the test split "
                  "(students: mean and 95% interval over seeds; gain: distilled minus baseline, with its "
                  "95% interval).", rows)


# Ablation columns shown when the rows carry them (kdutils.distill.setting_row); others are generic.
_ABLATION_COLUMNS = {
    "setting": "Setting", "seeds": "Seeds", "accuracy_mean": "Test accuracy (%)",
    "accuracy_ci95": "95% CI (%)", "val_accuracy_mean": "Val. accuracy (%)", "epochs_mean": "Epochs",
    "train_seconds_mean": "Train time",
}


def ablation_table(summary: dict[str, Any]) -> Table | None:
    dist = summary.get("distillation")
    rows = records(dist.get("ablation")) if isinstance(dist, dict) else []
    if not rows:
        return None
    if any(isinstance(r.get("accuracy_ci95"), list) for r in rows):
        over = (f"mean and 95% interval over the row's seeds (none below {MIN_SEEDS_FOR_INTERVAL} seeds)")
    else:
        seeds = sorted({int(r["seeds"]) for r in rows if _is_num(r.get("seeds"))})
        count = " or ".join(map(str, seeds)) if seeds else "too few"
        over = (f"mean over the row's {count} seed{'' if seeds == [1] else 's'}, too few for an interval "
                f"(none is given below {MIN_SEEDS_FOR_INTERVAL})")
    caption = (f"Ablation of the distillation recipe on the test split: {over}; the setting is chosen on "
               "validation accuracy.")
    if "setting" not in rows[0]:
        return records_table("ablation", caption, rows)
    cells = []
    for r in rows:
        cell = {}
        for key, header in _ABLATION_COLUMNS.items():
            if key not in r:
                continue
            if key == "epochs_mean":
                cell[header] = f"{r[key]:.1f}" if _is_num(r[key]) else "—"
            elif key == "train_seconds_mean":
                cell[header] = seconds(r[key])
            else:
                cell[header] = format_cell(key, r[key])
        cells.append(cell)
    return _table("ablation", caption, cells)


RUNTIME_LABELS = {"torch": "PyTorch (eager)", "onnx": "ONNX Runtime", "onnx-int8": "ONNX Runtime (int8)"}
# How the prose names a student (tables use plots.model_label).
STUDENT_PHRASES = {"student_distilled": "distilled BiLSTM", "student_baseline": "label-trained BiLSTM",
                   "student_original": "BiLSTM at the original sizes"}


def inference_rows(summary: dict[str, Any]) -> list[dict[str, Any]]:
    """``inference`` as one row per model and runtime.

    The deployment notebook writes ``{model: {runtime: row}, "machine": {...}}``
    (kdutils.bench.micro_benchmark); a list of rows or ``{model: row}`` also works.
    """
    section = summary.get("inference")
    if isinstance(section, dict):
        rows = []
        for model, by_rt in section.items():
            if model == "machine" or not isinstance(by_rt, dict):
                continue
            if by_rt and all(isinstance(v, dict) for v in by_rt.values()):
                rows.extend({"model": model, "runtime": rt, **row} for rt, row in by_rt.items())
            else:
                rows.append({"model": model, **by_rt})
        return rows
    return records(section)


def _throughput_key(row: dict[str, Any]) -> str | None:
    keys = [k for k in row if k.startswith("throughput_per_s") and _is_num(row[k])]
    return keys[0] if keys else None


def inference_table(summary: dict[str, Any]) -> Table | None:
    rows = inference_rows(summary)
    if not rows:
        return None
    if not any("latency_ms_p50" in r for r in rows):
        return records_table("inference", "Inference on the CPU per model and runtime.", rows)
    machine = (summary.get("inference") or {}).get("machine") or {}
    cells = []
    batch = None
    for r in rows:
        tkey = _throughput_key(r)
        batch = r.get("throughput_batch", batch)
        cells.append({
            "Model": plots.model_label(str(r.get("model"))),
            "Runtime": RUNTIME_LABELS.get(str(r.get("runtime")), str(r.get("runtime", "—"))),
            "p50 latency (ms)": ms(r.get("latency_ms_p50")),
            "p95 latency (ms)": ms(r.get("latency_ms_p95")),
            "Throughput (sent./s)": num(r.get(tkey)) if tkey else "—",
            "Accuracy (%)": pct_num(r.get("accuracy")),
            "Agreement with eager (%)": pct_num(r.get("agreement_with_eager")),
            "Size (MB)": format_cell("size_mb", r.get("size_mb")),
        })
    where = ""
    if machine:
        threads = machine.get("torch_threads", machine.get("threads"))
        where = f" on {machine.get('cpu', 'the CPU')}" + (f" with {threads} threads" if threads else "")
    return _table("inference", f"In-process inference{where}: batch-1 latency over single test sentences, "
                  f"throughput at batch {batch if batch else 'size as recorded'} over the test split, and "
                  "agreement of each runtime's predictions with eager PyTorch.", cells)


SERVING_SIDE_KEYS = ("fault_test", "http_overhead", "micro_batching", "settings", "peers", "batching")
SETUP_LABELS = {"1_replica": "1 replica", "N_replicas_nginx": "replicas behind nginx"}


def serving_rows(summary: dict[str, Any]) -> list[dict[str, Any]]:
    """``serving`` load results as rows (setup, model, concurrency, stats).

    The deployment notebook writes ``{setup: {model: {concurrency: stats}}}`` beside side
    results (``fault_test``, ``http_overhead``, ...); a list of rows also works.
    """
    section = summary.get("serving")
    if not isinstance(section, dict):
        return records(section)
    rows = []
    for setup, by_model in section.items():
        if setup in SERVING_SIDE_KEYS or not isinstance(by_model, dict):
            continue
        for model, by_c in by_model.items():
            if not isinstance(by_c, dict):
                continue
            for c, stats in by_c.items():
                if isinstance(stats, dict):
                    rows.append({"setup": setup, "model": model,
                                 "concurrency": int(c) if str(c).isdigit() else c, **stats})
    return rows


def serving_table(summary: dict[str, Any]) -> Table | None:
    rows = serving_rows(summary)
    if not rows:
        return None
    if not any("rps" in r for r in rows):
        return records_table("serving", "Serving under load.", rows)
    cells = [{
        "Setup": SETUP_LABELS.get(str(r.get("setup")), str(r.get("setup", "—")).replace("_", " ")),
        "Model": plots.model_label(str(r.get("model"))),
        "Concurrency": integer(r.get("concurrency")),
        "Requests": integer(r.get("requests_total", r.get("requests"))),
        "Errors": integer(r.get("errors")),
        "Req/s": num(r.get("rps")),
        "p50 (ms)": ms(r.get("p50_ms")),
        "p95 (ms)": ms(r.get("p95_ms")),
        "p99 (ms)": ms(r.get("p99_ms")),
    } for r in rows]
    return _table("serving", "Serving under load through HTTP: closed-loop users (concurrency = requests in "
                  "flight), latency percentiles of successful requests after the warm-up, throughput and "
                  "every failed request.", cells)


_STATS_COLUMNS = ("requests_total", "requests", "errors", "rps", "p50_ms", "p95_ms", "p99_ms")


def _window_rows(section: dict[str, Any], windows: dict[str, str]) -> list[dict[str, Any]]:
    """Rows for the load-statistics sub-dicts of a side result (``before``/``after``, ``off``/``on``)."""
    rows = []
    for key, label in windows.items():
        stats = section.get(key)
        if isinstance(stats, dict):
            rows.append({"": label, **{k: stats[k] for k in _STATS_COLUMNS if k in stats}})
    return rows


PEER_LABELS = {"floor": "floor (bare ASGI)", "naive": "naive FastAPI peer", "ours": "kdutils.serve"}


def serving_peers_table(summary: dict[str, Any]) -> Table | None:
    """``serving.peers``: the floor, the naive peer and our server at each number of requests in flight."""
    section = summary.get("serving")
    peers = section.get("peers") if isinstance(section, dict) else None
    if not isinstance(peers, dict):
        return None
    cells = []
    for server, label in PEER_LABELS.items():
        by_c = peers.get(server)
        if not isinstance(by_c, dict):
            continue
        for c, st in sorted(by_c.items(), key=lambda kv: int(kv[0]) if str(kv[0]).isdigit() else 0):
            if isinstance(st, dict):
                cells.append({"Server": label, "In flight": integer(int(c)) if str(c).isdigit() else str(c),
                              "p50 (ms)": ms(st.get("p50_ms")), "p95 (ms)": ms(st.get("p95_ms")),
                              "p99 (ms)": ms(st.get("p99_ms")), "Req/s": num(st.get("rps")),
                              "Errors": integer(st.get("errors"))})
    if not cells:
        return None
    model = plots.model_label(str(peers.get("model", "").split("@")[0])) if peers.get("model") else "the model"
    return _table("serving_peers", f"{model} ({peers.get('runtime', '—')}) over HTTP: a bare ASGI app on the same "
                  "uvicorn stack (the floor), the FastAPI app a user would write (the naive peer) and our service, "
                  "one process each, measured interleaved by a light keep-alive client in its own process.", cells)


def serving_side_tables(summary: dict[str, Any]) -> dict[str, Table]:
    """The HTTP overhead, the fault test and micro-batching, one small table each when recorded."""
    section = summary.get("serving")
    if not isinstance(section, dict):
        return {}
    specs = {
        "http_overhead": ({"floor": "floor: bare ASGI app, same model", "noop": "no-op endpoint (HTTP only)",
                           "predict": "prediction"},
                          "Cost of HTTP itself: the service's no-op endpoint and a prediction at one request in "
                          "flight, on one replica."),
        "fault_test": ({"before": "before the kill", "after": "after the kill"},
                       "Fault test: one replica killed halfway through a load run behind nginx."),
        "micro_batching": ({"off": "micro-batching off", "on": "micro-batching on"},
                           "Micro-batching on one replica at the highest concurrency, back to back with it off."),
    }
    out: dict[str, Table] = {}
    peers = serving_peers_table(summary)
    if peers is not None:
        out["serving_peers"] = peers
    for key, (windows, caption) in specs.items():
        value = section.get(key)
        rows = _window_rows(value, windows) if isinstance(value, dict) else []
        if rows:
            out[f"serving_{key}"] = records_table(f"serving_{key}", caption, rows)
    return out


def published_table(summary: dict[str, Any], manifest: dict[str, Any]) -> Table:
    """Published distillation results beside this run's (their task, teacher and gain vs ours)."""
    rows = []
    for r in anchors.DISTILLATION_RESULTS:
        rows.append({
            "Work": r.work,
            "Task": r.task,
            "Teacher": r.teacher,
            "Teacher acc. (%)": f"{r.teacher_accuracy:.1f}" if r.teacher_accuracy is not None else "—",
            "Student": r.student,
            "Baseline (%)": f"{r.baseline_accuracy:.1f}" if r.baseline_accuracy is not None else "—",
            "Distilled (%)": f"{r.distilled_accuracy:.1f}" if r.distilled_accuracy is not None else "—",
            "Gain (points)": points(r.gain_points) if r.gain_points is not None else "—",
            "Augmented": {True: "yes", False: "no", None: "—"}[r.augmentation],
        })
    models = _models(summary)
    dist = summary.get("distillation") if isinstance(summary.get("distillation"), dict) else {}
    t, b, d = (models.get(k) for k in ("teacher", "student_baseline", "student_distilled"))
    if isinstance(d, dict) or isinstance(b, dict):
        key = teacher_key(summary, manifest)
        data = summary.get("data") or {}
        params = manifest.get("parameters") or {}
        n_iter = (params.get("distill") or {}).get("n_iter")
        teacher = TEACHER_INFO[key]["label"] if key else "teacher"
        rows.append({
            "Work": f"This study ({manifest.get('profile') or 'this run'})",
            "Task": f"{DATASET_INFO.get(data.get('dataset', ''), {}).get('label', data.get('dataset', '—'))} test",
            "Teacher": teacher,
            "Teacher acc. (%)": pct_num((t or {}).get("accuracy")),
            "Student": "1-layer BiLSTM" + (f", {millions(d.get('params'))} params" if isinstance(d, dict) else ""),
            "Baseline (%)": pct_num((b or {}).get("accuracy_mean")),
            "Distilled (%)": pct_num((d or {}).get("accuracy_mean")),
            "Gain (points)": points(dist.get("gain_points_mean")) if dist else "not run",
            "Augmented": ("yes" if n_iter else "no") if _is_num(n_iter) else "—",
        })
    return _table("published", "Published distillation results beside this study. Accuracies of other "
                  "works are on SST-2 or other data and are not directly comparable.", rows)


def small_transformers_table() -> Table:
    rows = [{"Model": r.model, "Layers / hidden": r.shape, "Params": r.params, "SST-2 (%)": r.sst2,
             "Speed": r.speed or "—"} for r in anchors.SMALL_TRANSFORMERS]
    return _table("published_small", "Published small transformers on SST-2, for the depth and speed "
                  "comparison (separately pretrained or distilled, unlike our truncations).", rows)


def build_tables(summary: dict[str, Any], manifest: dict[str, Any] | None = None) -> dict[str, Table]:
    """Every table the paper can show, keyed by name; sections the run lacks are absent."""
    manifest = manifest or {}
    # Insertion order is the numbering: the order the paper shows them in.
    built = {
        "data_card": data_table(summary),
        "headline": headline_table(summary, manifest),
        "teachers": teacher_table(summary, manifest),
        "students": student_table(summary),
        "ablation": ablation_table(summary),
        "inference": inference_table(summary),
        "serving": serving_table(summary),
        **serving_side_tables(summary),
        "published": published_table(summary, manifest),
        "published_small": small_transformers_table(),
    }
    return {k: v for k, v in built.items() if v is not None}


def write_tables(tables: dict[str, Table], directory: Path) -> list[Path]:
    directory.mkdir(parents=True, exist_ok=True)
    written = []
    for table in tables.values():
        for suffix, text in ((".md", table.markdown()), (".tex", table.latex())):
            target = directory / f"{table.name}{suffix}"
            with atomic_path(target) as tmp:
                tmp.write_text(text, encoding="utf-8")
            written.append(target)
    return written


# --------------------------------------------------------------------------------------------
# The paper's context: everything the template may say, computed once here


@dataclass
class FigureRef:
    name: str
    number: int
    caption: str
    notebook: str
    path: str  # relative to the paper


@dataclass
class PaperFigures:
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


def _gain_summary(summary: dict[str, Any]) -> dict[str, Any] | None:
    dist = summary.get("distillation")
    if not isinstance(dist, dict) or not _is_num(dist.get("gain_points_mean")):
        return None
    ci = dist.get("gain_ci95") if isinstance(dist.get("gain_ci95"), list | tuple) else None
    p = dist.get("p_value")
    gain = float(dist["gain_points_mean"])
    n_seeds = _n_of(dist, "gain_points_per_seed", "seeds")
    significant = _is_num(p) and p < SIGNIFICANCE_LEVEL
    return {
        **dist,
        "gain": gain,
        "ci": ci,
        "p": p,
        "has_p": _is_num(p),
        "significant": significant,
        "n_seeds": n_seeds,
        # Every sentence that says "significant" says it with these words (paper and index).
        "verdict": f"{'significant' if significant else 'not significant'} at the {SIGNIFICANCE_LEVEL} level",
        "caveat": significance_caveat(significant, ci, n_seeds),
        "ci_excludes_zero": bool(ci) and (ci[0] > 0 or ci[1] < 0),
        "positive": gain > 0,
        "ablation": _ablation_context(records(dist.get("ablation"))),
        "test_text": _test_text(dist),
        # "paired bootstrap over the 853 test sentences (2000 resamples), ..." -> the part before "(".
        "test_name": (_test_text(dist) or "").split(" (")[0].split(",")[0].strip() or None,
        "test_sides": next((w for w in ("one-sided", "two-sided") if w in (_test_text(dist) or "")), None),
        "boot_ci": dist.get("bootstrap_gain_ci95_points") if isinstance(dist.get("bootstrap_gain_ci95_points"),
                                                                        list | tuple) else None,
        "mcnemar": _mcnemar_context(dist),
        "paired_seeds": isinstance(dist.get("gain_points_per_seed"), list),
    }


_ROW_LABEL_KEYS = ("setting", "variant", "name", "config", "label", "ablation", "model")
_ROW_ACC_KEYS = ("accuracy_mean", "accuracy", "val_accuracy_mean", "val_accuracy")


def _ablation_context(rows: list[dict[str, Any]]) -> dict[str, Any] | None:
    """The best ablation row by test accuracy, when the rows carry a label and an accuracy."""
    if not rows:
        return None
    label_key = next((k for k in _ROW_LABEL_KEYS if all(isinstance(r.get(k), str) for r in rows)), None)
    acc_key = next((k for k in _ROW_ACC_KEYS if all(_is_num(r.get(k)) for r in rows)), None)
    out: dict[str, Any] = {"n": len(rows), "best": None}
    if label_key and acc_key:
        best = max(rows, key=lambda r: r[acc_key])
        worst = min(rows, key=lambda r: r[acc_key])
        out.update(best={"label": best[label_key], "accuracy": best[acc_key]},
                   worst={"label": worst[label_key], "accuracy": worst[acc_key]})
    return out


def _test_text(dist: dict[str, Any]) -> str | None:
    """How the run computed its p-value, in words, from what the distillation section records."""
    parts = [str(dist[k]) for k in ("p_value_test", "test", "method") if isinstance(dist.get(k), str)]
    return parts[0] if parts else None


def _mcnemar_context(dist: dict[str, Any]) -> dict[str, Any] | None:
    """Per-seed exact McNemar tests: how many seeds show a significant difference."""
    rows = [r for r in dist.get("mcnemar") or [] if isinstance(r, dict) and _is_num(r.get("p_value"))]
    if not rows:
        return None
    return {"n": len(rows), "significant": sum(r["p_value"] < SIGNIFICANCE_LEVEL for r in rows),
            "test": dist.get("mcnemar_test") if isinstance(dist.get("mcnemar_test"), str) else None}


def _published_context(gain: dict[str, Any] | None, augmented: bool | None) -> dict[str, Any]:
    with_aug = anchors.published_gains(augmented=True)
    without_aug = anchors.published_gains(augmented=False)
    original = next(r for r in anchors.DISTILLATION_RESULTS if r.ref == "original")
    comparable = with_aug if augmented else without_aug
    out: dict[str, Any] = {
        "with_aug": {"min": min(with_aug), "max": max(with_aug)} if with_aug else None,
        "without_aug": {"min": min(without_aug), "max": max(without_aug)} if without_aug else None,
        "original": original,
        "tang": next(r for r in anchors.DISTILLATION_RESULTS if r.ref == "tang2019"),
        "small_transformers": anchors.SMALL_TRANSFORMERS,
        "results": [r for r in anchors.DISTILLATION_RESULTS if r.ref != "original"],
        "small_refs": list(dict.fromkeys(r.ref for r in anchors.SMALL_TRANSFORMERS)),
        "cpu": {f.ref: f for f in anchors.CPU_INFERENCE},
        "position": None,
    }
    if gain and comparable:
        lo, hi = min(comparable), max(comparable)
        out["position"] = "below" if gain["gain"] < lo else "above" if gain["gain"] > hi else "within"
        out["comparable"] = {"min": lo, "max": hi}
        ci = gain.get("ci")
        out["original_in_ci"] = bool(ci) and ci[0] <= original.gain_points <= ci[1]
    return out


def _depth_context(rows: list[dict[str, Any]]) -> dict[str, Any] | None:
    scored = [r for r in rows if _is_num(r.get("accuracy")) and r.get("layers") is not None]
    if len(scored) < 2:
        return None
    accs = [r["accuracy"] for r in scored]
    best = max(scored, key=lambda r: r["accuracy"])
    shallow, full = scored[0], scored[-1]
    return {
        "rows": scored,
        "monotone": all(b >= a for a, b in zip(accs, accs[1:], strict=False)),
        "best": best,
        "shallowest": shallow,
        "full": full,
        "drop_points": 100 * (full["accuracy"] - shallow["accuracy"]),
    }


def _speed_context(summary: dict[str, Any]) -> dict[str, Any] | None:
    """Teacher vs student latency in eager PyTorch, and what ONNX Runtime changes."""
    by: dict[tuple[str, str], dict[str, Any]] = {}
    for row in inference_rows(summary):
        if _is_num(row.get("latency_ms_p50")):
            by[(str(row.get("model")), str(row.get("runtime", "torch")))] = row
    student_name = next((n for n in ("student_distilled", "student_baseline") if (n, "torch") in by), None)
    teacher, student = by.get(("teacher", "torch")), by.get((student_name, "torch")) if student_name else None
    if not teacher or not student or student["latency_ms_p50"] <= 0:
        return None
    out: dict[str, Any] = {
        "student_name": student_name,
        "teacher_ms": teacher["latency_ms_p50"], "student_ms": student["latency_ms_p50"],
        "ratio": teacher["latency_ms_p50"] / student["latency_ms_p50"],
        "teacher_tp": teacher.get(_throughput_key(teacher) or ""),
        "student_tp": student.get(_throughput_key(student) or ""),
        "runtimes": {},
    }
    for rt in ("onnx", "onnx-int8"):
        row = by.get(("teacher", rt))
        if row and row["latency_ms_p50"] > 0:
            out["runtimes"][rt] = {
                "label": RUNTIME_LABELS[rt], "teacher_ms": row["latency_ms_p50"],
                "speedup": teacher["latency_ms_p50"] / row["latency_ms_p50"],
                "agreement": row.get("agreement_with_eager"), "size_mb": row.get("size_mb"),
                "eager_size_mb": teacher.get("size_mb"),
            }
    return out


def _peers_context(peers: Any, overhead: dict[str, Any]) -> dict[str, Any] | None:
    """Ratios the paper states about serving.peers (None when the run has no peer comparison)."""
    if not isinstance(peers, dict) or not all(isinstance(peers.get(k), dict) for k in ("floor", "naive", "ours")):
        return None
    cs = sorted((c for c in peers["ours"] if str(c).isdigit() and c in peers["naive"] and c in peers["floor"]), key=int)
    if not cs:
        return None
    low, high = cs[0], cs[-1]
    f, n, o = (peers[k][low] for k in ("floor", "naive", "ours"))
    runtimes = overhead.get("runtimes") if isinstance(overhead.get("runtimes"), dict) else {}
    in_process = (runtimes.get(peers.get("model")) or {}).get("in_process_p50_ms")
    if not all(_is_num(x) for x in (f.get("p50_ms"), n.get("p50_ms"), o.get("p50_ms"))):
        return None
    return {"model": peers.get("model"), "low": int(low), "high": int(high), "floor_ms": f["p50_ms"],
            "naive_ms": n["p50_ms"], "ours_ms": o["p50_ms"], "in_process_ms": in_process,
            "http_ms": o["p50_ms"] - in_process if _is_num(in_process) else None,
            "p50_vs_naive": o["p50_ms"] / n["p50_ms"],
            "rps_vs_naive": peers["ours"][high]["rps"] / peers["naive"][high]["rps"]
            if _is_num(peers["naive"][high].get("rps")) and peers["naive"][high]["rps"] else None,
            "ours_rps": peers["ours"][high].get("rps"), "naive_rps": peers["naive"][high].get("rps")}


def _serving_context(summary: dict[str, Any]) -> dict[str, Any] | None:
    """Replicas behind nginx vs one replica at the highest shared concurrency; the fault test."""
    rows = serving_rows(summary)
    section = summary.get("serving") if isinstance(summary.get("serving"), dict) else {}
    if not rows and not section:
        return None
    out: dict[str, Any] = {"balancer": [], "fault": None, "fault_skipped": None, "overhead": None, "micro": None,
                           "errors": sum(int(r.get("errors") or 0) for r in rows),
                           "setups": sorted({str(r.get("setup")) for r in rows if r.get("setup")})}
    index = {(r.get("setup"), r.get("model"), r.get("concurrency")): r for r in rows}
    for model in dict.fromkeys(r.get("model") for r in rows):
        shared = sorted(c for (s, m, c) in index if s == "1_replica" and m == model
                        and ("N_replicas_nginx", m, c) in index and isinstance(c, int))
        if not shared:
            continue
        one, many = index[("1_replica", model, shared[-1])], index[("N_replicas_nginx", model, shared[-1])]
        if _is_num(one.get("rps")) and _is_num(many.get("rps")) and one["rps"] > 0:
            out["balancer"].append({"model": model, "label": plots.model_label(str(model)),
                                    "concurrency": shared[-1], "one_rps": one["rps"], "many_rps": many["rps"],
                                    "ratio": many["rps"] / one["rps"]})
    fault = section.get("fault_test")
    if isinstance(fault, dict) and _is_num(fault.get("requests")):
        out["fault"] = fault
    elif isinstance(fault, dict) and isinstance(fault.get("skipped"), str):
        out["fault_skipped"] = fault["skipped"]
    oh = section.get("http_overhead")
    if isinstance(oh, dict) and all(isinstance(oh.get(k), dict) and _is_num(oh[k].get("p50_ms"))
                                    for k in ("noop", "predict")):
        out["overhead"] = {"noop_ms": oh["noop"]["p50_ms"], "predict_ms": oh["predict"]["p50_ms"],
                           "model": oh.get("model"), "in_process_ms": oh.get("in_process_p50_ms"),
                           "method": oh.get("method"),
                           "floor_ms": (oh.get("floor") or {}).get("p50_ms")}
    out["peers"] = _peers_context(section.get("peers"), oh if isinstance(oh, dict) else {})
    mb = section.get("micro_batching")
    if isinstance(mb, dict) and all(isinstance(mb.get(k), dict) and _is_num(mb[k].get("rps")) for k in ("off", "on")):
        out["micro"] = {"window_ms": mb.get("micro_batching_ms"), "users": mb.get("users"), "model": mb.get("model"),
                        "off_rps": mb["off"]["rps"], "on_rps": mb["on"]["rps"],
                        "off_p95": mb["off"].get("p95_ms"), "on_p95": mb["on"].get("p95_ms")}
    settings = section.get("settings")
    out["settings"] = settings if isinstance(settings, dict) else {}
    return out


def build_context(
    summary: dict[str, Any],
    manifest: dict[str, Any],
    tables: dict[str, Table],
    figures: PaperFigures,
    profile: str,
) -> dict[str, Any]:
    models = _models(summary)
    params = manifest.get("parameters") or {}
    key = teacher_key(summary, manifest)
    teacher = models.get("teacher") if isinstance(models.get("teacher"), dict) else None
    data = summary.get("data") if isinstance(summary.get("data"), dict) else None
    gain = _gain_summary(summary)
    distill_params = params.get("distill") or {}
    # What the distillation notebook recorded wins over the profile's parameters.
    recorded = summary.get("distillation") if isinstance(summary.get("distillation"), dict) else {}
    aug = {k: recorded.get(k, distill_params.get(k)) for k in ("n_iter", "p_mask", "p_replace", "p_ngram")}
    aug["unlabelled"] = recorded.get("unlabelled", distill_params.get("unlabelled"))
    aug["unlabelled_source"] = recorded.get("unlabelled_source")
    counts = recorded.get("transfer_set")
    aug["counts"] = {k: v for k, v in counts.items() if _is_num(v)} if isinstance(counts, dict) else None
    n_iter = aug["n_iter"]
    augmented = bool(n_iter) if _is_num(n_iter) else None
    students = {n: models[n] for n in STUDENT_ORDER if isinstance(models.get(n), dict)}
    baseline, distilled = students.get("student_baseline"), students.get("student_distilled")
    n_seeds = next((len(m["per_seed"]) for m in (baseline, distilled)
                    if m and isinstance(m.get("per_seed"), list)), None)
    if n_seeds is None and isinstance(recorded.get("seeds"), list):
        n_seeds = len(recorded["seeds"])
    gap = None
    if teacher and baseline and distilled and gain and _is_num(teacher.get("accuracy")):
        teacher_gap = 100 * (teacher["accuracy"] - baseline["accuracy_mean"])
        gap = {"teacher_minus_baseline": teacher_gap,
               "closed_share": gain["gain"] / teacher_gap if teacher_gap > 0 else None,
               "teacher_minus_distilled": 100 * (teacher["accuracy"] - distilled["accuracy_mean"])}

    table_numbers = {name: i + 1 for i, name in enumerate(tables)}
    refs_used: list[str] = []

    def cite(*refs: str) -> str:
        """An author-year citation; also collects the reference list in order of first use."""
        parts = []
        for r in refs:
            if r not in anchors.REFERENCES:
                raise ReportError(f"template cites unknown reference {r!r}")
            if r not in refs_used:
                refs_used.append(r)
            parts.append(f"[{refs_used.index(r) + 1}]")
        return "".join(parts)

    def table(name: str) -> str:
        t = tables.get(name)
        if t is None:
            return f"\n*Table {name.replace('_', ' ')}: not run in this profile.*\n"
        return f"\n**Table {table_numbers[name]}.** {t.caption}\n\n{t.markdown()}\n"

    def table_ref(name: str) -> str:
        return f"Table {table_numbers[name]}" if name in tables else f"the {name.replace('_', ' ')} table (not run)"

    def figure(name: str) -> str:
        f = figures.available.get(name)
        if f is None:
            spec = next(s for s in figures.missing if s.name == name)
            return (f"\n*Figure “{name}” (notebook {spec.notebook}) was not produced by this run and is "
                    f"left out.*\n")
        return f"\n![{f.caption}]({f.path})\n\n**Figure {f.number}.** {f.caption}\n"

    def figures_of(section: str) -> str:
        """The section's figures that exist, then one note naming those this run did not produce."""
        shown = [figure(n) for n in FIGURE_SECTIONS[section] if n in figures.available]
        absent = [s for s in figures.missing if s.section == section]
        if absent:
            names = ", ".join(f"“{s.name}” (notebook {s.notebook})" for s in absent)
            plural = "s" if len(absent) > 1 else ""
            shown.append(f"\n*Figure{plural} not produced by this run and left out: {names}.*\n")
        return "\n".join(shown)

    def fig_ref(name: str) -> str:
        f = figures.available.get(name)
        return f"Figure {f.number}" if f else ""

    return {
        "title": paper_title(summary, manifest),
        "profile": profile,
        "description": params.get("description") or "",
        "manifest": manifest,
        "params": params,
        "git": manifest.get("git") or {},
        "machine": {"cpu": manifest.get("cpu"), "cores": manifest.get("cores"),
                    "python": manifest.get("python"), "torch": (manifest.get("packages") or {}).get("torch"),
                    "transformers": (manifest.get("packages") or {}).get("transformers")},
        "data": data,
        "dataset": DATASET_INFO.get((data or {}).get("dataset", ""), None),
        "subsampled": any((params.get("data") or {}).get(k) for k in ("max_train", "max_val", "max_test")),
        "teacher": teacher,
        "teacher_key": key,
        "teacher_info": TEACHER_INFO.get(key) if key else None,
        "depth": _depth_context(depth_rows(summary, manifest)),
        "depths": [r for r in depth_rows(summary, manifest) if r["name"] != "teacher"],
        "students": students,
        "baseline": baseline,
        "distilled": distilled,
        "original_student": students.get("student_original"),
        "tfidf": students.get("tfidf_logreg"),
        "n_seeds": n_seeds,
        "gain": gain,
        "gap": gap,
        "augmented": augmented,
        "aug": aug,
        "student_params": params.get("student") or {},
        "student_run": summary.get("student") if isinstance(summary.get("student"), dict) else {},
        "distill_params": distill_params,
        "teacher_params": params.get("teacher") or {},
        "deploy_params": params.get("deploy") or {},
        "inference": summary.get("inference") or None,
        "serving": summary.get("serving") or None,
        "speed": _speed_context(summary),
        "serve": _serving_context(summary),
        "bench_machine": (summary.get("inference") or {}).get("machine") if isinstance(summary.get("inference"), dict) else None,
        "published": _published_context(gain, augmented),
        "alpha_level": SIGNIFICANCE_LEVEL,
        "min_seeds": MIN_SEEDS_FOR_INTERVAL,
        "balancer_gain": BALANCER_GAIN,
        "tables": tables,
        "figures": figures,
        "table": table,
        "table_ref": table_ref,
        "figure": figure,
        "figures_of": figures_of,
        "fig_ref": fig_ref,
        "cite": cite,
        "references": lambda: [anchors.REFERENCES[r] for r in refs_used],
        "model_label": plots.model_label,
        "student_phrase": lambda name: STUDENT_PHRASES.get(name, plots.model_label(name)),
    }


@functools.lru_cache(maxsize=1)
def _environment() -> jinja2.Environment:
    # Cached: compiling the templates costs more than rendering them.
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(TEMPLATE_DIR),
        undefined=jinja2.StrictUndefined,
        autoescape=jinja2.select_autoescape(enabled_extensions=("html.j2",), default_for_string=False),
        keep_trailing_newline=True,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters.update(FILTERS)
    return env


def render_markdown(context: dict[str, Any]) -> str:
    text = _environment().get_template("paper.md.j2").render(**context)
    # Template logic leaves runs of blank lines; Markdown does not need more than one.
    return re.sub(r"\n{3,}", "\n\n", text).strip() + "\n"


# --------------------------------------------------------------------------------------------
# Markdown -> standalone HTML


def pandoc_version() -> str | None:
    if not PANDOC.exists():
        return None
    try:
        out = subprocess.run([str(PANDOC), "--version"], capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired):
        return None
    first = out.stdout.splitlines()[0] if out.returncode == 0 and out.stdout else ""
    return first.split()[-1] if first else None


def engine_label(engine: str) -> str:
    """The engine name and version recorded in the HTML, so ``check`` compares like with like."""
    if engine == "pandoc":
        return f"pandoc {pandoc_version()}"
    import markdown

    return f"python-markdown {markdown.__version__}"


def choose_engine(engine: str = "auto") -> str:
    if engine not in ("auto", "pandoc", "python"):
        raise ReportError(f"engine must be auto, pandoc or python, got {engine!r}")
    if engine == "pandoc" and pandoc_version() is None:
        raise ReportError(f"engine pandoc asked for, but {PANDOC} is not usable")
    if engine == "auto":
        return "pandoc" if pandoc_version() is not None else "python"
    return engine


def _data_uri(path: Path) -> str:
    mime = {".png": "image/png", ".svg": "image/svg+xml", ".jpg": "image/jpeg", ".jpeg": "image/jpeg"}
    kind = mime.get(path.suffix.lower(), "application/octet-stream")
    return f"data:{kind};base64,{base64.b64encode(path.read_bytes()).decode('ascii')}"


def _inline_images(body: str, base: Path) -> str:
    def swap(m: re.Match[str]) -> str:
        src = html.unescape(m.group(2))
        target = base / src
        if src.startswith(("data:", "http:", "https:")) or not target.is_file():
            return m.group(0)
        return f"{m.group(1)}{_data_uri(target)}{m.group(3)}"

    return re.sub(r'(<img\b[^>]*?\bsrc=")([^"]+)(")', swap, body)


def markdown_to_html(md_text: str, base: Path, title: str, engine: str) -> str:
    """A standalone HTML page: CSS inlined, images next to ``base`` embedded as data URIs."""
    css = (TEMPLATE_DIR / "paper.css").read_text(encoding="utf-8")
    label = engine_label(engine)
    if engine == "pandoc":
        with tempfile.TemporaryDirectory() as tmp:
            css_path = Path(tmp) / "paper.css"
            css_path.write_text(css, encoding="utf-8")
            header = Path(tmp) / "header.html"
            header.write_text(f'<meta name="{ENGINE_META}" content="{html.escape(label)}">\n', encoding="utf-8")
            # pandoc 2.19+ spells it --embed-resources; older versions --self-contained.
            help_text = subprocess.run([str(PANDOC), "--help"], capture_output=True, text=True, timeout=30).stdout
            embed = ["--embed-resources", "--standalone"] if "--embed-resources" in help_text else ["--self-contained"]
            cmd = [str(PANDOC), "-f", "markdown-implicit_figures-subscript-superscript", "-t", "html5", *embed,
                   "--metadata", f"pagetitle={title}", "--css", str(css_path), "--include-in-header", str(header),
                   "--resource-path", str(base)]
            out = subprocess.run(cmd, input=md_text, capture_output=True, text=True, timeout=300, cwd=base)
            if out.returncode != 0:
                raise ReportError(f"pandoc failed: {out.stderr.strip()[:2000]}")
            return out.stdout
    import markdown

    body = markdown.markdown(md_text, extensions=["tables", "toc", "sane_lists", "fenced_code", "attr_list"],
                             output_format="html")
    body = _inline_images(body, base)
    page = _environment().get_template("paper.html.j2").render(title=title, css=css, body=body,
                                                               engine_meta=ENGINE_META, engine=label)
    return page


# --------------------------------------------------------------------------------------------
# Render, publish, check


@dataclass
class RenderResult:
    out_dir: Path
    paper_md: Path
    paper_html: Path
    tables: list[Path]
    figures: list[str]
    missing_figures: list[str]
    engine: str


def _load_run_files(run_root: Path) -> tuple[dict[str, Any], dict[str, Any]]:
    summary_path = run_root / "summary.json"
    if not summary_path.exists():
        raise ReportError(f"{summary_path} does not exist: run the study first (python -m kdutils.pipeline run)")
    manifest_path = run_root / "manifest.json"
    return read_json(summary_path), (read_json(manifest_path) if manifest_path.exists() else {})


def profile_of(run_root: Path, manifest: dict[str, Any]) -> str:
    return str(manifest.get("profile") or run_root.resolve().name)


def paper_title(summary: dict[str, Any], manifest: dict[str, Any]) -> str:
    key = teacher_key(summary, manifest)
    teacher = TEACHER_INFO[key]["label"] if key else "a transformer"
    dataset = DATASET_INFO.get((summary.get("data") or {}).get("dataset", ""), {}).get("label", "sentiment data")
    return f"Distilling {teacher} into a BiLSTM for sentiment on {dataset}: a reproducible study"


def render_from(
    summary: dict[str, Any],
    manifest: dict[str, Any],
    figures_src: Path | None,
    out_dir: Path,
    profile: str,
    engine: str = "auto",
) -> RenderResult:
    """Render tables, paper.md and paper.html into ``out_dir`` from already-loaded run files."""
    engine = choose_engine(engine)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    figures = collect_figures(figures_src)
    fig_dir = out_dir / "figures"
    if figures_src is not None and figures_src.is_dir() and figures_src.resolve() != fig_dir.resolve():
        fig_dir.mkdir(exist_ok=True)
        for name in figures.names():
            for ext in ("png", "pdf"):
                src = figures_src / f"{name}.{ext}"
                if src.exists():
                    with atomic_path(fig_dir / src.name) as tmp:
                        shutil.copyfile(src, tmp)
    summary = guard_intervals(summary)
    tables = build_tables(summary, manifest)
    table_paths = write_tables(tables, out_dir / "tables")
    context = build_context(summary, manifest, tables, figures, profile)
    md_text = render_markdown(context)
    paper_md = out_dir / "paper.md"
    with atomic_path(paper_md) as tmp:
        tmp.write_text(md_text, encoding="utf-8")
    html_text = markdown_to_html(md_text, out_dir, paper_title(summary, manifest), engine)
    paper_html = out_dir / "paper.html"
    with atomic_path(paper_html) as tmp:
        tmp.write_text(html_text, encoding="utf-8")
    return RenderResult(out_dir, paper_md, paper_html, table_paths, figures.names(),
                        [s.name for s in figures.missing], engine)


def _guard_published(out_dir: Path, profile: str) -> None:
    paper_root = (REPO_ROOT / "paper").resolve()
    target = out_dir.resolve()
    if profile not in PUBLISH_DIRS and (target == paper_root or paper_root in target.parents):
        raise ReportError(f"profile {profile!r} is not published: render it into outputs/{profile}/paper/, "
                          f"not into {out_dir}")


def render(run_root: str | Path, out_dir: str | Path | None = None, engine: str = "auto") -> RenderResult:
    """Render a run's paper and tables into ``out_dir`` (default ``<run>/paper/``)."""
    run_root = Path(run_root)
    summary, manifest = _load_run_files(run_root)
    profile = profile_of(run_root, manifest)
    target = Path(out_dir) if out_dir is not None else run_root / "paper"
    _guard_published(target, profile)
    return render_from(summary, manifest, run_root / "figures", target, profile, engine)


def render_run(run_root: str | Path) -> RenderResult:
    """What the pipeline calls after a run: the paper inside the run, ``<run>/paper/``."""
    return render(run_root)


def _swap_into_place(src: Path, dst: Path) -> None:
    """Move ``src`` (file or folder) onto ``dst``, replacing it; a folder is swapped in one rename."""
    dst.parent.mkdir(parents=True, exist_ok=True)
    if src.is_dir():
        old = dst.with_name(f".{dst.name}.old-{os.getpid()}")
        if dst.exists():
            os.replace(dst, old)
        os.replace(src, dst)
        shutil.rmtree(old, ignore_errors=True)
    else:
        os.replace(src, dst)


def publish_dir(profile: str, repo_root: Path = REPO_ROOT) -> Path:
    if profile not in PUBLISH_DIRS:
        raise ReportError(f"profile {profile!r} is not published (only {', '.join(PUBLISH_DIRS)}); "
                          f"use: python -m kdutils.report render --run outputs/{profile}")
    return repo_root / PUBLISH_DIRS[profile]


def publish(run_root: str | Path, dest: str | Path | None = None, engine: str = "auto") -> RenderResult:
    """Copy a finished run's figures, tables, summary and manifest into the paper folder and render.

    Trains nothing. Only the entries this writes are replaced (``paper/mpnet-12/`` survives a
    publish of the default run).
    """
    run_root = Path(run_root)
    summary, manifest = _load_run_files(run_root)
    profile = profile_of(run_root, manifest)
    target = Path(dest) if dest is not None else publish_dir(profile)
    target.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=target, prefix=".publish-") as tmp:
        stage = Path(tmp)
        result = render_from(summary, manifest, run_root / "figures", stage, profile, engine)
        run_tables = run_root / "tables"
        if run_tables.is_dir() and any(run_tables.iterdir()):
            shutil.copytree(run_tables, stage / "tables" / "notebooks",
                            ignore=shutil.ignore_patterns(".*"))
        for name in ("summary.json", "manifest.json"):
            if (run_root / name).exists():
                shutil.copyfile(run_root / name, stage / name)
        (stage / "figures").mkdir(exist_ok=True)
        for entry in ("figures", "tables", "summary.json", "manifest.json", "paper.md", "paper.html"):
            if (stage / entry).exists():
                _swap_into_place(stage / entry, target / entry)
    return RenderResult(target, target / "paper.md", target / "paper.html",
                        sorted((target / "tables").glob("*.*")), result.figures, result.missing_figures,
                        result.engine)


def _html_engine_of(path: Path) -> str | None:
    if not path.exists():
        return None
    m = re.search(rf'<meta name="{ENGINE_META}" content="([^"]*)"', path.read_text(encoding="utf-8"))
    return html.unescape(m.group(1)) if m else None


def check(published: str | Path, engine: str | None = None) -> tuple[list[str], list[str]]:
    """Re-render a published folder from its own summary/manifest and diff.

    Returns ``(differences, notes)``; no differences means the committed text and tables are
    exactly what the committed ``summary.json`` gives.
    """
    published = Path(published)
    summary_path = published / "summary.json"
    if not summary_path.exists():
        raise ReportError(f"{summary_path} does not exist: nothing to check against")
    summary = read_json(summary_path)
    manifest = read_json(published / "manifest.json") if (published / "manifest.json").exists() else {}
    profile = str(manifest.get("profile") or "default")
    notes: list[str] = []
    recorded = _html_engine_of(published / "paper.html")
    if engine is None:
        engine = "pandoc" if recorded and recorded.startswith("pandoc") and pandoc_version() else "python"
    compare_html = recorded is not None and recorded == engine_label(choose_engine(engine))
    if not compare_html:
        notes.append(f"paper.html not compared: it was written by {recorded or 'an unknown engine'}, "
                     f"this machine renders with {engine_label(choose_engine(engine))}")
    diffs: list[str] = []
    with tempfile.TemporaryDirectory() as tmp:
        fresh = Path(tmp)
        render_from(summary, manifest, published / "figures", fresh, profile, engine)
        names = ["paper.md", *(["paper.html"] if compare_html else [])]
        tables = {p.name for d in (fresh, published) for p in (d / "tables").glob("*.md")}
        tables |= {p.name for d in (fresh, published) for p in (d / "tables").glob("*.tex")}
        names += [f"tables/{t}" for t in sorted(tables)]
        for name in names:
            a, b = published / name, fresh / name
            if not a.exists() or not b.exists():
                diffs.append(f"{name}: {'missing in the published folder' if not a.exists() else 'no longer rendered'}")
                continue
            old, new = a.read_text(encoding="utf-8"), b.read_text(encoding="utf-8")
            if old != new:
                delta = difflib.unified_diff(old.splitlines(), new.splitlines(), f"published/{name}",
                                             f"regenerated/{name}", lineterm="", n=1)
                diffs.append("\n".join(list(delta)[:40]))
    return diffs, notes


# --------------------------------------------------------------------------------------------
# The HTML index of a run


@dataclass
class Link:
    label: str
    href: str


def _rel(path: Path, start: Path) -> str:
    return Path(os.path.relpath(path, start)).as_posix()


# A figure this much wider than tall, or this wide in pixels (a double-column figure at the
# 200 dpi of RunDir.save_figure), spans the index's full width: in a grid cell its labels
# would be too small to read.
WIDE_FIGURE_RATIO = 1.6
WIDE_FIGURE_PIXELS = 1000


def png_size(path: Path) -> tuple[int, int] | None:
    """``(width, height)`` in pixels from a PNG's IHDR chunk; ``None`` if the file is not a PNG."""
    with open(path, "rb") as fh:
        head = fh.read(24)
    if len(head) < 24 or head[:8] != b"\x89PNG\r\n\x1a\n" or head[12:16] != b"IHDR":
        return None
    return int.from_bytes(head[16:20], "big"), int.from_bytes(head[20:24], "big")


@dataclass
class IndexTable:
    """A table the index shows inline: its caption, its HTML and where its source files are."""

    name: str
    caption: str
    html: str
    sources: list[Link]


_NUM_CELL = ' class="num"'


def _table_html(frame: pd.DataFrame) -> str:
    numeric = [c for c in frame.columns if frame[c].map(_looks_numeric).all()]
    head = "".join(f"<th>{html.escape(str(c))}</th>" for c in frame.columns)
    rows = []
    for _, row in frame.iterrows():
        cells = "".join(f"<td{_NUM_CELL if c in numeric else ''}>{html.escape(str(row[c]))}</td>" for c in frame.columns)
        rows.append(f"<tr>{cells}</tr>")
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(rows)}</tbody></table>"


def _notebook_table_html(md_text: str) -> str:
    """A notebook's Markdown table (``RunDir.save_table``) as HTML; the text is escaped first."""
    import markdown

    return markdown.markdown(html.escape(md_text, quote=False), extensions=["tables"], output_format="html")


def index_tables(run_root: Path, summary: dict[str, Any], manifest: dict[str, Any]) -> list[IndexTable]:
    """The paper's tables, then the notebooks' own tables, as HTML for the index page.

    Paper tables are built from ``summary`` (already passed through :func:`guard_intervals`), as
    in the paper; notebook tables are the Markdown files under ``<run>/tables/``. Each entry
    links its Markdown and LaTeX sources when they exist.
    """
    reports = run_root / "reports"
    out = []
    paper_tables = run_root / "paper" / "tables"
    for name, table in build_tables(summary, manifest).items():
        if name in ("published", "published_small"):
            continue  # literature tables: the same on every run, read them in the paper
        sources = [Link(ext, _rel(paper_tables / f"{name}.{ext}", reports)) for ext in ("md", "tex")
                   if (paper_tables / f"{name}.{ext}").exists()]
        out.append(IndexTable(name, table.caption, _table_html(table.frame), sources))
    nb_tables = run_root / "tables"
    for md in sorted(nb_tables.glob("*.md")) if nb_tables.is_dir() else []:
        tex = md.with_suffix(".tex")
        caption = ""
        if tex.exists():
            m = re.search(r"\\caption\{(.*?)\}\n", tex.read_text(encoding="utf-8"))
            caption = m.group(1).replace("\\", "") if m else ""
        sources = [Link(p.suffix[1:], _rel(p, reports)) for p in (md, tex) if p.exists()]
        out.append(IndexTable(f"notebooks/{md.stem}", caption or md.stem.replace("_", " ").capitalize() + ".",
                              _notebook_table_html(md.read_text(encoding="utf-8")), sources))
    return out


def index_context(run_root: Path) -> dict[str, Any]:
    reports = run_root / "reports"
    summary = read_json(run_root / "summary.json") if (run_root / "summary.json").exists() else {}
    summary = guard_intervals(summary)
    manifest = read_json(run_root / "manifest.json") if (run_root / "manifest.json").exists() else {}
    missing: list[str] = []
    nb_records = manifest.get("notebooks") or {}
    found = {p.name.removesuffix(".reader.html").removesuffix(".html")
             for p in reports.glob("[0-9][0-9]_*.html")} if reports.is_dir() else set()
    notebooks = []
    for name in sorted(set(nb_records) | found):
        rec = nb_records.get(name) or {}
        code, reader = reports / f"{name}.html", reports / f"{name}.reader.html"
        links = [Link(label, _rel(p, reports)) for label, p in (("with code", code), ("reader", reader))
                 if p.exists()]
        if not code.exists():
            missing.append(f"Notebook {name}: no HTML report with code (status: {rec.get('status', 'not run')}).")
        if not reader.exists():
            missing.append(f"Notebook {name}: no reader's HTML report (status: {rec.get('status', 'not run')}).")
        notebooks.append({"name": name, "status": rec.get("status", "not in manifest"),
                          "seconds": seconds(rec.get("seconds")) if rec.get("seconds") is not None else "—",
                          "links": links})
    if not notebooks:
        missing.append("No notebook has been run for this profile yet (no reports/NN_name.html).")

    files = []
    for label, path in (("Paper (HTML)", run_root / "paper" / "paper.html"),
                        ("Paper (Markdown)", run_root / "paper" / "paper.md"),
                        ("Manifest (parameters, versions, input hashes)", run_root / "manifest.json"),
                        ("Summary of results (summary.json)", run_root / "summary.json")):
        if path.exists():
            files.append(Link(label, _rel(path, reports)))
        else:
            missing.append(f"{label}: {path.relative_to(run_root)} does not exist"
                           + (f" (render it: python -m kdutils.report render --run {run_root})"
                              if "Paper" in label else "") + ".")
    tables = index_tables(run_root, summary, manifest)

    fig_dir = run_root / "figures"
    figures = []
    order = {spec.name: i for i, spec in enumerate(PAPER_FIGURES)}
    captions = {spec.name: spec.caption for spec in PAPER_FIGURES}
    pngs = sorted(fig_dir.glob("*.png"), key=lambda p: (order.get(p.stem, len(order)), p.stem)) if fig_dir.is_dir() else []
    for png in pngs:
        pdf = png.with_suffix(".pdf")
        size = png_size(png)
        figures.append({"name": png.stem, "src": _rel(png, reports),
                        "caption": captions.get(png.stem, png.stem.replace("_", " ").capitalize() + "."),
                        "wide": bool(size) and (size[0] >= WIDE_FIGURE_RATIO * size[1]
                                                or size[0] >= WIDE_FIGURE_PIXELS),
                        "pdf": _rel(pdf, reports) if pdf.exists() else None})
    present = {f["name"] for f in figures}
    for spec in PAPER_FIGURES:
        if spec.name not in present:
            missing.append(f"Figure {spec.name} (from notebook {spec.notebook}) is not in figures/.")

    headline = headline_rows(summary, manifest)
    if not headline:
        missing.append("No results in summary.json yet: the headline table is empty.")
    gain = _gain_summary(summary)
    return {
        "title": f"Run {profile_of(run_root, manifest)}",
        "profile": profile_of(run_root, manifest),
        "description": (manifest.get("parameters") or {}).get("description", ""),
        "manifest": manifest,
        "headline": headline,
        "headline_columns": list(headline[0]) if headline else [],
        "gain": gain,
        "alpha_level": SIGNIFICANCE_LEVEL,
        "min_seeds": MIN_SEEDS_FOR_INTERVAL,
        "notebooks": notebooks,
        "files": files,
        "tables": tables,
        "figures": figures,
        "missing": missing,
        "css": (TEMPLATE_DIR / "index.css").read_text(encoding="utf-8"),
    }


def write_index(run_root: str | Path) -> Path:
    """Write ``<run>/reports/index.html`` linking only files that exist."""
    run_root = Path(run_root)
    if not run_root.is_dir():
        raise ReportError(f"{run_root} is not a run directory")
    reports = run_root / "reports"
    reports.mkdir(parents=True, exist_ok=True)
    page = _environment().get_template("index.html.j2").render(**index_context(run_root))
    target = reports / "index.html"
    with atomic_path(target) as tmp:
        tmp.write_text(page, encoding="utf-8")
    return target


# --------------------------------------------------------------------------------------------
# Link checking (used by the tests and by ``index``'s callers)


def local_links(html_text: str) -> list[str]:
    """``href``/``src`` targets of a page that point at local files (no anchors, data: or web URLs)."""
    from html.parser import HTMLParser

    found: list[str] = []

    class _Parser(HTMLParser):
        def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
            for name, value in attrs:
                if name in ("href", "src") and value:
                    found.append(value)

    _Parser().feed(html_text)
    return [v for v in found if not v.startswith(("#", "data:", "http:", "https:", "mailto:"))]


def broken_links(page: Path) -> list[str]:
    base = page.parent
    return [href for href in local_links(page.read_text(encoding="utf-8"))
            if not (base / href.split("#", 1)[0]).exists()]


# --------------------------------------------------------------------------------------------
# CLI


def main(argv: Iterable[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m kdutils.report", description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    p_render = sub.add_parser("render", help="tables, paper.md and paper.html of a run")
    p_render.add_argument("--run", required=True, help="run directory, e.g. outputs/smoke")
    p_render.add_argument("--out", default=None, help="output folder (default <run>/paper)")
    p_render.add_argument("--engine", default="auto", choices=["auto", "pandoc", "python"])
    p_pub = sub.add_parser("publish", help="copy a run's results into paper/ and render there")
    p_pub.add_argument("--run", required=True)
    p_pub.add_argument("--dest", default=None, help="override the publish folder")
    p_pub.add_argument("--engine", default="auto", choices=["auto", "pandoc", "python"])
    p_index = sub.add_parser("index", help="write <run>/reports/index.html")
    p_index.add_argument("--run", required=True)
    p_check = sub.add_parser("check", help="re-render a published folder and diff it")
    p_check.add_argument("--published", default=str(REPO_ROOT / "paper"))
    p_check.add_argument("--engine", default=None, choices=["pandoc", "python"])
    args = parser.parse_args(list(argv) if argv is not None else None)
    try:
        if args.command == "render":
            res = render(args.run, args.out, args.engine)
            print(f"rendered {res.paper_md} and {res.paper_html} ({res.engine}); "
                  f"{len(res.tables)} table files, {len(res.figures)} figures")
            for name in res.missing_figures:
                print(f"  figure not produced by this run, left out: {name}")
        elif args.command == "publish":
            res = publish(args.run, args.dest, args.engine)
            print(f"published {args.run} into {res.out_dir}")
            for name in res.missing_figures:
                print(f"  figure not produced by this run, left out: {name}")
            # What was just written must be what its own summary.json renders to.
            diffs, _ = check(res.out_dir)
            if diffs:
                print("the published folder does not re-render identically:\n" + "\n".join(diffs))
                return 1
        elif args.command == "index":
            print(f"wrote {write_index(args.run)}")
        elif args.command == "check":
            diffs, notes = check(args.published, args.engine)
            for note in notes:
                print(f"note: {note}")
            if diffs:
                print(f"{len(diffs)} file(s) differ from what {args.published}/summary.json renders to:")
                for d in diffs:
                    print(d)
                return 1
            print(f"{args.published}: tables and text match summary.json")
    except ReportError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
