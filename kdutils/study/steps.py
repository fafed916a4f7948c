"""The study's pipeline steps in one table: what each notebook reads, needs and writes.

For every notebook (``01_data`` ... ``06_batch_scoring``), :data:`STEPS` holds

* ``reads``: the profile values the notebook reads, whole sections (``deploy``) or single keys
  (``teacher.max_length``): what its cache key covers besides its upstream's key;
* ``needs``: the run files it needs from earlier notebooks, and ``needs_summary`` the
  ``summary.json`` entries it needs;
* ``writes``: the run files later notebooks read, and ``summary`` the ``summary.json`` entries.

Paths are relative to a run directory (:class:`kdutils.study.runs.RunDir`: ``data/``, ``models/``
as ``RunDir.model_dir`` lays them out, ``metrics/``). ``{seed}`` stands for each seed of the
profile, ``{depth}`` for each depth of the teacher's depth sweep; a ``*`` in a needed path is
satisfied by any match. Figures and tables are the report's and not listed.

What else knows which notebook does what derives from this table: the pipeline's cache keys
(:func:`kdutils.pipeline.step_parameters`), each notebook's check that its upstream ran
(:func:`missing`, :func:`kdutils.pipeline.require_upstream`), every "run notebook NN first"
message (:func:`run_first`) and the notebook a ``summary.json`` field comes from.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from kdutils.study.files import REPO_ROOT
from kdutils.study.layout import RunLayout
from kdutils.study.model_files import META_FILE, ONNX_FILES, VOCAB_FILE, WEIGHTS_FILE
from kdutils.study.specs import DEPTH_PATTERN, TEACHER, TRUNCATED_TEACHER, ConfigError

NOTEBOOK_DIR = REPO_ROOT / "notebooks"
# A step is a notebook named NN_lowercase_words.ipynb: JupyterLab's copies
# ("03_student-Copy1.ipynb"), "Untitled.ipynb" and checkpoints are not.
STEP_NAME = re.compile(r"^(\d\d)_[a-z0-9]+(?:_[a-z0-9]+)*\.ipynb$")
# discover_steps reports the notebooks it ignores in the pipeline's log.
log = logging.getLogger("kdutils.pipeline")

# A run directory's own layout relative to its root, so the table's paths are RunDir's: a
# placeholder such as "{seed}" is passed where RunDir takes a value and comes out where it puts one.
# (Only path-computing members are used: RunDir's folder properties create the folder.)
_LAYOUT = RunLayout(Path())


@dataclass(frozen=True)
class StepSpec:
    """One notebook of the pipeline: what it reads from the profile, needs and writes."""

    name: str  # the notebook's stem, "02_teacher"
    reads: tuple[str, ...]
    needs: tuple[str, ...] = ()
    needs_summary: tuple[str, ...] = ()
    writes: tuple[str, ...] = ()
    summary: tuple[str, ...] = ()

    @property
    def number(self) -> str:
        """The notebook's two-digit number: ``"02"`` for ``02_teacher``."""
        return self.name[:2]

    @property
    def notebook(self) -> str:
        """The notebook's path in the repository: ``notebooks/02_teacher.ipynb``."""
        return f"notebooks/{self.name}.ipynb"


def _rel(path: Path) -> str:
    return path.as_posix()


def _model_files(name: str, seed: str | None = None,
                 files: Sequence[str] = (META_FILE, WEIGHTS_FILE)) -> tuple[str, ...]:
    return tuple(_rel(_LAYOUT.model_dir(name, seed) / f) for f in files)  # type: ignore[arg-type]


def _predictions(name: str, split: str, seed: str | None = "{seed}") -> str:
    return _rel(_LAYOUT.predictions_path(name, split, seed))  # type: ignore[arg-type]


def _student_files(name: str) -> tuple[str, ...]:
    return (*_model_files(name, "{seed}", (META_FILE, WEIGHTS_FILE, VOCAB_FILE)), _predictions(name, "val"),
            _predictions(name, "test"), _rel(_LAYOUT.history_path(name, "{seed}")))  # type: ignore[arg-type]


def _teacher_files(name: str) -> tuple[str, ...]:
    return _model_files(name)


_DATA_META = _rel(_LAYOUT.data_meta_path)

