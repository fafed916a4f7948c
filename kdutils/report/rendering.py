"""Markdown from the template, standalone HTML from the Markdown, and a run's paper rendered."""

from __future__ import annotations

import base64
import functools
import html
import re
import shutil
import subprocess
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import jinja2

from kdutils.report.context import build_context, paper_title
from kdutils.report.figures import COMPARISON_FIGURE, collect_figures, draw_teacher_comparison
from kdutils.report.formatting import FILTERS
from kdutils.report.reading import (
    PAPER_DIR,
    PAPER_FIGURES_DIR,
    PAPER_HTML,
    PAPER_MD,
    PAPER_TABLES_DIR,
    PUBLISHED_PROFILES,
    ReportError,
    RunFiles,
    load_run,
)
from kdutils.report.results import guard_intervals, teacher_comparison
from kdutils.report.tables import (
    Table,
    build_tables,
    comparison_table,
    depth_table,
    targets_table,
    write_tables,
)
from kdutils.study.files import atomic_path
from kdutils.study.runs import RunDir
from kdutils.study.summary import Summary

# The templates stay in kdutils/templates/, the package data pyproject.toml ships.
TEMPLATE_DIR = Path(__file__).resolve().parent.parent / "templates"
PANDOC = Path("/usr/bin/pandoc")


ENGINE_META = "kdutils-html-engine"


@functools.lru_cache(maxsize=1)
def environment() -> jinja2.Environment:
    """The Jinja2 environment of ``kdutils/templates`` (strict: an unknown name fails the render)."""
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
    """``paper.md`` from :func:`~kdutils.report.context.build_context`'s context."""
    text = environment().get_template("paper.md.j2").render(**context)
    # Template logic leaves runs of blank lines; Markdown does not need more than one.
    return re.sub(r"\n{3,}", "\n\n", text).strip() + "\n"


# --------------------------------------------------------------------------------------------
# Markdown -> standalone HTML


def pandoc_version() -> str | None:
    """The version of :data:`PANDOC` (``'3.1.3'``), or ``None`` where it is missing or broken."""
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
    """``pandoc`` or ``python``: ``auto`` takes pandoc where it works. :class:`ReportError` for an
    unknown engine or pandoc asked for where it does not work."""
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
    page = environment().get_template("paper.html.j2").render(title=title, css=css, body=body,
                                                               engine_meta=ENGINE_META, engine=label)
    return page


# --------------------------------------------------------------------------------------------
# Render, publish, check


@dataclass
class RenderResult:
    """What a render wrote: the folder, the two paper files, the table files, the figures shown and
    those the paper expected but the run lacks, and the HTML engine used."""

    out_dir: Path
    paper_md: Path
    paper_html: Path
    tables: list[Path]
    figures: list[str]
    missing_figures: list[str]
    engine: str


