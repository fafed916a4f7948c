"""A run's directory layout, atomic writes, and the run's ``summary.json``.

Everything a run writes lives under ``outputs/<profile>/``. Files and model
directories are written to a temporary sibling and renamed into place, so an
interrupted run never leaves a half-written artefact that a later step trusts.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from kdutils.summary import Summary, load_summary
from kdutils.summary import json_default as _json_default

REPO_ROOT = Path(__file__).resolve().parent.parent
# Beside the split files in <run>/data/: their card and sha256 (kdutils.data writes and checks it).
DATA_META_FILE = "meta.json"
# The suffixes of a notebook's two HTML exports in <run>/reports/: with its code, and the reader's
# version without. The reader suffix also ends in the other, so it is stripped first.
REPORT_SUFFIX = ".html"
READER_REPORT_SUFFIX = ".reader.html"
# Figures are saved as PNG at this resolution (for the web) and as PDF (for print).
FIGURE_DPI = 200


def default_output_root() -> Path:
    """Where runs live: ``$KDUTILS_OUTPUTS`` when set, else ``<repo>/outputs`` (not created)."""
    return Path(os.environ.get("KDUTILS_OUTPUTS", REPO_ROOT / "outputs"))


def sha256_file(path: str | Path, chunk: int = 1 << 20) -> str:
    """Hex sha256 of the file at ``path``, read in blocks of ``chunk`` bytes.

    Raises ``OSError`` (e.g. ``FileNotFoundError``) when the file cannot be read.
    """
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


def sha256_text(*parts: str) -> str:
    """Hex sha256 of ``parts`` encoded as UTF-8, each followed by a NUL byte.

    The separator keeps ``("ab", "c")`` and ``("a", "bc")`` apart.
    """
    h = hashlib.sha256()
    for p in parts:
        h.update(p.encode("utf-8"))
        h.update(b"\0")
    return h.hexdigest()


def current_umask() -> int:
    """The process umask (read without changing it where /proc allows; os.umask is a set-and-get)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


@contextlib.contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yield a temporary file path; on success it replaces ``path`` in one rename.

    The file ends up with the permissions an ordinary ``open()`` would give (0666 minus the
    umask): mkstemp makes it owner-only, which would hide reports from a web server's user.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        if tmp_path.exists():
            os.chmod(tmp_path, 0o666 & ~current_umask())
        os.replace(tmp_path, path)
    finally:
        tmp_path.unlink(missing_ok=True)


