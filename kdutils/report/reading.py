"""What the report reads: a run's ``summary.json`` and ``manifest.json``; where published runs live."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from kdutils.runs import REPO_ROOT, read_json
from kdutils.summary import Summary, load_summary

# Where each published profile lands, relative to the repository root.
PUBLISH_DIRS: dict[str, Path] = {"default": Path("paper"), "paper": Path("paper") / "mpnet-12"}


class ReportError(RuntimeError):
    """A report cannot be built; the message says what is missing or refused."""


def load_run_files(run_root: Path) -> tuple[Summary, dict[str, Any]]:
    """A run's summary, validated once here, and its manifest (``{}`` when there is none).

    Raises :class:`ReportError` without a ``summary.json`` and
    :class:`~kdutils.summary.SummaryError`, naming every field, for one that does not match the
    contract (e.g. one written by an older version of the notebooks).
    """
    summary_path = run_root / "summary.json"
    if not summary_path.exists():
        raise ReportError(f"{summary_path} does not exist: run the study first (python -m kdutils.pipeline run)")
    manifest_path = run_root / "manifest.json"
    return load_summary(summary_path), (read_json(manifest_path) if manifest_path.exists() else {})


def profile_of(run_root: Path, manifest: dict[str, Any]) -> str:
    """The run's profile: as its manifest records it, else the run folder's name."""
    return str(manifest.get("profile") or run_root.resolve().name)


def publish_dir(profile: str, repo_root: Path = REPO_ROOT) -> Path:
    """Where ``profile`` is published; :class:`ReportError` for a profile that is not published."""
    if profile not in PUBLISH_DIRS:
        raise ReportError(f"profile {profile!r} is not published (only {', '.join(PUBLISH_DIRS)}); "
                          f"use: python -m kdutils.report render --run outputs/{profile}")
    return repo_root / PUBLISH_DIRS[profile]
