"""A run's directory layout: where each of its folders and files lies under ``outputs/<profile>/``.

:class:`RunLayout` only computes paths (and creates the folders a writer asks for); reading and
writing the run's ``summary.json`` is :class:`kdutils.study.runs.RunDir`'s.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from kdutils.study.files import REPO_ROOT, read_json

# Beside the split files in <run>/data/: their card and sha256 (kdutils.data.corpora writes and checks it).
DATA_META_FILE = "meta.json"
# The suffixes of a notebook's two HTML exports in <run>/reports/: with its code, and the reader's
# version without. The reader suffix also ends in the other, so it is stripped first.
REPORT_SUFFIX = ".html"
READER_REPORT_SUFFIX = ".reader.html"


def default_output_root() -> Path:
    """Where runs live: ``$KDUTILS_OUTPUTS`` when set, else ``<repo>/outputs`` (not created)."""
    return Path(os.environ.get("KDUTILS_OUTPUTS", REPO_ROOT / "outputs"))


def predictions_file(metrics_dir: str | Path, name: str, split: str, seed: int | None = None) -> Path:
    """Where a model's logits and labels on ``split`` are saved: ``<metrics>/<name>_seed<k>_<split>.npz``
    (``<name>_<split>.npz`` for a model trained once, ``seed=None``)."""
    stem = f"{name}_seed{seed}" if seed is not None else name
    return Path(metrics_dir) / f"{stem}_{split}.npz"


def history_file(metrics_dir: str | Path, name: str, seed: int) -> Path:
    """Where a student's per-epoch training history is saved: ``<metrics>/<name>_seed<k>_history.json``."""
    return Path(metrics_dir) / f"{name}_seed{seed}_history.json"