@contextlib.contextmanager
def atomic_dir(path: str | Path) -> Iterator[Path]:
    """Yield an empty temporary directory; on success it replaces ``path`` as a whole.

    A crash inside the block leaves the old ``path`` (or nothing) in place, never a mix.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp"))
    os.chmod(tmp, 0o777 & ~current_umask())  # as mkdir would make it, not mkdtemp's owner-only 0700
    try:
        yield tmp
        old = None
        if path.exists():
            old = path.with_name(f".{path.name}.old-{os.getpid()}")
            os.replace(path, old)
        os.replace(tmp, path)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)


def write_json(path: str | Path, obj: Any) -> Path:
    """Write ``obj`` to ``path`` as indented JSON, atomically (:func:`atomic_path`); returns ``path``.

    numpy scalars and arrays and paths are written as JSON numbers, lists and strings; any other
    object JSON cannot hold raises ``TypeError`` and leaves ``path`` as it was.
    """
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(obj, indent=2, sort_keys=False, default=_json_default) + "\n")
    return Path(path)


def read_json(path: str | Path) -> Any:
    """The parsed JSON at ``path``. Raises ``FileNotFoundError`` or ``json.JSONDecodeError``."""
    return json.loads(Path(path).read_text())


def predictions_file(metrics_dir: str | Path, name: str, split: str, seed: int | None = None) -> Path:
    """Where a model's logits and labels on ``split`` are saved: ``<metrics>/<name>_seed<k>_<split>.npz``
    (``<name>_<split>.npz`` for a model trained once, ``seed=None``)."""
    stem = f"{name}_seed{seed}" if seed is not None else name
    return Path(metrics_dir) / f"{stem}_{split}.npz"


def save_figure_files(fig: Any, directory: str | Path, name: str, *, deterministic: bool = False) -> list[Path]:
    """Save the matplotlib figure ``fig`` as ``<directory>/<name>.png`` (:data:`FIGURE_DPI`, for the
    web) and ``<name>.pdf`` (for print), each atomically; returns the two paths, PNG first.

    With ``deterministic`` the files leave out the PDF's creation date and the PNG's software tag
    (matplotlib's version), so the same numbers drawn twice give the same bytes.
    """
    directory = Path(directory)
    stamp_free = {"png": {"Software": None}, "pdf": {"CreationDate": None}}
    paths = []
    for ext, kw in (("png", {"dpi": FIGURE_DPI}), ("pdf", {})):
        if deterministic:
            kw = {**kw, "metadata": stamp_free[ext]}
        target = directory / f"{name}.{ext}"
        with atomic_path(target) as tmp:
            fig.savefig(tmp, format=ext, bbox_inches="tight", **kw)
        paths.append(target)
    return paths


def save_predictions(path: str | Path, logits: Any, labels: Any) -> Path:
    """Write ``logits`` (n, classes; float32) and ``labels`` (n; int64) to an ``.npz`` atomically:
    the file :func:`predictions_file` names, read back for paired comparisons between models."""
    import numpy as np  # runs is imported by light tools (the pipeline CLI) that never need numpy

    path = Path(path)
    with atomic_path(path) as tmp, open(tmp, "wb") as handle:
        np.savez(handle, logits=np.asarray(logits, dtype=np.float32), labels=np.asarray(labels, dtype=np.int64))
    return path


def history_file(metrics_dir: str | Path, name: str, seed: int) -> Path:
    """Where a student's per-epoch training history is saved: ``<metrics>/<name>_seed<k>_history.json``."""
    return Path(metrics_dir) / f"{name}_seed{seed}_history.json"


def _deep_update(base: dict, extra: dict) -> dict:
    for key, value in extra.items():
        if isinstance(value, dict) and isinstance(base.get(key), dict):
            _deep_update(base[key], value)
        else:
            base[key] = value
    return base


@dataclass(frozen=True)
class RunDir:
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
    def for_profile(cls, profile_name: str, output_root: str | Path | None = None) -> RunDir:
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
        it, so the folder exists only once a model does (``kdutils.serve`` tells runs apart by it)."""
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
        """``summary.json`` (not created): every notebook's results (:mod:`kdutils.summary`)."""
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
        """``data/meta.json``, written with the splits by :func:`kdutils.data.write_splits` (not created)."""
        return self.root / "data" / DATA_META_FILE

    @property
    def transfer_set_path(self) -> Path:
        """``data/transfer_set.parquet``: the distillation rows (:class:`kdutils.distill.TransferSet`)."""
        return self.data / "transfer_set.parquet"

    def predictions_path(self, name: str, split: str, seed: int | None = None) -> Path:
        """``metrics/<name>_seed<k>_<split>.npz`` (see :func:`predictions_file`; not created)."""
        return predictions_file(self.root / "metrics", name, split, seed)

    def history_path(self, name: str, seed: int) -> Path:
        """``metrics/<name>_seed<k>_history.json`` (see :func:`history_file`; not created)."""
        return history_file(self.root / "metrics", name, seed)

    @property
    def teacher_logits_cache(self) -> Path:
        """``cache/teacher_logits/``: the scorer's content-keyed logits (:mod:`kdutils.scoring`)."""
        return self.cache / "teacher_logits"

    @property
    def distill_cache(self) -> Path:
        """``cache/distill_runs/``: distilled students by setting, seed and code (:func:`kdutils.distill.run_setting`)."""
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

    def read_summary(self) -> dict[str, Any]:
        """``summary.json`` as parsed JSON, unvalidated ({} before the first notebook)."""
        return read_json(self.summary_path) if self.summary_path.exists() else {}

    def summary(self) -> Summary:
        """``summary.json`` validated against :mod:`kdutils.summary` (an empty Summary before any
        notebook). Raises :class:`~kdutils.summary.SummaryError` naming each bad field."""
        if not self.summary_path.exists():
            return Summary()
        return load_summary(self.summary_path)

    def update_summary(self, section: dict[str, Any]) -> dict[str, Any]:
        """Deep-merge ``section`` into ``summary.json`` under a lock, written atomically.

        The merged result must fit the contract of :mod:`kdutils.summary`: otherwise
        :class:`~kdutils.summary.SummaryError` names each bad field by its dotted path and the
        file is left as it was, so a notebook writing a bad or unknown key fails where it writes.
        """
        self.root.mkdir(parents=True, exist_ok=True)
        with open(self.root / ".summary.lock", "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            # The JSON round trip turns numpy values, tuples and Paths into what the file will hold.
            summary = _deep_update(self.read_summary(), json.loads(json.dumps(section, default=_json_default)))
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
        # Imported here: kdutils.report imports this module.
        from kdutils.report.escaping import latex_text, markdown_frame

        md_target, tex_target = self.tables / f"{name}.md", self.tables / f"{name}.tex"
        with atomic_path(md_target) as tmp:
            tmp.write_text(markdown_frame(df).to_markdown(index=False, floatfmt=floatfmt) + "\n")
        with atomic_path(tex_target) as tmp:
            tex = df.to_latex(index=False, caption=latex_text(caption) if caption else None,
                              float_format="%.3g", escape=True)
            # In LaTeX text mode < > | print as other glyphs (as in the paper's tables).
            tmp.write_text(tex.replace("<", r"\textless{}").replace(">", r"\textgreater{}").replace("|", r"\textbar{}"))
        return [md_target, tex_target]