STEPS: tuple[StepSpec, ...] = (
    StepSpec(
        "01_data",
        # The teacher's name and max_length only for the share of texts the teacher truncates.
        reads=("data", "teacher.max_length", "teacher.name"),
        writes=(_DATA_META, "data/train.parquet", "data/val.parquet", "data/test.parquet"),
        summary=("data",),
    ),
    StepSpec(
        "02_teacher",
        reads=("teacher",),
        needs=(_DATA_META,),
        writes=(*_teacher_files(TEACHER), *_teacher_files(TRUNCATED_TEACHER), _predictions(TEACHER, "test", None)),
        summary=(f"models.{TEACHER}", f"models.{TRUNCATED_TEACHER}"),
    ),
    StepSpec(
        "03_student",
        # The teacher's name only to compare sizes in prose.
        reads=("seeds", "student", "teacher.name"),
        needs=(_DATA_META,),
        writes=(*_student_files("student_baseline"), *_student_files("student_original"),
                *_model_files("tfidf_logreg", files=(META_FILE,))),
        summary=("models.student_baseline", "models.student_original", "models.tfidf_logreg", "student"),
    ),
    StepSpec(
        "04_distillation",
        reads=("distill", "seeds", "student", "teacher.max_length", "teacher.name",
               "teacher.precision", "teacher.score_batch_size", "teacher.scoring_runtime"),
        needs=(_DATA_META, *_teacher_files(TEACHER),
               *_model_files("student_baseline", "{seed}", (META_FILE, VOCAB_FILE)),
               _predictions("student_baseline", "test"), _predictions("student_baseline", "val")),
        needs_summary=(f"models.{TEACHER}", "models.student_baseline"),
        writes=("data/transfer_set.parquet", *_student_files("student_distilled")),
        summary=("models.student_distilled", "distillation", "targets.distillation"),
    ),
    StepSpec(
        "05_deployment",
        # The teacher's numeric mode for its eager latency.
        reads=("deploy", "teacher.precision"),
        # Students are served from one seed: any seed directory will do.
        needs=(_DATA_META, *_model_files(TEACHER, files=(META_FILE,)),
               *_model_files("student_distilled", "*", (META_FILE,))),
        writes=tuple(_rel(_LAYOUT.onnx_dir("{model}") / f) for f in ONNX_FILES.values()),
        summary=("inference", "serving", "targets.deployment"),
    ),
    StepSpec(
        "06_batch_scoring",
        # The teacher's numeric mode for its eager run. (The corpus is always the IMDB train reviews.)
        reads=("batch", "teacher.precision"),
        # The distilled student's ONNX exports (fp32 and int8) and the teacher, eager and ONNX.
        needs=(_DATA_META, *_model_files(TEACHER), *_model_files("student_distilled", "*", (META_FILE,)),
               _rel(_LAYOUT.onnx_dir("student_distilled") / ONNX_FILES["onnx"]),
               _rel(_LAYOUT.onnx_dir("student_distilled") / ONNX_FILES["onnx-int8"]),
               _rel(_LAYOUT.onnx_dir(TEACHER) / ONNX_FILES["onnx"])),
        summary=("batch_scoring", "targets.batch_scoring"),
    ),
)


class UnknownStep(KeyError):
    """No step of :data:`STEPS` has that number or name."""


def step(key: str) -> StepSpec:
    """The step numbered or named ``key`` (``"04"`` or ``"04_distillation"``); :class:`UnknownStep` if none."""
    for spec in STEPS:
        if key in (spec.number, spec.name):
            return spec
    raise UnknownStep(f"no pipeline step {key!r}; steps: {', '.join(s.name for s in STEPS)}")


def _pattern(template: str, separator: str) -> re.Pattern[str]:
    # A placeholder of the table matches one path segment (or key part): digits, `*` or `{seed}`;
    # `{depth}` only what a truncated teacher's name allows (kdutils.study.specs: never teacher_L0).
    parts = re.split(r"(\{\w+\}|\*)", template)
    body = "".join(DEPTH_PATTERN if p == "{depth}" else f"[^{separator}]+" if p.startswith("{") or p == "*"
                   else re.escape(p) for p in parts)
    return re.compile(body)


