"""Numbers, intervals and headers as the paper prints them (also the template's filters)."""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from typing import Any

import pandas as pd

from kdutils import plots
from kdutils.study.escaping import markdown_text
from kdutils.study.specs import LOSSES


def is_num(x: Any) -> bool:
    """A real number (int or float, not a bool, not NaN): what a formatter can print."""
    return isinstance(x, int | float) and not isinstance(x, bool) and not (isinstance(x, float) and math.isnan(x))


def pct(x: Any, digits: int = 1) -> str:
    """A fraction as a percentage with its sign: ``0.8342 -> '83.4%'``."""
    return f"{100 * x:.{digits}f}%" if is_num(x) else "n/a"


def pct_num(x: Any, digits: int = 1) -> str:
    """A fraction as a percentage number for a column headed '(%)': ``0.8342 -> '83.4'``."""
    return f"{100 * x:.{digits}f}" if is_num(x) else "—"


def clip_ci(ci: Any, low: float, high: float) -> list[float] | None:
    """``[lo, hi]`` clipped to ``[low, high]``; ``None`` for anything that is not a numeric pair."""
    if isinstance(ci, list | tuple) and len(ci) == 2 and all(is_num(v) for v in ci):
        return [min(max(float(ci[0]), low), high), min(max(float(ci[1]), low), high)]
    return None


def pct_ci(ci: Any, digits: int = 1) -> str:
    """A confidence interval of fractions as percentages: ``[0.82, 0.85] -> '[82.0, 85.0]'``.

    Bounds are clipped to [0, 100]%: runs recorded before :func:`kdutils.stats.mean_ci`
    clipped its intervals still print only possible accuracies. No interval prints ``—``.
    """
    clipped = clip_ci(ci, 0.0, 1.0)
    if clipped is not None:
        return f"[{100 * clipped[0]:.{digits}f}, {100 * clipped[1]:.{digits}f}]"
    return "—"


def points(x: Any, digits: int = 1) -> str:
    """Percentage points with a sign: ``2.31 -> '+2.3'``."""
    return f"{x:+.{digits}f}" if is_num(x) else "n/a"


def points_ci(ci: Any, digits: int = 1) -> str:
    """An interval of percentage points with signs, clipped to [-100, +100]: ``'[+1.79, +3.65]'``."""
    clipped = clip_ci(ci, -100.0, 100.0)
    if clipped is not None:
        return f"[{clipped[0]:+.{digits}f}, {clipped[1]:+.{digits}f}]"
    return "—"


def pval(p: Any) -> str:
    """A p-value as printed in the paper (without ``p =``)."""
    if not is_num(p):
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
    if not is_num(n):
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
    if not is_num(x):
        return "—"
    if isinstance(x, int) or float(x).is_integer() and abs(x) >= 10 ** (sig - 1):
        return f"{int(round(x)):,}"
    rounded = float(f"{x:.{sig}g}")
    if abs(rounded) >= 10 ** sig:
        # 2043.7 -> '2,040', not '2.04e+03': readers of a table or a sentence expect digits.
        return f"{rounded:,.0f}"
    return f"{x:.{sig}g}"


def integer(x: Any) -> str:
    """A count with thousands separators: ``6823 -> '6,823'``; ``—`` for no number."""
    return f"{int(x):,}" if is_num(x) else "—"


def counted(n: Any, noun: str) -> str:
    """A count with its noun, singular for one: ``(1, "epoch") -> '1 epoch'``, ``(3, "epoch") -> '3 epochs'``."""
    return f"{integer(n)} {noun}" + ("" if is_num(n) and n == 1 else "s")


def seconds(s: Any) -> str:
    """A duration: seconds below two minutes, then minutes, then hours."""
    if not is_num(s):
        return "—"
    if s < 120:
        return f"{s:.0f} s" if s >= 10 else f"{s:.1f} s"
    if s < 7200:
        return f"{s / 60:.1f} min"
    return f"{s / 3600:.1f} h"


def ms(x: Any) -> str:
    """Milliseconds: two decimals below 10 ms, one above (``0.614 -> '0.61'``); ``—`` for none."""
    if not is_num(x):
        return "—"
    return f"{x:.2f}" if x < 10 else f"{x:.1f}"


