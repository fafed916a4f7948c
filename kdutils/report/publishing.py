"""Publishing runs into ``paper/`` and checking that the published paper is what its runs render to.

``paper/`` holds every published run under ``runs/<profile>/`` (its ``summary.json``,
``manifest.json``, the paper tables of that run alone and the notebooks' tables under
``tables/``, its figures under ``figures/``) and, at the top, the one paper rendered from all
of them: ``paper.md``, ``paper.html``, ``tables/`` and ``figures/``
(:func:`~kdutils.report.rendering.render_paper`).
"""

from __future__ import annotations

import difflib
import html
import os
import re
import shutil
import tempfile
from pathlib import Path
from typing import Any

from kdutils.report.reading import (
    PAPER_DIR,
    PAPER_FIGURES_DIR,
    PAPER_HTML,
    PAPER_MD,
    PAPER_TABLES_DIR,
    ReportError,
    RunFiles,
    load_run,
    publish_dir,
    published_runs,
)
from kdutils.report.rendering import (
    ENGINE_META,
    RenderResult,
    choose_engine,
    engine_label,
    pandoc_version,
    render_paper,
)
from kdutils.report.results import guard_intervals
from kdutils.report.tables import build_tables, write_tables
from kdutils.study.runs import RunDir
from kdutils.study.steps import STEPS, discover_steps
from kdutils.study.summary import Summary

# What the paper rendered from every run puts at the top of paper/.
PAPER_ENTRIES = (PAPER_FIGURES_DIR, PAPER_TABLES_DIR, PAPER_MD, PAPER_HTML)


def _run_files(run: RunDir) -> tuple[Path, Path]:
    """The files a published run's folder holds besides its tables (written from its summary) and
    figures: its summary and manifest. The layout before ``paper/runs/`` kept the default run's two
    at the top of ``paper/``; publishing removes them from there."""
    return run.summary_path, run.manifest_path


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


def _files(git: dict[str, Any]) -> str:
    names = [*(git.get("modified") or []), *(git.get("untracked") or [])]
    return f" ({', '.join(names[:5])}{', ...' if len(names) > 5 else ''})" if names else ""


def publish_problems(manifest: dict[str, Any], notebooks: list[str] | None = None) -> list[str]:
    """Why a run with this manifest may not be published, one reason per item (``[]``: it may).

    A published run ran every study notebook (``notebooks``; default: the pipeline's steps) to
    the end, ``ran`` or ``skipped`` with the result of an earlier clean run, at a commit without
    uncommitted changes: the manifest's ``git.dirty`` and each notebook's ``git.dirty`` are false.
    """
    if not manifest:
        return ["it has no manifest.json (run it with python -m kdutils.pipeline run)"]
    if notebooks is None:
        notebooks = [step.name for step in discover_steps()]
    problems = []
    git = manifest.get("git") or {}
    if git.get("dirty"):
        problems.append("its manifest records uncommitted changes (git.dirty is true)")
    records = manifest.get("notebooks") or {}
    for name in sorted(set(notebooks) | set(records)):
        rec = records.get(name)
        if rec is None:
            problems.append(f"notebook {name} has not run (it is not in the manifest)")
            continue
        status = rec.get("status")
        if status not in ("ran", "skipped"):
            problems.append(f"notebook {name} {status or 'has no status'}")
        nb_git = rec.get("git") or {}
        if nb_git.get("dirty"):
            problems.append(f"notebook {name} ran with uncommitted changes{_files(nb_git)}")
    return problems


def recorded_steps(summary: Summary) -> list[str]:
    """The steps a published run is held to: every step up to the last one whose ``summary.json``
    entries the run holds (:data:`kdutils.study.steps.STEPS`). A run published before a later step
    existed (``paper/runs/*`` made before notebook 06) keeps passing :func:`check`; a newer run that
    holds that step's section must show it ran."""
    dumped = summary.dump()

    def holds(key: str) -> bool:
        node: Any = dumped
        for part in key.split("."):
            if not isinstance(node, dict) or node.get(part) is None:
                return False
            node = node[part]
        return True

    last = max((i for i, spec in enumerate(STEPS) if any(holds(k) for k in spec.summary)), default=len(STEPS) - 1)
    return [spec.name for spec in STEPS[:last + 1]]


def _write_run(run: RunFiles, target: Path) -> None:
    """``target`` as a published run: the run's summary and manifest, its paper tables (of this run
    alone) and the notebooks' tables under ``tables/notebooks/``, and its figures."""
    source, published = RunDir(run.root), RunDir(target)
    target.mkdir(parents=True)
    for src, dst in zip(_run_files(source), _run_files(published), strict=True):
        if src.exists():
            shutil.copyfile(src, dst)
    write_tables(build_tables(guard_intervals(run.summary), run.manifest), published.tables_dir)
    notebook_tables = source.tables_dir
    if notebook_tables.is_dir() and any(notebook_tables.iterdir()):
        shutil.copytree(notebook_tables, published.tables_dir / "notebooks", ignore=shutil.ignore_patterns(".*"))
    if run.figures.is_dir():
        shutil.copytree(run.figures, published.figures_dir, ignore=shutil.ignore_patterns(".*"))
    else:
        published.figures_dir.mkdir()