def writer(what: str) -> StepSpec | None:
    """The step that writes ``what``, or None.

    ``what`` is a run file (``models/teacher_L2/kdmodel.json``, ``metrics/x_seed{seed}_val.npz``)
    or a ``summary.json`` entry (``models.teacher_L2``, ``distillation``); the first step whose
    table entry matches it, placeholders standing for any value.
    """
    is_file = "/" in what or what.endswith((".json", ".parquet", ".npz"))
    for spec in STEPS:
        for entry in spec.writes if is_file else spec.summary:
            if _pattern(entry, "/" if is_file else ".").fullmatch(what):
                return spec
    return None


def run_first(what: str, rerun: bool = False) -> str:
    """The advice for a missing ``what`` (see :func:`writer`): ``run notebooks/01_data.ipynb for this
    profile first``, with ``rerun`` ``rerun notebooks/01_data.ipynb`` (for a damaged file)."""
    spec = writer(what)
    if spec is None:
        return "rerun the notebook that writes it" if rerun else "run the notebook that writes it first"
    return f"rerun {spec.notebook}" if rerun else f"run {spec.notebook} for this profile first"


def span(names: Iterable[str]) -> str:
    """Step numbers as a reader says them: ``"02"``, ``"02-04"`` (first to last)."""
    numbers = sorted({step(n).number for n in names})
    return numbers[0] if len(numbers) == 1 else f"{numbers[0]}-{numbers[-1]}"


def trainers() -> list[str]:
    """Names of the steps that train models (write ``models.<name>`` in ``summary.json``), in order."""
    return [s.name for s in STEPS if any(k.startswith("models.") for k in s.summary)]


def students() -> list[str]:
    """Names of the models trained once per seed, saved as ``models/<name>/seed<k>/`` (the BiLSTM
    students: ``student_baseline``, ``student_original``, ``student_distilled``), in pipeline order."""
    seeded = _rel(_LAYOUT.model_dir("{name}", "{seed}") / META_FILE)  # type: ignore[arg-type]
    pattern = re.compile(re.escape(seeded).replace(re.escape("{name}"), "([^/{}]+)"))
    return list(dict.fromkeys(m.group(1) for spec in STEPS for entry in spec.writes
                              if (m := pattern.fullmatch(entry))))


def model_file(name: str) -> str:
    """The file that shows model ``name`` (``teacher_L2``, ``student_baseline``) was trained: its
    ``kdmodel.json`` as the table lays it out, any seed for a student. KeyError if no step trains it."""
    for spec in STEPS:
        for entry in spec.writes:
            parts = entry.split("/")
            if parts[0] == "models" and parts[-1] == META_FILE and _pattern(parts[1], "/").fullmatch(name):
                return "/".join(["models", name, *(re.sub(r"\{\w+\}", "*", p) for p in parts[2:])])
    raise KeyError(f"no pipeline step trains a model named {name!r}")


@dataclass(frozen=True)
class Step:
    path: Path

    @property
    def name(self) -> str:
        return self.path.stem

    @property
    def number(self) -> str:
        return self.name[:2]


def discover_steps(notebook_dir: Path = NOTEBOOK_DIR) -> list[Step]:
    """The study's notebooks in ``notebook_dir``, in order: names matching :data:`STEP_NAME`.

    Other notebooks (JupyterLab copies such as ``03_student-Copy1.ipynb``, scratch files) are
    ignored and named in the log. Raises :class:`ConfigError` when two notebooks claim one number.
    """
    found, ignored = [], []
    for path in sorted(notebook_dir.glob("*.ipynb")):
        (found if STEP_NAME.match(path.name) else ignored).append(path)
    if ignored:
        log.info("not pipeline steps (a step is named NN_name.ipynb): %s", ", ".join(p.name for p in ignored))
    numbers: dict[str, list[str]] = {}
    for path in found:
        numbers.setdefault(path.name[:2], []).append(path.name)
    clashes = {n: names for n, names in numbers.items() if len(names) > 1}
    if clashes:
        n, names = next(iter(sorted(clashes.items())))
        raise ConfigError(f"two notebooks are step {n} in {notebook_dir}: {', '.join(names)}; "
                          "rename or move the one that is not part of the study")
    return [Step(p) for p in found]