@dataclass(frozen=True)
class RunLayout:
    """Paths of one run: ``<output_root>/<profile name>/``.

    The folders (``data``, ``figures``, ``cache``, ...) are created when asked for, for the
    notebooks that write into them, except ``models`` and what lies below it, which their writers
    create atomically. Readers that must create nothing (the report, the HTML index) use the
    ``*_dir`` forms (``figures_dir``, ``tables_dir``, ``reports_dir``, ``paper_dir``), which only
    compute the path. Paths of files (``summary_path``, ``predictions_path``, ...) are only
    computed, never created. A run published under ``paper/runs/<profile>/`` keeps this layout
    for what it holds (summary, manifest, tables, figures).
    """

    root: Path

    @classmethod
    def for_profile(cls, profile_name: str, output_root: str | Path | None = None) -> RunLayout:
        """The run of profile ``profile_name`` under ``output_root`` (default
        :func:`default_output_root`); nothing is created."""
        base = Path(output_root) if output_root else default_output_root()
        return cls(base / profile_name)

    def _sub(self, name: str) -> Path:
        p = self.root / name
        p.mkdir(parents=True, exist_ok=True)
        return p

    @property
    def data(self) -> Path:
        """``data/`` (created): the splits, their card and the transfer set."""
        return self._sub("data")

    @property
    def models(self) -> Path:
        """``models/``, not created here: models are written with :func:`atomic_dir`, which creates
        it, so the folder exists only once a model does (``kdutils.serving.app`` tells runs apart by it)."""
        return self.root / "models"

    @property
    def figures_dir(self) -> Path:
        """``figures/``, not created: where the notebooks' figures are (PNG and PDF per figure)."""
        return self.root / "figures"

    @property
    def figures(self) -> Path:
        """``figures/`` (created), for writers: see :meth:`save_figure`."""
        return self._sub("figures")

    @property
    def tables_dir(self) -> Path:
        """``tables/``, not created: the notebooks' tables (Markdown and LaTeX per table)."""
        return self.root / "tables"

    @property
    def tables(self) -> Path:
        """``tables/`` (created), for writers: see :meth:`save_table`."""
        return self._sub("tables")

    @property
    def metrics(self) -> Path:
        """``metrics/`` (created): predictions and training histories."""
        return self._sub("metrics")

    @property
    def cache(self) -> Path:
        """``cache/`` (created): content-keyed caches (teacher logits, distilled students, checkpoints)."""
        return self._sub("cache")

    @property
    def logs(self) -> Path:
        """``logs/`` (created): the pipeline's, training and serving logs."""
        return self._sub("logs")

    @property
    def notebooks(self) -> Path:
        """``notebooks/`` (created): the executed notebooks."""
        return self._sub("notebooks")

    @property
    def reports_dir(self) -> Path:
        """``reports/``, not created: the notebooks' HTML exports and the run's index page."""
        return self.root / "reports"

    @property
    def reports(self) -> Path:
        """``reports/`` (created), for writers."""
        return self._sub("reports")

    def report_html(self, notebook: str, reader: bool = False) -> Path:
        """``reports/<notebook>.html``, the executed notebook ``notebook`` (``01_data``) exported with
        its code, or with ``reader`` its reader's version without code, ``<notebook>.reader.html``
        (not created)."""
        return self.reports_dir / f"{notebook}{READER_REPORT_SUFFIX if reader else REPORT_SUFFIX}"

    def reported_notebooks(self) -> set[str]:
        """The study notebooks (``NN_name``) with at least one HTML export under ``reports/``
        (:meth:`report_html`), by name; an empty set without the folder, which is not created."""
        if not self.reports_dir.is_dir():
            return set()
        return {p.name.removesuffix(READER_REPORT_SUFFIX).removesuffix(REPORT_SUFFIX)
                for p in self.reports_dir.glob(f"[0-9][0-9]_*{REPORT_SUFFIX}")}

    @property
    def index_html(self) -> Path:
        """``reports/index.html``: the run's index page (:func:`kdutils.report.write_index`; not created)."""
        return self.reports_dir / "index.html"

    @property
    def paper_dir(self) -> Path:
        """``paper/``, not created: the paper rendered for this run alone
        (:func:`kdutils.report.render_run`)."""
        return self.root / "paper"

    @property
    def summary_path(self) -> Path:
        """``summary.json`` (not created): every notebook's results (:mod:`kdutils.study.summary`)."""
        return self.root / "summary.json"

    @property
    def manifest_path(self) -> Path:
        """``manifest.json`` (not created): parameters, versions, input hashes, per-notebook records."""
        return self.root / "manifest.json"

    def read_manifest(self) -> dict[str, Any]:
        """``manifest.json`` as parsed JSON (``{}`` before the pipeline wrote one).

        Raises ``json.JSONDecodeError`` for a file that is not JSON."""
        return read_json(self.manifest_path) if self.manifest_path.exists() else {}

    def model_dir(self, name: str, seed: int | None = None) -> Path:
        """Where a trained model lives: ``models/<name>`` or ``models/<name>/seed<k>`` (not created)."""
        p = self.models / name
        return p / f"seed{seed}" if seed is not None else p

    def onnx_dir(self, name: str) -> Path:
        """Where the ONNX exports of model ``name`` live: ``models/onnx/<name>/`` (not created)."""
        return self.models / "onnx" / name

    @property
    def data_meta_path(self) -> Path:
        """``data/meta.json``, written with the splits by :func:`kdutils.data.corpora.write_splits` (not created)."""
        return self.root / "data" / DATA_META_FILE

    @property
    def transfer_set_path(self) -> Path:
        """``data/transfer_set.parquet``: the distillation rows (:class:`kdutils.student.transfer_set.TransferSet`)."""
        return self.data / "transfer_set.parquet"

    def predictions_path(self, name: str, split: str, seed: int | None = None) -> Path:
        """``metrics/<name>_seed<k>_<split>.npz`` (see :func:`predictions_file`; not created)."""
        return predictions_file(self.root / "metrics", name, split, seed)

    def history_path(self, name: str, seed: int) -> Path:
        """``metrics/<name>_seed<k>_history.json`` (see :func:`history_file`; not created)."""
        return history_file(self.root / "metrics", name, seed)

    @property
    def teacher_logits_cache(self) -> Path:
        """``cache/teacher_logits/``: the scorer's content-keyed logits (:mod:`kdutils.teacher.scoring`)."""
        return self.cache / "teacher_logits"

    @property
    def distill_cache(self) -> Path:
        """``cache/distill_runs/``: distilled students by setting, seed and code (:func:`kdutils.student.distill.run_setting`)."""
        return self.cache / "distill_runs"

    def checkpoint_dir(self, name: str) -> Path:
        """``cache/checkpoints/<name>/``: a teacher's fine-tuning checkpoints, removed once it is saved."""
        return self.cache / "checkpoints" / name

    def train_log(self, name: str) -> Path:
        """``logs/<name>_train.log``: the output of a teacher trained under torchrun."""
        return self.logs / f"{name}_train.log"

    @property
    def pipeline_log(self) -> Path:
        """``logs/pipeline.log``: the pipeline's progress lines."""
        return self.logs / "pipeline.log"

    @property
    def serving_logs(self) -> Path:
        """``logs/serving/``: the deployment's server, nginx and load-test files."""
        return self._sub("logs/serving")

    @property
    def state_dir(self) -> Path:
        """``.state/``: the pipeline's record of each step's cache key."""
        return self._sub(".state")
