"""A run: its directory (:class:`RunDir`, the paths of :class:`~kdutils.study.layout.RunLayout`)
with its ``summary.json`` read, validated and merged, figures, tables and predictions saved, and
what a step needs that the run does not have yet.
"""

from __future__ import annotations

import fcntl
import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from kdutils.study.escaping import latex_text, markdown_frame
from kdutils.study.files import atomic_path, json_default, read_json, save_figure_files, write_json
from kdutils.study.layout import RunLayout
from kdutils.study.steps import StepSpec, step, writer
from kdutils.study.summary import Summary, load_summary


def save_predictions(path: str | Path, logits: Any, labels: Any) -> Path:
    """Write ``logits`` (n, classes; float32) and ``labels`` (n; int64) to an ``.npz`` atomically:
    the file :func:`predictions_file` names, read back for paired comparisons between models."""
    import numpy as np  # runs is imported by light tools (the pipeline CLI) that never need numpy

    path = Path(path)
    with atomic_path(path) as tmp, open(tmp, "wb") as handle:
        np.savez(handle, logits=np.asarray(logits, dtype=np.float32), labels=np.asarray(labels, dtype=np.int64))
    return path


def _deep_update(base: dict, extra: dict) -> dict:
    for key, value in extra.items():
        if isinstance(value, dict) and isinstance(base.get(key), dict):
            _deep_update(base[key], value)
        else:
            base[key] = value
    return base


@dataclass(frozen=True)
class RunDir(RunLayout):
    """A run's directory (:class:`~kdutils.study.layout.RunLayout`'s paths) and what is written in it."""

    def read_summary(self) -> dict[str, Any]:
        """``summary.json`` as parsed JSON, unvalidated ({} before the first notebook)."""
        return read_json(self.summary_path) if self.summary_path.exists() else {}

    def summary(self) -> Summary:
        """``summary.json`` validated against :mod:`kdutils.study.summary` (an empty Summary before any
        notebook). Raises :class:`~kdutils.study.summary.SummaryError` naming each bad field."""
        if not self.summary_path.exists():
            return Summary()
        return load_summary(self.summary_path)

    def update_summary(self, section: dict[str, Any]) -> dict[str, Any]:
        """Deep-merge ``section`` into ``summary.json`` under a lock, written atomically.

        The merged result must fit the contract of :mod:`kdutils.study.summary`: otherwise
        :class:`~kdutils.study.summary.SummaryError` names each bad field by its dotted path and the
        file is left as it was, so a notebook writing a bad or unknown key fails where it writes.
        """
        self.root.mkdir(parents=True, exist_ok=True)
        with open(self.root / ".summary.lock", "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            # The JSON round trip turns numpy values, tuples and Paths into what the file will hold.
            summary = _deep_update(self.read_summary(), json.loads(json.dumps(section, default=json_default)))
            Summary.from_dict(summary, str(self.summary_path), writing=True)
            write_json(self.summary_path, summary)
        return summary

    def save_figure(self, fig: Any, name: str) -> list[Path]:
        """Save a matplotlib figure as ``figures/<name>.png`` (web) and ``.pdf`` (print), atomically
        (:func:`save_figure_files`); returns the two paths, PNG first."""
        return save_figure_files(fig, self.figures, name)

    def save_table(self, df: Any, name: str, caption: str = "", floatfmt: str = ".3g") -> list[Path]:
        """Save a pandas table as Markdown and LaTeX under ``tables/``, the text of its cells, headers
        and caption escaped for each (a label name is text, never markup)."""
        md_target, tex_target = self.tables / f"{name}.md", self.tables / f"{name}.tex"
        with atomic_path(md_target) as tmp:
            tmp.write_text(markdown_frame(df).to_markdown(index=False, floatfmt=floatfmt) + "\n")
        with atomic_path(tex_target) as tmp:
            tex = df.to_latex(index=False, caption=latex_text(caption) if caption else None,
                              float_format="%.3g", escape=True)
            # In LaTeX text mode < > | print as other glyphs (as in the paper's tables).
            tmp.write_text(tex.replace("<", r"\textless{}").replace(">", r"\textgreater{}").replace("|", r"\textbar{}"))
        return [md_target, tex_target]


@dataclass(frozen=True)
class Missing:
    """One thing a step needs and does not find, and the step that writes it (None: unknown)."""

    what: str
    writer: StepSpec | None

    def __str__(self) -> str:
        return f"{self.what} (run {self.writer.notebook})" if self.writer else f"{self.what} (no step writes it)"


def _expand(template: str, seeds: Sequence[int]) -> list[str]:
    return [template.format(seed=s) for s in seeds] if "{seed}" in template else [template]


def missing(root: str | Path, key: str, seeds: Sequence[int] = (), extra: Sequence[str] = ()) -> list[Missing]:
    """What step ``key`` needs (its table entry, then ``extra`` run files) and does not find under the
    run directory ``root``, each with the step that writes it. Nothing is created.

    ``{seed}`` in a needed path is checked for every one of ``seeds`` (so not at all without
    seeds); a ``*`` is satisfied by any match. The ``summary.json`` entries it needs are read from
    the validated summary. Raises :class:`UnknownStep` for an unknown ``key`` and
    :class:`~kdutils.study.summary.SummaryError` for a ``summary.json`` that does not fit its contract.
    """
    root = Path(root)
    spec = step(key)
    out: list[Missing] = []
    for template in dict.fromkeys((*spec.needs, *extra)):
        for rel in _expand(template, seeds):
            found = any(root.glob(rel)) if "*" in rel else (root / rel).exists()
            if not found:
                out.append(Missing(str(root / rel), writer(template)))
    if spec.needs_summary:
        run = RunDir(root)
        summary = run.summary()
        for entry in spec.needs_summary:
            # A dotted entry names one model of the models section (the only section keyed by name).
            section, _, name = entry.partition(".")
            value = getattr(summary, section)
            if value is None or (name and name not in value.entries()):
                out.append(Missing(f"{run.summary_path.name} has no {entry}", writer(entry)))
    return out


def to_run(problems: Iterable[Missing]) -> list[str]:
    """The steps (names, in pipeline order) whose outputs ``problems`` name."""
    return sorted({p.writer.name for p in problems if p.writer is not None})
