"""User-supplied strings (label names, column and file names, example texts, a profile's
description) escaped for where they go: Markdown text and tables, LaTeX, HTML, plot text.

A label such as ``<img src=x onerror=alert(1)>good`` or ``bad|worse`` must come out as those
characters, never as markup: a live HTML handler in a report, a cell cut at a pipe, a pandoc
run that tries to fetch an image. Only strings are escaped; the formatting of numbers is the
callers' (:mod:`kdutils.report.formatting`).
"""

from __future__ import annotations

import re
from typing import Any

import pandas as pd

# Markdown readers differ in what a backslash escapes: pandoc and CommonMark take any ASCII
# punctuation, Python-Markdown (the index page, the paper without pandoc) only a few. So those it
# can escape get a backslash and the others a numeric entity, which every reader prints as the
# character. Each is escaped only where it can start markup, so that text without markup (the
# published paper's "rotten_tomatoes", "[77.6, 79.1]", "p < 0.001", "~4M") is written unchanged.
_MARKDOWN_MARKUP = re.compile(
    r"[\\`*]"                           # escapes, code, emphasis
    r"|(?<!\w)_|_(?!\w)"                # emphasis (an underscore inside a word is none)
    r"|\|"                                # a table cell's end
    r"|<(?=[A-Za-z/!?])"                  # raw HTML: a tag, comment or declaration
    r"|&(?=#?\w+;)"                       # an entity
    r"|\](?=[(\[:{])"                      # the end of a link's, image's or span's text, or of a reference
    r"|\[(?=\^)"                           # a footnote
    r"|^#|[$^]"                           # a heading; pandoc's math and superscript
    r"|(?<![\w.])@(?=\w)"                  # a pandoc citation
)
_BACKSLASHED = set("\\`*_]#[")


def _escape_markup(m: re.Match[str]) -> str:
    c = m.group(0)
    return "\\" + c if c in _BACKSLASHED else f"&#{ord(c)};"


def markdown_text(text: Any) -> str:
    """``text`` as literal Markdown, for a sentence or a table cell: every character that could
    start markup there escaped (see :data:`_MARKDOWN_MARKUP`), line breaks as spaces (a cell or a
    sentence stays on its line); a pair of ``~`` (pandoc's subscript, strikeout) is escaped too."""
    out = _MARKDOWN_MARKUP.sub(_escape_markup, " ".join(str(text).splitlines()))
    return out.replace("~", "&#126;") if out.count("~") > 1 else out


def markdown_frame(frame: pd.DataFrame) -> pd.DataFrame:
    """A copy of ``frame`` with every string cell and column name passed through :func:`markdown_text`
    (numbers are left for the table writer to format)."""
    out = frame.rename(columns=lambda c: markdown_text(c) if isinstance(c, str) else c)
    return out.apply(lambda col: col.map(lambda v: markdown_text(v) if isinstance(v, str) else v))


_LATEX_SPECIALS = {"\\": r"\textbackslash{}", "&": r"\&", "%": r"\%", "$": r"\$", "#": r"\#", "_": r"\_",
                   "{": r"\{", "}": r"\}", "~": r"\textasciitilde{}", "^": r"\textasciicircum{}",
                   "<": r"\textless{}", ">": r"\textgreater{}"}


def latex_text(text: Any) -> str:
    """``text`` as literal LaTeX text (a caption; pandas escapes cells with ``escape=True``), in one
    pass so that escapes are not escaped again."""
    return re.sub(r"[\\&%$#_{}~^<>]", lambda m: _LATEX_SPECIALS[m.group(0)], str(text))
