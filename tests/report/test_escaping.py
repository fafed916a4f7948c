"""Issue 23.5: a user-supplied string (label names, column and file names, a profile's
description) is text in every report format, never markup: Markdown tables and text read by
pandoc and by Python-Markdown, the notebooks' Markdown output as nbconvert exports it, LaTeX
tables, the HTML index's notebook tables, the paper, and plot text."""

from __future__ import annotations

import html
import re
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402
import pytest  # noqa: E402
from test_report import SUMMARY, _manifest, figure_files, make_run  # noqa: E402, F401

from kdutils import report  # noqa: E402
from kdutils.data.corpora import Splits  # noqa: E402
from kdutils.report import index as report_index  # noqa: E402
from kdutils.report import rendering  # noqa: E402
from kdutils.report.data_plots import plot_label_balance  # noqa: E402
from kdutils.report.tables import Table  # noqa: E402
from kdutils.study.escaping import latex_text, markdown_text  # noqa: E402
from kdutils.study.files import REPO_ROOT  # noqa: E402
from kdutils.study.runs import RunDir  # noqa: E402

# Each is markup in at least one format: HTML, a Markdown table or emphasis, pandoc's math,
# super/subscript and citations, LaTeX, matplotlib's mathtext.
HOSTILE = [
    "<img src=x onerror=alert(1)>good",
    "bad|worse",
    "*very* _good_ `code`",
    "[link](http://example.org) ![pic](x.png)",
    "$5 or $10",
    "50% & {braces} #1 ~tilde^hat",
    "@cite a\\b &amp; &lt;",
    "# heading-like",
    "[span]{.red} [^note] ~~struck~~ H~2~O",
    "_lead and trail_ x_y",
]
ENGINES = ["python", *(["pandoc"] if rendering.pandoc_version() else [])]


def _text(fragment: str) -> str:
    """The text an HTML fragment shows: tags dropped, entities decoded, runs of whitespace (pandoc
    wraps its lines) as one space."""
    return " ".join(html.unescape(re.sub(r"<[^>]+>", "", fragment)).split())


def _cells(body: str) -> list[list[str]]:
    rows = re.findall(r"<tr[^>]*>(.*?)</tr>", body, flags=re.S)
    return [[_text(c).strip() for c in re.findall(r"<t[dh][^>]*>(.*?)</t[dh]>", row, flags=re.S)] for row in rows]


@pytest.mark.parametrize("engine", ENGINES)
def test_markdown_tables_keep_every_cell_as_text(engine: str, tmp_path: Path) -> None:
    frame = pd.DataFrame({"Property": [f"row {i}" for i in range(len(HOSTILE))], "Value": HOSTILE})
    frame["col|<b>name</b>"] = "x"
    body = rendering.markdown_to_html(Table("t", "caption", frame).markdown(), tmp_path, "t", engine)
    assert "<img" not in body and "onerror=alert" not in _strip_text(body) and "<b>name" not in body
    rows = _cells(body)
    assert rows[0] == ["Property", "Value", "col|<b>name</b>"]
    assert [r[1] for r in rows[1:]] == HOSTILE and all(len(r) == 3 for r in rows)


def _strip_text(body: str) -> str:
    # Attribute and tag text only: an escaped "onerror=alert" inside a cell's text is harmless.
    return " ".join(re.findall(r"<[^>]+>", body))


@pytest.mark.parametrize("engine", ENGINES)
def test_markdown_text_in_a_sentence_stays_text(engine: str, tmp_path: Path) -> None:
    md = "Labels: " + ", ".join(markdown_text(n) for n in HOSTILE) + ".\n"
    body = rendering.markdown_to_html(md, tmp_path, "t", engine)
    paragraph = re.search(r"<p>(.*?)</p>", body, flags=re.S).group(1)
    assert "<img" not in paragraph and "<em>" not in paragraph and "<code>" not in paragraph
    assert "<a " not in paragraph and "<span class=\"math" not in paragraph and "<sup>" not in paragraph
    assert _text(paragraph) == "Labels: " + ", ".join(HOSTILE) + "."


