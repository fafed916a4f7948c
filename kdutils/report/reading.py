"""What the report reads: a run's ``summary.json`` (validated once, here) and ``manifest.json``;
where published runs live."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from kdutils.study.files import REPO_ROOT
from kdutils.study.runs import RunDir
from kdutils.study.summary import Summary

PAPER_DIR = REPO_ROOT / "paper"

# A rendered paper's folder (a run's paper/, or paper/ at the top of the repository): the text as
# Markdown and HTML, with its tables and figures in folders beside it, which the text links to.
PAPER_MD = "paper.md"
PAPER_HTML = "paper.html"
PAPER_TABLES_DIR = "tables"
PAPER_FIGURES_DIR = "figures"

# The profiles published into paper/runs/<profile>/, in the paper's order: the first present is
# the paper's main body, the others add the section that sets their teacher beside its teacher.
PUBLISHED_PROFILES = ("default", "paper")


class ReportError(RuntimeError):
    """A report cannot be built; the message says what is missing or refused."""


@dataclass(frozen=True)
class RunFiles:
    """A run as the report reads it: a run folder (``outputs/<profile>``) or a published one
    (``paper/runs/<profile>``), both holding ``summary.json``, ``manifest.json`` and ``figures/``."""

    root: Path
    summary: Summary
    manifest: dict[str, Any]
    profile: str

    @property
    def figures(self) -> Path:
        """The run's figures folder (PNG and PDF per figure; not created)."""
        return RunDir(self.root).figures_dir


def load_run(root: str | Path) -> RunFiles:
    """The run at ``root``: its summary, validated once here, and its manifest (``{}`` if none).

    Raises :class:`ReportError` without a ``summary.json`` and
    :class:`~kdutils.study.summary.SummaryError`, naming every field, for one that does not match the
    contract (e.g. one written by an older version of the notebooks).
    """
    run = RunDir(Path(root))
    if not run.summary_path.exists():
        raise ReportError(f"{run.summary_path} does not exist: run the study first (python -m kdutils.pipeline run)")
    manifest = run.read_manifest()
    return RunFiles(run.root, run.summary(), manifest, profile_of(run.root, manifest))


def profile_of(run_root: Path, manifest: dict[str, Any]) -> str:
    """The run's profile: as its manifest records it, else the run folder's name."""
    return str(manifest.get("profile") or run_root.resolve().name)


def publish_dir(profile: str, paper_dir: Path = PAPER_DIR) -> Path:
    """Where ``profile``'s run is published: ``<paper_dir>/runs/<profile>``. :class:`ReportError`
    for a profile that is not published (:data:`PUBLISHED_PROFILES`)."""
    if profile not in PUBLISHED_PROFILES:
        raise ReportError(f"profile {profile!r} is not published (only {', '.join(PUBLISHED_PROFILES)}); "
                          f"use: python -m kdutils.report render --run outputs/{profile}")
    return paper_dir / "runs" / profile


def published_runs(paper_dir: Path = PAPER_DIR) -> dict[str, RunFiles]:
    """Every run published under ``<paper_dir>/runs/``, by profile in :data:`PUBLISHED_PROFILES`
    order, each validated (:func:`load_run`). A folder of another name there is refused."""
    runs_dir = Path(paper_dir) / "runs"
    if not runs_dir.is_dir():
        return {}
    found = sorted(p.name for p in runs_dir.iterdir() if p.is_dir() and not p.name.startswith("."))
    unknown = [name for name in found if name not in PUBLISHED_PROFILES]
    if unknown:
        raise ReportError(f"{runs_dir} holds {', '.join(unknown)}: only {', '.join(PUBLISHED_PROFILES)} are published")
    return {name: load_run(runs_dir / name) for name in PUBLISHED_PROFILES if name in found}