def times(x: Any) -> str:
    """A ratio: ``12.345 -> '12x'``, ``1.53 -> '1.5x'``."""
    if not is_num(x):
        return "n/a"
    return f"{x:.0f}x" if x >= 10 else f"{x:.1f}x"


FILTERS: dict[str, Callable[..., str]] = {
    "pct": pct, "pct_num": pct_num, "pct_ci": pct_ci, "points": points, "points_ci": points_ci,
    "pval": pval, "p_clause": p_clause, "millions": millions, "num": num, "integer": integer,
    "seconds": seconds, "ms": ms, "times": times, "counted": counted,
    # A user-supplied string in the Markdown paper (a profile's description, say): text, not markup.
    "md": markdown_text,
}


_NUMERIC_CELL = re.compile(r"[\s+\-\d.,%\[\]<>—kMBx]*|one run|not run")


def looks_numeric(cell: Any) -> bool:
    """A formatted cell that is a number, interval or ratio (right-aligned in LaTeX and HTML)."""
    return bool(_NUMERIC_CELL.fullmatch(str(cell)))


_PCT_HINTS = ("accuracy", "f1", "agreement", "share", "coverage", "confidence")

_HEADER_WORDS = {
    "ms": "(ms)", "mb": "(MB)", "s": "(s)", "ci95": "95% CI", "p": "p", "id": "id", "onnx": "ONNX",
    "int8": "int8", "rps": "req/s", "qps": "req/s", "ece": "ECE", "f1": "F1", "p50": "p50", "p95": "p95",
    "p99": "p99", "cpu": "CPU", "total": "(all)",
    # the losses' names ("kl" -> "KL"), from kdutils.study.specs.LOSSES
    **{name: spec.label for name, spec in LOSSES.items()},
}

_HEADERS = {
    "model": "Model", "accuracy": "Accuracy (%)", "accuracy_mean": "Accuracy (%)",
    "accuracy_std": "Std (points)", "accuracy_ci95": "95% CI (%)", "macro_f1": "Macro-F1 (%)",
    "macro_f1_mean": "Macro-F1 (%)", "p_value": "p", "gain_points_mean": "Gain (points)",
    "gain_points": "Gain (points)", "gain_ci95": "Gain 95% CI", "params": "Params", "size_mb": "Size (MB)",
    "train_seconds": "Train time", "teacher_agreement": "Agreement with teacher (%)", "n_seeds": "Seeds",
    "train_seconds_mean": "Train time (mean)",
    "seeds": "Seeds", "alpha": "alpha", "temperature": "T", "loss": "Loss",
    # data section (kdutils.data.describe.summary_section and notebook 01's extras)
    "split_seed": "Split seed", "mean_words_train": "Mean words per training sentence",
    "mean_pieces_train": "Mean word pieces per training sentence", "piece_tokenizer": "Word-piece tokenizer",
    "teacher_truncated_share": "Training sentences cut at the teacher's max length (%)",
    "glove_token_coverage": "GloVe coverage of training tokens (%)",
    "glove_type_coverage": "GloVe coverage of training word types (%)", "word_tokenizer": "Student tokenizer",
    "texts_repaired": "Texts repaired (mojibake)", "duplicates_removed": "Duplicates removed",
    "conflicting_removed": "Conflicting duplicates removed",
}


def header(key: str) -> str:
    """A column header for a record key: the paper's own for known keys, else the words of the key
    with units spelt out (``latency_ms_p50 -> 'Latency (ms) p50'``) and ``(%)`` for fractions."""
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
        if len(value) == 2 and all(is_num(v) for v in value) and "ci" in k:
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
    if is_num(value):
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
    columns = {c: header(str(c)) for c in frame.columns}
    out = pd.DataFrame({columns[c]: [format_cell(str(c), v) for v in frame[c]] for c in frame.columns},
                       index=range(len(frame)))
    # As in the paper's tables: a column with nothing recorded (e.g. no interval below 3 seeds) goes.
    return out.drop(columns=[c for c in out.columns if len(out) and (out[c] == "—").all()])


# How tables and text name a runtime: one place, beside the model names (the server's page uses it
# without importing the report).
RUNTIME_LABELS = plots.RUNTIME_LABELS
