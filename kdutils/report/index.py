"""The HTML index of a run: its reports, paper, tables and figures, linking only what exists."""

from __future__ import annotations

import html
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from kdutils.report.context import gain_summary
from kdutils.report.figures import PAPER_FIGURES
from kdutils.report.formatting import looks_numeric, seconds
from kdutils.report.reading import PAPER_HTML, PAPER_MD, PAPER_TABLES_DIR, ReportError, profile_of
from kdutils.report.rendering import TEMPLATE_DIR, environment
from kdutils.report.results import SIGNIFICANCE_LEVEL, guard_intervals
from kdutils.report.tables import build_tables, headline_rows
from kdutils.stats import MIN_SEEDS_FOR_INTERVAL
from kdutils.study.files import atomic_path
from kdutils.study.runs import RunDir
from kdutils.study.summary import Summary


@dataclass
class Link:
    """A link on the index page: its text and a path relative to ``reports/``."""

    label: str
    href: str


def _rel(path: Path, start: Path) -> str:
    return Path(os.path.relpath(path, start)).as_posix()


# A figure this much wider than tall, or this wide in pixels (a double-column figure at the
# resolution of RunDir.save_figure, kdutils.study.files.FIGURE_DPI), spans the index's full width: in a
# grid cell its labels would be too small to read.
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
    numeric = [c for c in frame.columns if frame[c].map(looks_numeric).all()]
    head = "".join(f"<th>{html.escape(str(c))}</th>" for c in frame.columns)
    rows = []
    for _, row in frame.iterrows():
        cells = "".join(f"<td{_NUM_CELL if c in numeric else ''}>{html.escape(str(row[c]))}</td>" for c in frame.columns)
        rows.append(f"<tr>{cells}</tr>")
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(rows)}</tbody></table>"


def _notebook_table_html(md_text: str) -> str:
    """A notebook's Markdown table (``RunDir.save_table``) as HTML; raw ``<`` and ``>`` are escaped first.

    Only those two: ``save_table`` writes ``&`` as the start of an entity (``&#124;`` for a pipe in
    a label name), which escaping ``&`` would show as text.
    """
    import markdown

    return markdown.markdown(md_text.replace("<", "&lt;").replace(">", "&gt;"), extensions=["tables"],
                             output_format="html")


def index_tables(run_root: Path, summary: Summary, manifest: dict[str, Any]) -> list[IndexTable]:
    """The paper's tables, then the notebooks' own tables, as HTML for the index page.

    Paper tables are built from ``summary`` (already passed through :func:`guard_intervals`), as
    in the paper; notebook tables are the Markdown files under ``<run>/tables/``. Each entry
    links its Markdown and LaTeX sources when they exist.
    """
    run = RunDir(run_root)
    reports = run.reports_dir
    out = []
    paper_tables = run.paper_dir / PAPER_TABLES_DIR
    for name, table in build_tables(summary, manifest).items():
        if name in ("published", "published_small"):
            continue  # literature tables: the same on every run, read them in the paper
        sources = [Link(ext, _rel(paper_tables / f"{name}.{ext}", reports)) for ext in ("md", "tex")
                   if (paper_tables / f"{name}.{ext}").exists()]
        out.append(IndexTable(name, table.caption, _table_html(table.frame), sources))
    nb_tables = run.tables_dir
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
    """Everything ``templates/index.html.j2`` shows for the run at ``run_root``: notebooks and
    their reports, the paper and run files, tables, figures, and what is missing.

    A run without ``summary.json`` yet gets an index of what exists; one whose summary does not
    match the contract raises :class:`~kdutils.study.summary.SummaryError`.
    """
    run = RunDir(run_root)
    reports = run.reports_dir
    summary = guard_intervals(run.summary())
    manifest = run.read_manifest()
    missing: list[str] = []
    nb_records = manifest.get("notebooks") or {}
    notebooks = []
    for name in sorted(set(nb_records) | run.reported_notebooks()):
        rec = nb_records.get(name) or {}
        code, reader = run.report_html(name), run.report_html(name, reader=True)
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
    for label, path in (("Paper (HTML)", run.paper_dir / PAPER_HTML),
                        ("Paper (Markdown)", run.paper_dir / PAPER_MD),
                        ("Manifest (parameters, versions, input hashes)", run.manifest_path),
                        ("Summary of results (summary.json)", run.summary_path)):
        if path.exists():
            files.append(Link(label, _rel(path, reports)))
        else:
            missing.append(f"{label}: {path.relative_to(run_root)} does not exist"
                           + (f" (render it: python -m kdutils.report render --run {run_root})"
                              if "Paper" in label else "") + ".")
    tables = index_tables(run_root, summary, manifest)

    fig_dir = run.figures_dir
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
    gain = gain_summary(summary)
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
    run = RunDir(Path(run_root))
    if not run.root.is_dir():
        raise ReportError(f"{run.root} is not a run directory")
    run.reports_dir.mkdir(parents=True, exist_ok=True)
    page = environment().get_template("index.html.j2").render(**index_context(run.root))
    target = run.index_html
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
    """The local links of the HTML file ``page`` whose target does not exist (relative to its folder)."""
    base = page.parent
    return [href for href in local_links(page.read_text(encoding="utf-8"))
            if not (base / href.split("#", 1)[0]).exists()]