def render_from(
    summary: Summary,
    manifest: dict[str, Any],
    figures_src: Path | None,
    out_dir: Path,
    profile: str,
    engine: str = "auto",
    others: Sequence[RunFiles] = (),
) -> RenderResult:
    """Render tables, paper.md and paper.html into ``out_dir`` from a run's validated summary and
    manifest; figures are copied from ``figures_src`` (the run's ``figures/``) when it exists.

    ``others`` are further runs whose teachers the paper sets beside this run's (the published
    ``paper`` run beside ``default``): when this run and at least one of them have a teacher,
    both main students and a distillation, the paper gains a section with the comparison table
    (:func:`~kdutils.report.tables.comparison_table`), the comparison figure drawn here from the
    summaries, and each other run's depth table. Without ``others`` the paper is the run's alone.
    """
    engine = choose_engine(engine)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    summary = guard_intervals(summary)
    others = [replace(o, summary=guard_intervals(o.summary)) for o in others]
    rows = [c for c in (teacher_comparison(summary, manifest, profile),
                        *(teacher_comparison(o.summary, o.manifest, o.profile) for o in others)) if c is not None]
    # Every run's targets, the main run's first, also where the teachers cannot be compared.
    target_runs = [(profile, summary), *((o.profile, o.summary) for o in others)]
    if len(rows) < 2 or rows[0].profile != profile:
        rows, others = [], []
    figures = collect_figures(figures_src, drawn=(COMPARISON_FIGURE,) if rows else ())
    fig_dir = out_dir / PAPER_FIGURES_DIR
    if figures_src is not None and figures_src.is_dir() and figures_src.resolve() != fig_dir.resolve():
        fig_dir.mkdir(exist_ok=True)
        for name in figures.names():
            for ext in ("png", "pdf"):
                src = figures_src / f"{name}.{ext}"
                if src.exists():
                    with atomic_path(fig_dir / src.name) as tmp:
                        shutil.copyfile(src, tmp)
    comparison: dict[str, Table] = {}
    if rows:
        draw_teacher_comparison(rows, fig_dir)
        comparison["teacher_comparison"] = comparison_table(rows)
        for other in others:
            depths = depth_table(other.summary, other.manifest, other.profile)
            if depths is not None:
                comparison[depths.name] = depths
    # After the comparison.
    for run_profile, run_summary in target_runs:
        targets = targets_table(run_summary, run_profile)
        if targets is not None:
            comparison[targets.name] = targets
    tables = build_tables(summary, manifest, comparison)
    table_paths = write_tables(tables, out_dir / PAPER_TABLES_DIR)
    context = build_context(summary, manifest, tables, figures, profile, rows, others, target_runs)
    md_text = render_markdown(context)
    paper_md = out_dir / PAPER_MD
    with atomic_path(paper_md) as tmp:
        tmp.write_text(md_text, encoding="utf-8")
    html_text = markdown_to_html(md_text, out_dir, paper_title(summary, manifest), engine)
    paper_html = out_dir / PAPER_HTML
    with atomic_path(paper_html) as tmp:
        tmp.write_text(html_text, encoding="utf-8")
    return RenderResult(out_dir, paper_md, paper_html, table_paths, figures.names(),
                        [s.name for s in figures.missing], engine)


def render_paper(runs: dict[str, RunFiles], out_dir: Path, engine: str = "auto") -> RenderResult:
    """The published paper from every published run (:func:`~kdutils.report.reading.published_runs`):
    the first of :data:`~kdutils.report.reading.PUBLISHED_PROFILES` present is the main body, the
    others are set beside it (:func:`render_from`'s ``others``). With one run, that run's paper."""
    if not runs:
        raise ReportError("no published run to render the paper from")
    main = next((runs[p] for p in PUBLISHED_PROFILES if p in runs), next(iter(runs.values())))
    others = [run for run in runs.values() if run is not main]
    return render_from(main.summary, main.manifest, main.figures, out_dir, main.profile, engine, others)


def _guard_published(out_dir: Path, profile: str) -> None:
    paper_root = PAPER_DIR.resolve()
    target = out_dir.resolve()
    if profile not in PUBLISHED_PROFILES and (target == paper_root or paper_root in target.parents):
        raise ReportError(f"profile {profile!r} is not published: render it into outputs/{profile}/paper/, "
                          f"not into {out_dir}")


def render(run_root: str | Path, out_dir: str | Path | None = None, engine: str = "auto") -> RenderResult:
    """Render a run's own paper and tables into ``out_dir`` (default ``<run>/paper/``).

    Raises :class:`ReportError` without a summary or for ``out_dir`` inside ``paper/`` of a
    profile that is not published, :class:`~kdutils.study.summary.SummaryError` for an invalid summary.
    """
    run = load_run(run_root)
    target = Path(out_dir) if out_dir is not None else RunDir(run.root).paper_dir
    _guard_published(target, run.profile)
    return render_from(run.summary, run.manifest, run.figures, target, run.profile, engine)


def render_run(run_root: str | Path) -> RenderResult:
    """What the pipeline calls after a run: the paper inside the run, ``<run>/paper/``."""
    return render(run_root)