def publish(run_root: str | Path, dest: str | Path | None = None, engine: str = "auto") -> RenderResult:
    """Publish the finished run at ``run_root`` into the paper folder ``dest`` (default ``paper/``).

    The run is copied into ``runs/<profile>/`` (:func:`_write_run`), then the paper is rendered
    from every run published there (:func:`~kdutils.report.rendering.render_paper`). Everything is
    written into a staging folder inside ``dest`` first and swapped into place entry by entry,
    so an error leaves the published paper as it was; other runs are not touched. Trains nothing.

    Raises :class:`ReportError` for a profile that is not published or a run that may not be
    (:func:`publish_problems`: uncommitted changes, a notebook failed or not run), and
    :class:`~kdutils.study.summary.SummaryError` for a summary that does not match the contract.
    """
    run = load_run(run_root)
    publish_dir(run.profile)  # refuses a profile that is not published
    problems = publish_problems(run.manifest)
    if problems:
        raise ReportError(f"{run_root} ({run.profile}) is not published: " + "; ".join(problems)
                          + ". Commit, rerun the study and publish the finished run.")
    paper_dir = Path(dest) if dest is not None else PAPER_DIR
    paper_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=paper_dir, prefix=".publish-") as tmp:
        stage = Path(tmp)
        staged = publish_dir(run.profile, stage)
        _write_run(run, staged)
        runs = {**published_runs(paper_dir), run.profile: load_run(staged)}
        result = render_paper(runs, stage / "paper", engine)
        (stage / "paper" / PAPER_FIGURES_DIR).mkdir(exist_ok=True)  # a paper without figures replaces old ones too
        _swap_into_place(staged, publish_dir(run.profile, paper_dir))
        for entry in PAPER_ENTRIES:
            _swap_into_place(stage / "paper" / entry, paper_dir / entry)
        for old in _run_files(RunDir(paper_dir)):
            old.unlink(missing_ok=True)
    return RenderResult(paper_dir, paper_dir / PAPER_MD, paper_dir / PAPER_HTML,
                        sorted((paper_dir / PAPER_TABLES_DIR).glob("*.*")), result.figures, result.missing_figures,
                        result.engine)


def _html_engine_of(path: Path) -> str | None:
    if not path.exists():
        return None
    m = re.search(rf'<meta name="{ENGINE_META}" content="([^"]*)"', path.read_text(encoding="utf-8"))
    return html.unescape(m.group(1)) if m else None


def _diff(published: Path, fresh: Path, names: list[str]) -> list[str]:
    diffs = []
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
    return diffs


def _table_files(*folders: Path) -> list[str]:
    return sorted({p.name for d in folders for ext in ("md", "tex") for p in d.glob(f"*.{ext}")})


def check(published: str | Path = PAPER_DIR, engine: str | None = None) -> tuple[list[str], list[str]]:
    """Re-render a paper folder from its published runs and diff: ``(differences, notes)``.

    Every ``runs/<profile>/summary.json`` is validated (:class:`~kdutils.study.summary.SummaryError`
    names the run and the field), each run's manifest must still allow publishing
    (:func:`publish_problems` for the steps it records, :func:`recorded_steps`), and ``paper.md``, the paper's tables and each run's own tables are
    rendered afresh and compared; ``paper.html`` too when this machine has the HTML engine that
    wrote it (otherwise a note says so). No differences: the committed text and tables are
    exactly what the committed summaries give. :class:`ReportError` for a folder with no
    published run, or one in the layout before ``runs/<profile>/``.
    """
    published = Path(published)
    runs = published_runs(published)
    if not runs:
        if RunDir(published).summary_path.exists():
            raise ReportError(f"{published} is in the layout before runs/<profile>/ (summary.json at the top): "
                              "publish each run again (make paper PROFILE=default, make paper PROFILE=paper)")
        raise ReportError(f"{published / 'runs'} holds no published run: nothing to check against")
    notes: list[str] = []
    recorded = _html_engine_of(published / PAPER_HTML)
    if engine is None:
        engine = "pandoc" if recorded and recorded.startswith("pandoc") and pandoc_version() else "python"
    compare_html = recorded is not None and recorded == engine_label(choose_engine(engine))
    if not compare_html:
        notes.append(f"paper.html not compared: it was written by {recorded or 'an unknown engine'}, "
                     f"this machine renders with {engine_label(choose_engine(engine))}")
    diffs = [f"{RunDir(Path('runs') / profile).manifest_path.as_posix()}: {problem}"
             for profile, run in runs.items()
             for problem in publish_problems(run.manifest, recorded_steps(run.summary))]
    with tempfile.TemporaryDirectory() as tmp:
        fresh = Path(tmp)
        render_paper(runs, fresh, engine)
        names = [PAPER_MD, *([PAPER_HTML] if compare_html else [])]
        paper_tables = _table_files(fresh / PAPER_TABLES_DIR, published / PAPER_TABLES_DIR)
        names += [f"{PAPER_TABLES_DIR}/{t}" for t in paper_tables]
        diffs += _diff(published, fresh, names)
        for profile, run in runs.items():
            tables = RunDir(Path("runs") / profile).tables_dir  # relative: the same in both folders
            write_tables(build_tables(guard_intervals(run.summary), run.manifest), fresh / tables)
            diffs += _diff(published, fresh, [(tables / t).as_posix()
                                              for t in _table_files(fresh / tables, published / tables)])
    return diffs, notes