def test_notebook_markdown_output_as_nbconvert_exports_it() -> None:
    # Notebook 01 shows the label names with display(Markdown(...)); nbconvert's HTML export renders it.
    from nbconvert.filters.markdown_mistune import markdown2html_mistune

    for name in HOSTILE:
        body = markdown2html_mistune(f"Classes ({markdown_text(name)}).")
        # mistune links a bare URL (the URL as its own text): no markup of the label's own.
        assert "<img" not in body and "<em>" not in body and ">link</a>" not in body, body
        assert _text(body) == f"Classes ({name}).", body


def test_notebook_01_escapes_the_label_names_it_shows() -> None:
    import nbformat

    nb = nbformat.read(REPO_ROOT / "notebooks" / "01_data.ipynb", as_version=4)
    sources = [c.source for c in nb.cells if c.cell_type == "code"]
    assert not any(re.search(r"join\(label_names\)", s) for s in sources)
    assert any("markdown_text(n) for n in label_names" in s and "Markdown(" in s for s in sources)


def test_latex_tables_escape_every_cell_and_the_caption(tmp_path: Path) -> None:
    frame = pd.DataFrame({"Property": ["a"] * len(HOSTILE), "Value": HOSTILE})
    paper_tex = Table("t", "Caption with $ & _ and <b>", frame).latex()
    run = RunDir(tmp_path / "run")
    _, tex_path = run.save_table(frame, "labels", caption="Caption with $ & _ and <b>")
    for tex in (paper_tex, tex_path.read_text()):
        rows = [ln for ln in tex.splitlines() if ln.startswith("a &")]
        assert len(rows) == len(HOSTILE), tex
        for row in rows:
            # One column separator, and no other LaTeX special left unescaped.
            assert len(re.findall(r"(?<!\\)&", row)) == 1, row
            assert not re.search(r"(?<!\\)[$%#_]|[<>|]", row), row
        caption = next(ln for ln in tex.splitlines() if "caption" in ln)
        assert r"\$ \& \_ and \textless{}b\textgreater{}" in caption
    assert latex_text("a_b") == r"a\_b"


def test_notebook_tables_in_markdown_and_on_the_index_page(tmp_path: Path) -> None:
    frame = pd.DataFrame({"label": HOSTILE, "n": range(len(HOSTILE))})
    run = RunDir(tmp_path / "run")
    md_path, _ = run.save_table(frame, "labels")
    body = report_index._notebook_table_html(md_path.read_text())
    assert "<img" not in body and "<em>" not in body and "<a " not in body
    rows = _cells(body)
    assert [r[0] for r in rows[1:]] == HOSTILE and all(len(r) == 2 for r in rows)


@pytest.mark.parametrize("engine", ENGINES)
def test_the_paper_shows_hostile_label_names_and_description_as_text(engine: str, tmp_path: Path,
                                                                     figure_files: Path) -> None:  # noqa: F811
    # The instance: with "<img ...>good" pandoc failed ("File x not found"); with
    # "bad|worse" the data table said "Labels: bad".
    summary = {**SUMMARY, "data": {**SUMMARY["data"], "label_names": HOSTILE[:2]}}
    manifest = _manifest("default")
    manifest["parameters"] = {**manifest["parameters"], "description": "Reviews <script>x()</script> | *mine*"}
    run = make_run(tmp_path / "outputs", figure_files, summary=summary, run_manifest=manifest)
    result = report.render(run, engine=engine)
    body = result.paper_html.read_text()
    assert "<img src=x" not in body and "<script>x()" not in body
    labels = [r for r in _cells(body) if r and r[0] == "Labels"]
    assert labels == [["Labels", ", ".join(HOSTILE[:2])]]
    assert "Reviews <script>x()</script> | *mine*" in _text(body)


def test_plot_text_is_drawn_as_written() -> None:
    # mathtext would turn "$5 or $10" into math, and fail on "$\frac$".
    names = ["$5 or $10", r"$\frac$ bad", "<b>ok</b>"]
    n = 30
    part = pd.DataFrame({"text": [f"t{i}" for i in range(n)], "label": [i % 3 for i in range(n)]})
    splits = Splits(part, part.copy(), part.copy(), names, dataset="file")
    fig = plot_label_balance(splits)
    fig.canvas.draw()  # raises on mathtext it cannot parse
    shown = [t.get_text() for t in fig.axes[0].get_legend().get_texts()]
    assert shown == names
    assert all(not t._preprocess_math(t.get_text())[1] for t in fig.axes[0].get_legend().get_texts())
    plt.close(fig)
