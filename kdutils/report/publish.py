"""Publishing a run into ``paper/``, and checking that a published paper is what its files render to."""

from __future__ import annotations

import difflib
import html
import os
import re
import shutil
import tempfile
from pathlib import Path

from kdutils.report.reading import ReportError, load_run_files, profile_of, publish_dir
from kdutils.report.render import (
    ENGINE_META,
    RenderResult,
    choose_engine,
    engine_label,
    pandoc_version,
    render_from,
)
from kdutils.runs import read_json
from kdutils.summary import load_summary


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


def publish(run_root: str | Path, dest: str | Path | None = None, engine: str = "auto") -> RenderResult:
    """Copy a finished run's figures, tables, summary and manifest into the paper folder and render.

    Trains nothing. Only the entries this writes are replaced (``paper/mpnet-12/`` survives a
    publish of the default run).
    """
    run_root = Path(run_root)
    summary, manifest = load_run_files(run_root)
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
    summary = load_summary(summary_path)
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
