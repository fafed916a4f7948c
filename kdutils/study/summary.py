"""The typed contract of a run's ``summary.json``: every section, every key, every unit.

Notebooks 01-05 each write one part of ``outputs/<profile>/summary.json`` (through
:meth:`kdutils.study.runs.RunDir.update_summary`) and :mod:`kdutils.report` renders the paper from
it. This module declares what they write, so a reader learns from one file what the paper is
built from::

    section        written by               model                producer (kdutils.…)
    data           01_data.ipynb            DataSection          data.describe.summary_section
    models.*       02 / 03 / 04             Models               teacher.evaluate.summary_entry,
                                                                 student.train.summarise_seeds
    student        03_student.ipynb         StudentSection       (notebook dict)
    distillation   04_distillation.ipynb    DistillationSection  student.distill.summary_sections
    inference      05_deployment.ipynb      InferenceSection     serving.micro.micro_benchmark
    serving        05_deployment.ipynb      ServingSection       serving.bench.serving_section (of
                                                                 bench.peer_comparison, loadtest.sweep,
                                                                 loadtest.fault_test and
                                                                 compare_micro_batching)

:meth:`kdutils.study.runs.RunDir.update_summary` validates every write against this contract, so a
notebook that writes a bad or unknown key fails in that notebook, naming the dotted field path.

Every top-level section is optional: a run of notebooks 01-02 only is a valid summary. Inside
a section every key the code always writes is required, and unknown keys fail
(``extra="forbid"``): a key renamed in a notebook is caught here, not as a silently empty table
cell. The only open mappings are the ones keyed by a run's own names (models, runtimes,
concurrency levels, data sources).

Units are part of each field's description. The conventions: accuracies, F1, ECE, agreements
and shares are **fractions** in [0, 1]; a distillation gain is in **points** (percentage points,
100 x a difference of fractions); latencies are **milliseconds** (``_ms``), durations **seconds**
(``_s``/``_seconds``), sizes **MiB** (``size_mb``: bytes / 2**20). A 95% interval is a
``[low, high]`` pair, or ``null`` when a run has too few seeds for one.

    summary = load_summary(run.summary_path)          # SummaryError names the bad field
    summary.distillation.gain_ci95                    # (low, high) in points, or None
    summary.dump()                                    # the JSON object again, key for key
"""

from __future__ import annotations

import functools
import json
import math
import re
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Discriminator,
    Field,
    PrivateAttr,
    SerializerFunctionWrapHandler,
    Strict,
    Tag,
    ValidationError,
    ValidatorFunctionWrapHandler,
    model_serializer,
    model_validator,
)
from pydantic_core import PydanticCustomError

from kdutils.study.files import json_default
from kdutils.study.specs import LOSSES, TEACHER_NAME
from kdutils.study.steps import STEPS, writer

__all__ = [
    "AblationRow",
    "Batching",
    "DataSection",
    "DistillationSection",
    "DistilledStudentEntry",
    "FaultTest",
    "FaultTestSkipped",
    "HttpOverhead",
    "InferenceRow",
    "InferenceSection",
    "LightClient",
    "LightStats",
    "LoadRunStats",
    "Machine",
    "Models",
    "PeerSettings",
    "Peers",
    "SeedRecord",
    "SeededEntry",
    "ServingSection",
    "StudentEntry",
    "StudentSection",
    "Summary",
    "SummaryError",
    "TargetRow",
    "TargetsSection",
    "TeacherEntry",
    "TeacherScoring",
    "TfidfEntry",
    "WindowStats",
    "load_summary",
    "notebook_for",
    "section_notebooks",
    "split_sections",
    "validate_summary",
]


class SummaryError(ValueError):
    """A ``summary.json`` that does not match this module's contract (the message names fields)."""


# --------------------------------------------------------------------------- value types

# Strict scalars: JSON "3" is not the integer 3 and 2.0 is not an integer count. Floats accept
# JSON integers (a measured 0 may be written as 0), never booleans or strings.
Int = Annotated[int, Strict()]
Float = Annotated[float, Strict()]
Str = Annotated[str, Strict()]
Bool = Annotated[bool, Strict()]
Count = Annotated[int, Strict(), Field(ge=0)]
Positive = Annotated[int, Strict(), Field(ge=1)]
NonNegative = Annotated[float, Strict(), Field(ge=0)]
# Bounded, so a value written in points (81.8) where a fraction (0.818) belongs fails here.
Fraction = Annotated[float, Strict(), Field(ge=0, le=1)]


def _ms_or_nan(value: float) -> float:
    if not (math.isnan(value) or value >= 0):
        raise PydanticCustomError("ms_or_nan", "expected a non-negative number of ms or NaN")
    return value


# A duration that is NaN where nothing was measured (a repeat without a successful request).
MsOrNaN = Annotated[float, Strict(), AfterValidator(_ms_or_nan)]


def _interval(value: Any) -> tuple[float, float]:
    # One error for every wrong shape ("expected a list of 2 numbers"), not a tuple error per item.
    if (
        isinstance(value, list | tuple)
        and len(value) == 2
        and all(isinstance(v, int | float) and not isinstance(v, bool) for v in value)
    ):
        low, high = float(value[0]), float(value[1])
        if not (math.isnan(low) or math.isnan(high)) and low > high:
            raise PydanticCustomError("interval_order", "expected [low, high] with low <= high")
        return low, high
    raise PydanticCustomError("interval", "expected a list of 2 numbers [low, high]")


Interval = Annotated[tuple[float, float], BeforeValidator(_interval)]
"""A 95% interval ``[low, high]`` in the unit of the field it belongs to (read as a tuple)."""

# Concurrency levels are JSON object keys, so strings of digits ("1", "4", "16").
ConcurrencyKey = Annotated[str, Field(pattern=r"^[1-9][0-9]*$")]
Runtime = Literal["torch", "onnx", "onnx-int8"]
"""How a model runs in process (kdutils.inference.predictors.RUNTIMES)."""
Precision = Literal["fp32", "bf16"]
"""The teacher's numeric mode: float32, or bfloat16 autocast on CPUs with native bf16."""
Loss = Literal[tuple(LOSSES)]  # type: ignore[valid-type]
"""Student loss: a name of kdutils.study.specs.LOSSES (today labels-only ``ce``, ``mse`` on logits or
``kl`` at a temperature)."""
# Rows of the transfer set a student trains on: sources of kdutils.student.transfer_set.SOURCES joined by "+".
DataSources = Annotated[
    str, Field(pattern=r"^(train|augmented|unlabelled)(\+(train|augmented|unlabelled))*$")
]




class _Section(BaseModel):
    """Base of every section: unknown keys fail; JSON keys that are not identifiers use aliases."""

    model_config = ConfigDict(
        extra="forbid",
        validate_by_name=True,
        validate_by_alias=True,
        serialize_by_alias=True,
    )

    @classmethod
    def from_record(cls, record: dict[str, Any]) -> Any:
        """The section from a dict as a notebook would write it (numpy values allowed: they reach
        the model as the JSON values ``summary.json`` will hold). Raises pydantic's ValidationError."""
        return cls.model_validate(json.loads(json.dumps(record, default=json_default)))

    def record(self) -> dict[str, Any]:
        """What :meth:`kdutils.study.runs.RunDir.update_summary` takes: JSON keys, only the keys given."""
        return self.model_dump(by_alias=True, exclude_unset=True)


class _OpenSection(_Section):
    """A section with keys named by the run (models, runtimes, a batch size) besides its fields.

    Its extra keys are typed by each subclass's ``__pydantic_extra__``. A dump keeps the order
    the keys were read in, not declared fields first, so a validated summary is written back as
    the same file (update_summary appends keys in the order the notebooks write them).
    """

    model_config = ConfigDict(extra="allow")
    _order: list[str] = PrivateAttr(default_factory=list)

    @model_validator(mode="wrap")
    @classmethod
    def _remember_order(cls, data: Any, handler: ValidatorFunctionWrapHandler) -> Any:
        section = handler(data)
        if isinstance(data, dict):
            section._order = [str(k) for k in data]
        return section

    @model_serializer(mode="wrap")
    def _in_read_order(self, handler: SerializerFunctionWrapHandler) -> dict[str, Any]:
        out = handler(self)
        first = {k: out[k] for k in self._order if k in out}
        return first | {k: v for k, v in out.items() if k not in first}


# --------------------------------------------------------------------------- data (notebook 01)


class DataSection(_Section):
    """``data``: the splits every later notebook trains and tests on (kdutils.data.describe.summary_section)."""

    dataset: Str = Field(
        description="Data set name from the profile (e.g. rotten_tomatoes, or a user file)."
    )
    num_labels: Annotated[int, Strict(), Field(ge=2)] = Field(description="Number of classes.")
    label_names: list[Str] = Field(description="Class names, index = label id.")
    n_train: Count = Field(description="Sentences in the train split.")
    n_val: Count = Field(description="Sentences in the validation split.")
    n_test: Count = Field(description="Sentences in the test split.")
    duplicates_removed: Count = Field(description="Exact duplicate texts dropped before splitting.")
    conflicting_removed: Count = Field(
        description="Texts dropped because copies carried different labels."
    )
    split_method: Str = Field(
        description="How the splits were made, in words (e.g. 'stratified 0.8/0.1/0.1')."
    )
    sources: dict[Str, Str] = Field(
        description="Input file (package==version:path) -> sha256 hex digest."
    )
    split_seed: Int = Field(description="Random seed of the split.")
    mean_words_train: NonNegative = Field(
        description="Mean words per train sentence (student tokenizer)."
    )
    mean_pieces_train: NonNegative = Field(
        description="Mean word pieces per train sentence (teacher tokenizer)."
    )
    piece_tokenizer: Str = Field(
        description="Registry name of the tokenizer that counted word pieces."
    )
    teacher_truncated_share: Fraction = Field(
        description="Fraction of train sentences longer than the teacher's max_length (cut)."
    )
    glove_token_coverage: Fraction = Field(description="Fraction of train tokens found in GloVe.")
    glove_type_coverage: Fraction = Field(
        description="Fraction of distinct train words found in GloVe."
    )
    word_tokenizer: Str = Field(
        description="Dotted name (and version) of the student's word tokenizer."
    )
    texts_repaired: Count = Field(
        description="Texts whose encoding was repaired (ftfy) on reading."
    )

    @model_validator(mode="after")
    def _labels_match(self) -> DataSection:
        if len(self.label_names) != self.num_labels:
            raise ValueError(
                f"num_labels is {self.num_labels} but label_names has {len(self.label_names)} names"
            )
        return self


# --------------------------------------------------------------------------- models (02, 03, 04)


class TeacherEntry(_Section):
    """``models.teacher`` and ``models.teacher_L<k>``: one fine-tuned run (teachers.summary_entry).

    A single run has no interval; the test metrics are of that run.
    """

    accuracy: Fraction = Field(description="Test accuracy (fraction).")
    macro_f1: Fraction = Field(description="Test macro-F1 (fraction).")
    ece: Fraction = Field(description="Expected calibration error on test, 10 bins (fraction).")
    params: Positive = Field(description="Parameters of the model.")
    size_mb: NonNegative = Field(description="Weights on disk, MiB.")
    train_seconds: NonNegative = Field(description="Wall-clock fine-tuning time, seconds.")
    val_accuracy: Fraction = Field(description="Validation accuracy of the kept epoch (fraction).")
    epochs_run: Count = Field(
        description="Epochs trained (early stopping may end before the maximum)."
    )
    best_epoch: Positive = Field(description="Epoch kept (best validation accuracy), 1-based.")
    max_length: Positive = Field(description="Word pieces per input; longer inputs are cut.")
    num_layers: Positive = Field(
        description="Transformer layers kept (the full depth for 'teacher')."
    )
    world_size: Positive = Field(description="Training processes (1 = no distributed training).")
    precision: Precision = Field(
        description="Numeric mode of fine-tuning (teachers.summary_entry; fp32 when not recorded)."
    )
    latency_ms_b1: NonNegative = Field(
        description="Median batch-1 latency measured after training, ms (notebook 02's timing)."
    )
    torch_threads: Positive = Field(description="torch threads of that latency measurement.")


class SeedRecord(_Section):
    """One seed of a student (an item of ``per_seed``, kdutils.student.train.summarise_seeds)."""

    seed: Int = Field(description="Training seed.")
    accuracy: Fraction = Field(description="Test accuracy (fraction).")
    macro_f1: Fraction = Field(description="Test macro-F1 (fraction).")
    best_epoch: Positive | None = Field(
        description="Epoch kept, 1-based; null for models without epochs (TF-IDF)."
    )
    train_seconds: NonNegative = Field(description="Wall-clock training time, seconds.")
    val_accuracy: Fraction | None = Field(
        None, description="Validation accuracy of the kept epoch (fraction)."
    )


class SeededEntry(_Section):
    """Fields every model trained over seeds carries (kdutils.student.train.summarise_seeds).

    Means and standard deviations are over seeds (``ddof=1``; 0 for one seed). An interval is
    the Student-t 95% interval of the mean, ``null`` when there are too few seeds for one.
    """

    accuracy_mean: Fraction = Field(description="Mean test accuracy over seeds (fraction).")
    accuracy_std: NonNegative = Field(
        description="Standard deviation of test accuracy over seeds (fraction)."
    )
    accuracy_ci95: Interval | None = Field(
        description="95% interval of the mean accuracy (fractions)."
    )
    macro_f1_mean: Fraction = Field(description="Mean test macro-F1 over seeds (fraction).")
    macro_f1_std: NonNegative = Field(
        description="Standard deviation of macro-F1 over seeds (fraction)."
    )
    macro_f1_ci95: Interval | None = Field(
        description="95% interval of the mean macro-F1 (fractions)."
    )
    n_seeds: Positive = Field(description="Number of seeds (= len(per_seed)).")
    per_seed: list[SeedRecord] = Field(description="Each seed's result, in seed order.")
    params: Positive | None = Field(description="Parameters of the model (null if not recorded).")
    size_mb: NonNegative | None = Field(
        description="Saved model on disk, MiB (null if not recorded)."
    )
    val_accuracy_mean: Fraction | None = Field(
        None, description="Mean validation accuracy (fraction)."
    )
    ece_mean: Fraction | None = Field(None, description="Mean test ECE over seeds (fraction).")

    @model_validator(mode="after")
    def _seeds_counted(self) -> SeededEntry:
        if self.n_seeds != len(self.per_seed):
            raise ValueError(
                f"n_seeds is {self.n_seeds} but per_seed has {len(self.per_seed)} records"
            )
        return self


class StudentArch(_Section):
    """A BiLSTM student's architecture (kdutils.study.config.StudentArch, as ``model_dump()``)."""

    embedding: Literal["glove", "random"] = Field(
        description="GloVe-initialised or random embeddings."
    )
    embedding_dim: Positive = Field(description="Embedding width.")
    hidden_size: Positive = Field(description="LSTM hidden units per direction.")
    num_layers: Positive = Field(description="Stacked BiLSTM layers.")
    pooling: Literal["max", "mean", "both"] = Field(
        description="Pooling over time of the LSTM outputs."
    )
    dropout: Annotated[float, Strict(), Field(ge=0, lt=1)] = Field(
        description="Dropout probability."
    )


class StudentEntry(SeededEntry):
    """``models.student_baseline`` / ``models.student_original``: BiLSTMs trained on labels (03)."""

    arch: StudentArch = Field(description="Architecture of the student.")
    epochs: Positive = Field(description="Maximum epochs per seed.")


class TfidfEntry(SeededEntry):
    """``models.tfidf_logreg``: the TF-IDF + logistic regression reference (03, one seed)."""

    C: NonNegative = Field(description="Inverse regularisation strength chosen on validation.")
    C_grid: list[NonNegative] = Field(description="Values of C tried.")


class DistilledStudentEntry(SeededEntry):
    """``models.student_distilled``: the BiLSTM trained on the teacher's logits (notebook 04)."""

    teacher_agreement: Fraction = Field(
        description="Share of test sentences where student and teacher predict the same label, "
        "mean over seeds."
    )
    teacher_agreement_per_seed: list[Fraction] = Field(
        description="The same per seed, in seed order."
    )

    @model_validator(mode="after")
    def _agreement_per_seed(self) -> DistilledStudentEntry:
        if len(self.teacher_agreement_per_seed) != self.n_seeds:
            raise ValueError(
                f"teacher_agreement_per_seed has {len(self.teacher_agreement_per_seed)} values "
                f"for {self.n_seeds} seeds"
            )
        return self


class Models(_OpenSection):
    """``models``: one entry per trained model, keyed by its name.

    The names are fixed by the notebooks; besides the fields below only the depth sweep's
    truncated teachers ``teacher_L<k>`` (k layers kept) may appear, as :class:`TeacherEntry`.
    """

    # Unknown names reach _only_truncated_teachers, which names the rule; the rest are teachers.
    __pydantic_extra__: dict[str, TeacherEntry] = Field(init=False)

    teacher: TeacherEntry | None = Field(
        None, description="The fine-tuned teacher at full depth (02)."
    )
    student_baseline: StudentEntry | None = Field(
        None, description="Main BiLSTM trained on labels (03)."
    )
    student_original: StudentEntry | None = Field(
        None, description="BiLSTM at the original paper's sizes, trained on labels (03)."
    )
    tfidf_logreg: TfidfEntry | None = Field(
        None, description="TF-IDF + logistic regression reference (03)."
    )
    student_distilled: DistilledStudentEntry | None = Field(
        None, description="Main BiLSTM distilled from the teacher (04)."
    )

    @model_validator(mode="before")
    @classmethod
    def _only_truncated_teachers(cls, data: Any) -> Any:
        if isinstance(data, dict):
            unknown = [
                k for k in data if k not in cls.model_fields and not TEACHER_NAME.match(str(k))
            ]
            if unknown:
                raise PydanticCustomError(
                    "model_name",
                    "unknown model name(s) {names}: expected {allowed} or teacher_L<k>",
                    {
                        "names": ", ".join(map(repr, unknown)),
                        "allowed": ", ".join(cls.model_fields),
                    },
                )
        return data

    def entries(self) -> dict[str, TeacherEntry | SeededEntry]:
        """Every recorded model by name, in the order they were written."""
        found: dict[str, TeacherEntry | SeededEntry] = {
            name: value
            for name in type(self).model_fields
            if (value := getattr(self, name)) is not None
        }
        found.update(self.__pydantic_extra__ or {})
        ordered = {k: found[k] for k in self._order if k in found}
        return ordered | {k: v for k, v in found.items() if k not in ordered}

    def depth_sweep(self) -> dict[int, TeacherEntry]:
        """The truncated teachers ``teacher_L<k>`` by layers kept, shallowest first."""
        found = {
            int(name.removeprefix("teacher_L")): e
            for name, e in (self.__pydantic_extra__ or {}).items()
        }
        return dict(sorted(found.items()))


# --------------------------------------------------------------------------- student (03)


class StudentSection(_Section):
    """``student``: settings shared by every BiLSTM of the run (notebook 03)."""

    vocab_size: Positive = Field(
        description="Words in the student vocabulary (incl. special tokens)."
    )
    vocab_glove_share: Fraction = Field(description="Fraction of the vocabulary found in GloVe.")
    max_length: Positive = Field(description="Words per input; longer inputs are cut.")
    test_truncated_share: Fraction = Field(
        description="Fraction of test sentences longer than max_length."
    )
    batch_size: Positive = Field(description="Training batch size.")
    learning_rate: Annotated[float, Strict(), Field(gt=0)] = Field(
        description="Adam learning rate."
    )


# --------------------------------------------------------------------------- distillation (04)


class McNemarRow(_Section):
    """Exact McNemar test of one seed: distilled (a) against baseline (b) on the test sentences."""

    seed: Int = Field(description="Seed of the pair.")
    a_only_correct: Count = Field(description="Sentences only the distilled student gets right.")
    b_only_correct: Count = Field(description="Sentences only the baseline gets right.")
    discordant: Count = Field(description="a_only_correct + b_only_correct.")
    p_value: Fraction = Field(description="Two-sided exact p-value.")


class TransferSetCounts(_Section):
    """Rows of the transfer set by source (kdutils.student.transfer_set.TransferSet.counts)."""

    train: Count = Field(description="Labelled train sentences.")
    augmented: Count = Field(
        description="Augmented copies of train sentences (masking, swaps, n-grams)."
    )
    unlabelled: Count = Field(description="In-domain unlabelled sentences.")


class AblationRow(_Section):
    """One training setting of the ablation (kdutils.student.distill.setting_row, a subset of its keys)."""

    setting: Str = Field(description="Readable name: '<data>: <loss>'.")
    data: DataSources = Field(description="Transfer-set sources the setting trains on.")
    loss: Loss = Field(description="Loss of the setting.")
    alpha: Fraction = Field(description="Weight of the gold-label cross-entropy (1 = labels only).")
    temperature: Annotated[float, Strict(), Field(gt=0)] | None = Field(
        description="Temperature of a loss that takes one (kl); null for the others (ce, mse)."
    )
    seeds: Positive = Field(
        description="Number of seeds of the row (a count, unlike distillation.seeds)."
    )
    accuracy_mean: Fraction = Field(
        description="Mean test accuracy over the row's seeds (fraction)."
    )
    accuracy_ci95: Interval | None = Field(
        description="95% interval of that mean (fractions); null: too few seeds."
    )
    val_accuracy_mean: Fraction = Field(
        description="Mean validation accuracy, on which settings are chosen."
    )


class RuntimeCalibration(_Section):
    """How the teacher scorer chose between eager PyTorch and ONNX Runtime (kdutils.teacher.scoring)."""

    onnx_file: Str = Field(description="Exported ONNX teacher used for the calibration (its file name in "
                           "the scorer's cache folder; a full path in runs before 2026-12).")
    export_seconds: NonNegative = Field(
        description="Export time (0-ish when the file existed), seconds."
    )
    # The rest only when the runtime was chosen by timing ("auto"), not forced to "onnx".
    torch_seconds: NonNegative | None = Field(
        None, description="Eager time on the calibration batches, seconds."
    )
    onnx_seconds: NonNegative | None = Field(
        None, description="ONNX Runtime time on the same batches, seconds."
    )
    speedup: NonNegative | None = Field(None, description="torch_seconds / onnx_seconds.")
    max_abs_logit_diff: NonNegative | None = Field(
        None, description="Largest |logit difference| torch vs ONNX."
    )
    same_argmax: Bool | None = Field(None, description="Both runtimes predicted the same labels.")
    chosen: Literal["torch", "onnx"] | None = Field(None, description="Runtime used for the job.")

    @model_validator(mode="after")
    def _timed_or_forced(self) -> RuntimeCalibration:
        timing = (
            "torch_seconds",
            "onnx_seconds",
            "speedup",
            "max_abs_logit_diff",
            "same_argmax",
            "chosen",
        )
        given = [k for k in timing if getattr(self, k) is not None]
        if given and len(given) != len(timing):
            missing = ", ".join(k for k in timing if k not in given)
            raise ValueError(f"a timed calibration records every timing field; missing {missing}")
        return self


class TeacherScoring(_Section):
    """``distillation.teacher_scoring``: teacher logits of the transfer set (scorer.last_stats)."""

    rows: Count = Field(description="Sentences whose logits were requested.")
    from_cache: Count = Field(description="Of those, read from the logits cache.")
    scored: Count = Field(description="Of those, scored by the teacher in this run.")
    rebuilt: Bool = Field(description="The cache file was unreadable or stale and rebuilt.")
    seconds: NonNegative = Field(description="Wall-clock time of the call, seconds.")
    sentences_per_s: NonNegative | None = Field(
        description="Scoring rate of new sentences; null if none scored."
    )
    precision: Precision = Field(description="Numeric mode the teacher scored in.")
    precision_reason: Str = Field(description="Why that mode, in words.")
    runtime: Literal["torch", "onnx"] | None = Field(
        description="Runtime that scored; null when every row came from the cache."
    )
    runtime_calibration: RuntimeCalibration | None = Field(
        description="The torch-vs-ONNX timing behind `runtime`; null when nothing was scored."
    )
    engine: Literal["local", "ray"] | None = Field(
        default=None,
        description="Where new sentences were scored: `local` (the notebook's process) or `ray` (a "
        "Ray cluster's actors, distill.scoring_engine); absent in runs before it was recorded.",
    )
    workers: Positive | None = Field(default=None, description="Ray actors that scored (ray only).")


class DistillationSection(_Section):
    """``distillation``: distilled student against the baseline, and how it was trained (04).

    Gains are distilled minus baseline test accuracy in **points**, paired by seed.
    """

    gain_points_mean: Float = Field(description="Mean paired gain over seeds, points.")
    gain_points_std: NonNegative = Field(
        description="Standard deviation of the per-seed gains, points."
    )
    gain_ci95: Interval | None = Field(
        description="Student-t 95% interval of the mean gain, points; null: too few seeds."
    )
    gain_points_per_seed: list[Float] = Field(
        description="Gain of each seed, points, in seed order."
    )
    p_value: Fraction = Field(description="One-sided paired-bootstrap p-value (distilled better).")
    p_value_test: Str = Field(description="The test behind p_value, in words.")
    bootstrap_gain_ci95_points: Interval = Field(
        description="Bootstrap 95% interval of the gain, points."
    )
    mcnemar: list[McNemarRow] = Field(description="Exact McNemar test per seed.")
    mcnemar_test: Str = Field(description="The McNemar test, in words.")
    seeds: list[Int] = Field(description="Seeds of the headline comparison (ids, not a count).")
    transfer_set_size: Count = Field(
        description="Rows of the transfer set (= sum of transfer_set)."
    )
    transfer_set: TransferSetCounts = Field(description="Rows of the transfer set by source.")
    loss: Loss = Field(description="Loss of the chosen setting.")
    alpha: Fraction = Field(description="Gold-label weight of the chosen setting.")
    temperature: Annotated[float, Strict(), Field(gt=0)] | None = Field(
        description="Temperature of the chosen setting when its loss takes one (kl); null otherwise (mse)."
    )
    n_iter: Count = Field(
        description="Augmented copies per train sentence requested (0 = no augmentation)."
    )
    p_mask: Fraction = Field(description="Augmentation: probability of masking a word.")
    p_replace: Fraction = Field(description="Augmentation: probability of a same-POS word swap.")
    p_ngram: Fraction = Field(
        description="Augmentation: probability of sampling an n-gram of the sentence."
    )
    unlabelled: Count = Field(
        description="Unlabelled sentences in the transfer set (= transfer_set.unlabelled)."
    )
    unlabelled_requested: Count = Field(description="Unlabelled sentences the profile asked for.")
    unlabelled_source: Str | None = Field(
        description="Where the unlabelled sentences come from, in words; null when the profile asks for none."
    )
    epochs: Positive = Field(description="Maximum epochs per distilled seed.")
    batch_size: Positive = Field(description="Distillation batch size.")
    ablation_seeds: list[Int] = Field(description="Seeds of the ablation rows (ids).")
    ablation: list[AblationRow] = Field(
        description="Every setting tried, the chosen one among them."
    )
    selected_on: Literal["validation"] = Field(description="Split the setting was chosen on.")
    baseline_teacher_agreement: Fraction = Field(
        description="Share of test sentences where baseline and teacher agree, mean over seeds."
    )
    size_ratio_teacher_over_student: NonNegative | None = Field(
        description="Teacher size_mb / distilled size_mb; null without a teacher entry."
    )
    params_ratio_teacher_over_student: NonNegative | None = Field(
        description="Teacher params / distilled params; null without a teacher entry."
    )
    teacher_scoring: TeacherScoring = Field(
        description="How the transfer set's teacher logits were obtained."
    )
    train_seconds_total: NonNegative = Field(
        description="Training time of every student trained in this run (cached ones excluded), "
        "seconds."
    )


# --------------------------------------------------------------------------- inference (05)


class InferenceRow(_OpenSection):
    """In-process inference of one model in one runtime (kdutils.serving.micro.benchmark_predictor).

    The throughput key carries its batch size, ``throughput_per_s_b<throughput_batch>``
    (``throughput_per_s_b64`` by default); it is the only extra key allowed.
    """

    __pydantic_extra__: dict[str, Annotated[float, Strict(), Field(ge=0)]] = Field(init=False)

    latency_ms_p50: NonNegative = Field(
        description="Median batch-1 latency, ms (interleaved rounds)."
    )
    latency_ms_p95: NonNegative = Field(description="95th percentile batch-1 latency, ms.")
    latency_ms_mean: NonNegative = Field(description="Mean batch-1 latency, ms.")
    latency_samples: Positive = Field(description="Batch-1 timings behind the percentiles.")
    throughput_batch: Positive = Field(description="Batch size of the throughput pass.")
    accuracy: Fraction = Field(description="Test accuracy in this runtime (fraction).")
    size_mb: NonNegative = Field(description="Model file(s) on disk, MiB.")
    params: Positive = Field(description="Parameters.")
    mean_tokens: NonNegative = Field(description="Mean input length in the model's own tokens.")
    flops_per_sentence: NonNegative = Field(
        description="Estimated FLOPs per sentence of mean length."
    )
    gflops_achieved: NonNegative = Field(description="GFLOP/s achieved at throughput_batch.")
    gflops_achieved_b1: NonNegative = Field(
        description="GFLOP/s achieved at batch 1 (from the p50)."
    )
    agreement_with_eager: Fraction = Field(
        description="Share of test predictions equal to eager PyTorch's."
    )
    precision: Precision | None = Field(
        default=None,
        description="Numeric mode of an eager teacher (fp32, or bf16 autocast on CPUs with native "
        "bf16); absent for students, ONNX runtimes and runs before it was recorded.",
    )

    @model_validator(mode="after")
    def _one_throughput(self) -> InferenceRow:
        expected = f"throughput_per_s_b{self.throughput_batch}"
        extra = self.__pydantic_extra__ or {}
        if set(extra) != {expected}:
            raise PydanticCustomError(
                "throughput_key",
                "expected exactly one throughput key '{expected}' (sentences/s), got {got}",
                {"expected": expected, "got": ", ".join(sorted(extra)) or "none"},
            )
        return self

    @property
    def throughput_per_s(self) -> float:
        """Sentences per second at ``throughput_batch``."""
        return (self.__pydantic_extra__ or {})[f"throughput_per_s_b{self.throughput_batch}"]


class MatmulGflops(_Section):
    """Float32 matmul rate of this machine with the benchmark's threads, GFLOP/s."""

    torch: NonNegative = Field(description="torch.matmul, GFLOP/s.")
    numpy: NonNegative = Field(description="numpy matmul, GFLOP/s.")
    peak: NonNegative = Field(description="max(torch, numpy).")


class Machine(_Section):
    """``inference.machine``: where and how the in-process benchmark ran (bench.machine_info)."""

    cpu: Str = Field(description="CPU model name.")
    cores: Positive = Field(description="Logical cores.")
    torch_threads: Positive = Field(description="torch intra-op threads.")
    torch_interop_threads: Positive = Field(description="torch inter-op threads.")
    ort_threads: Positive = Field(description="ONNX Runtime intra-op threads.")
    matmul_peak_gflops: NonNegative = Field(description="= matmul_gflops.peak, GFLOP/s.")
    matmul_gflops: MatmulGflops = Field(description="Matmul rate per library, GFLOP/s.")
    other_processes_cpu_share: Fraction | None = Field(
        description="Share of all cores other processes used meanwhile; null: not measurable."
    )
    latency_measurement: Str = Field(description="How batch-1 latency was measured, in words.")


class InferenceSection(_OpenSection):
    """``inference``: ``{model: {runtime: row}}`` for every exported model, plus ``machine``."""

    __pydantic_extra__: dict[str, dict[Runtime, InferenceRow]] = Field(init=False)

    machine: Machine = Field(description="The machine and threads of every row.")

    def by_model(self) -> dict[str, dict[Runtime, InferenceRow]]:
        """Every benchmarked model's rows by runtime, in the order they were measured."""
        return dict(self.__pydantic_extra__ or {})


# --------------------------------------------------------------------------- serving (05)


class WindowStats(_Section):
    """Load statistics of the requests started in one time window (kdutils.serving.loadtest.load_stats).

    Percentiles are over successful requests only and null when none succeeded.
    """

    requests: Count = Field(description="Requests started in the window.")
    errors: Count = Field(description="Failed requests (see LoadRunStats for a whole run's count).")
    rps: NonNegative = Field(description="Requests per second over the window.")
    p50_ms: NonNegative | None = Field(description="Median latency, ms.")
    p95_ms: NonNegative | None = Field(description="95th percentile latency, ms.")
    p99_ms: NonNegative | None = Field(description="99th percentile latency, ms.")
    max_ms: NonNegative | None = Field(
        None, description="Slowest successful request, ms; absent for an empty window."
    )


class LoadRunStats(WindowStats):
    """One locust run (kdutils.serving.loadtest.run_load): the measured window after the warm-up.

    ``errors`` counts every failed request of the run, warm-up included; ``requests`` and the
    latencies only the measured window.
    """

    requests_total: Count = Field(description="Requests of the whole run, warm-up included.")
    users: Positive = Field(description="Concurrent closed-loop users (requests in flight).")


Sweep = dict[Str, dict[ConcurrencyKey, LoadRunStats]]
"""``{model: {concurrency: stats}}``; a served model name may carry ``@<runtime>``."""


class OtherCpuShares(_Section):
    """Share of all cores used by other processes in each serving block (null: not measurable)."""

    peers: Fraction | None = Field(
        description="During the peer comparison (peers, batching and http_overhead)."
    )
    one_replica: Fraction | None = Field(
        alias="1_replica", description="During the 1_replica sweep."
    )
    n_replicas_nginx: Fraction | None = Field(
        None,
        alias="N_replicas_nginx",
        description="During the nginx sweep and the fault test; absent without nginx.",
    )
    micro_batching: Fraction | None = Field(description="During micro_batching.")


class ServingSettings(_Section):
    """``serving.settings``: the load-test set-up."""

    cpu: Str = Field(description="CPU model name.")
    cores: Positive = Field(description="Logical cores.")
    replicas: Positive = Field(description="Replicas behind nginx.")
    threads_per_replica: Positive = Field(description="Model threads per server process.")
    warmup_s: NonNegative = Field(description="Warm-up before each measured window, seconds.")
    duration_s: Annotated[float, Strict(), Field(gt=0)] = Field(
        description="Measured window, seconds."
    )
    load_generator: Str = Field(description="The load generator of the sweeps, in words.")
    latency_client: Str = Field(
        description="The light client of peers, batching and http_overhead, in words."
    )
    nginx: Str | None = Field(description="nginx version string; null without nginx.")
    other_processes_cpu_share: OtherCpuShares = Field(
        description="Other processes' share of the cores per block (fractions)."
    )


class RuntimeOverhead(_Section):
    """One served model at one request in flight, against the no-op endpoint."""

    stats: LightStats = Field(description="The model's /predict at one request in flight.")
    p50_ratio: NonNegative | None = Field(
        description="HTTP p50 / no-op p50; null if either is missing. A measurement, not a target: "
                    "runs before issue 24 held it to 1.5x, which no model costing over half the no-op can meet."
    )
    in_process_p50_ms: NonNegative = Field(
        description="The same model's in-process batch-1 p50, ms (inference)."
    )


class HttpOverhead(_Section):
    """``serving.http_overhead``: our server at one request in flight (bench.peer_comparison's
    light-client run at concurrency 1, plus notebook 05's in-process p50s).

    ``predict``, ``p50_ratio`` and ``in_process_p50_ms`` repeat ``runtimes[model]``; ``floor``
    repeats ``peers.floor["1"]``.
    """

    users: Literal[1] = Field(description="Requests in flight (always 1).")
    model: Str = Field(description="The first served model (eager distilled student).")
    noop: LightStats = Field(description="Our no-op endpoint: HTTP, JSON and validation only.")
    predict: LightStats = Field(description="= runtimes[model].stats.")
    p50_ratio: NonNegative | None = Field(description="= runtimes[model].p50_ratio.")
    runtimes: dict[Str, RuntimeOverhead] = Field(
        description="Every served runtime of the student by name."
    )
    floor: LightStats = Field(
        description="The floor server (bare ASGI, same model) in the same interleaved run."
    )
    method: Str = Field(description="The latency client, in words (= peers.settings.method).")
    in_process_p50_ms: NonNegative = Field(description="= runtimes[model].in_process_p50_ms, ms.")

    @model_validator(mode="after")
    def _model_measured(self) -> HttpOverhead:
        if self.model not in self.runtimes:
            raise ValueError(f"model {self.model!r} is not among runtimes {sorted(self.runtimes)}")
        return self


class FaultTest(_Section):
    """``serving.fault_test``: one replica SIGKILLed halfway through a load run behind nginx."""

    model: Str = Field(description="Served model name.")
    users: Positive = Field(description="Requests in flight.")
    replicas: Positive = Field(description="Replicas behind nginx at the start.")
    killed_replica: Count = Field(description="Index of the killed replica.")
    kill_at_s: NonNegative = Field(description="Time of the kill after the first request, seconds.")
    requests: Count = Field(description="Requests of the whole run.")
    failed: Count = Field(description="Requests that failed (the goal is 0).")
    retried_by_nginx: Count = Field(description="Requests nginx passed to a second replica.")
    before: WindowStats = Field(description="After the warm-up, before the kill.")
    after: WindowStats = Field(description="After the kill.")
    p95_ratio: NonNegative | None = Field(description="after.p95_ms / before.p95_ms.")
    p99_ratio: NonNegative | None = Field(description="after.p99_ms / before.p99_ms.")


class FaultTestSkipped(_Section):
    """``serving.fault_test`` when it could not run."""

    skipped: Str = Field(description="Why, in words (e.g. 'nginx is not installed').")


def _fault_kind(value: Any) -> str:
    if isinstance(value, FaultTestSkipped) or (isinstance(value, dict) and "skipped" in value):
        return "FaultTestSkipped"
    return "FaultTest"


FaultResult = Annotated[
    Annotated[FaultTest, Tag("FaultTest")] | Annotated[FaultTestSkipped, Tag("FaultTestSkipped")],
    Discriminator(_fault_kind),
]
# Discriminator tags pydantic puts into an error's location; the message leaves them out. Class
# names, so no JSON key is ever mistaken for one.
_UNION_TAGS = frozenset({"FaultTest", "FaultTestSkipped"})


class MicroBatching(_Section):
    """``serving.micro_batching``: one replica, micro-batching off then on, ``users`` in flight."""

    model: Str = Field(description="Served model name.")
    users: Positive = Field(description="Requests in flight.")
    micro_batching_ms: NonNegative | None = Field(
        None, description="Older runs only: the batching window, ms (batching now waits for none)."
    )
    off: LoadRunStats = Field(description="Micro-batching off.")
    on: LoadRunStats = Field(description="Micro-batching on.")
    rps_ratio: NonNegative | None = Field(
        None, description="on.rps / off.rps; absent when off.rps is 0."
    )


class LightStats(_Section):
    """One target at one concurrency, measured by kdutils.serving.lightload.interleaved (lightload.stats).

    The light client sends ``repeats`` rounds of shuffled blocks to every target in turn;
    percentiles pool the successful requests of all repeats and are null when none succeeded.
    """

    p50_ms: NonNegative | None = Field(description="Median latency over all repeats, ms.")
    p95_ms: NonNegative | None = Field(description="95th percentile latency, ms.")
    p99_ms: NonNegative | None = Field(description="99th percentile latency, ms.")
    rps: NonNegative = Field(
        description="Requests per second over the target's own blocks (its wall-clock time)."
    )
    errors: Count = Field(description="Failed requests (non-200 answers or broken connections).")
    requests: Count = Field(description="Requests sent, failed ones included, all repeats.")
    p50_ms_repeats: list[MsOrNaN] = Field(
        description="Median latency of each repeat, ms, in order; NaN for a repeat without a "
        "successful request."
    )

    @model_validator(mode="after")
    def _errors_counted(self) -> LightStats:
        if self.errors > self.requests:
            raise ValueError(f"errors ({self.errors}) exceed requests ({self.requests})")
        return self


LightSweep = dict[ConcurrencyKey, LightStats]
"""``{concurrency: stats}`` of one server measured by the light client."""


def _same_levels(sweeps: dict[str, dict[str, Any]]) -> None:
    """Every server (and the client record) measured at the same concurrency levels."""
    levels = {name: sorted(v, key=int) for name, v in sweeps.items()}
    first = next(iter(levels.values()))
    if any(v != first for v in levels.values()):
        raise ValueError(f"concurrency levels differ: {levels}")


class LightClient(_Section):
    """The light client's own cost at one concurrency (lightload ``_client``)."""

    cpu_s: NonNegative = Field(description="CPU time of the client process, seconds.")
    wall_s: NonNegative = Field(description="Wall-clock time of the measurement, seconds.")
    cpu_share: NonNegative | None = Field(
        description="cpu_s / wall_s: cores the client kept busy (near 1 on one core: the client "
        "limits what it measures); null for a zero wall time."
    )
    cpu_us_per_request: NonNegative | None = Field(
        description="Client CPU per request, microseconds; null without requests."
    )
    pid: Positive = Field(description="Process id of the client (it runs in its own process).")
    cpus: list[Count] | None = Field(
        description="CPUs the client was pinned to; null where affinity is not available."
    )


class PeerSettings(_Section):
    """``serving.peers.settings``: how the peer comparison was measured (bench.peer_comparison)."""

    method: Str = Field(description="The latency client, in words (kdutils.serving.lightload).")
    requests_per_repeat: Positive = Field(description="Requests per target in each repeat.")
    repeats: Positive = Field(description="Interleaved repeats per concurrency.")
    block: Positive = Field(description="Requests per shuffled block.")
    threads: Positive = Field(description="Model threads per server process.")
    server_cpus: list[Count] | None = Field(
        description="CPUs every server was pinned to; null on one core or without affinity."
    )
    client_cpus: list[Count] | None = Field(
        description="CPUs the client was pinned to; null on one core or without affinity."
    )
    client: dict[ConcurrencyKey, LightClient] = Field(
        description="The client's own cost by concurrency."
    )


class Peers(_Section):
    """``serving.peers``: our server against two reference servers of the same model and runtime.

    ``floor`` is the cheapest possible server (bare ASGI: the lower bound on latency), ``naive``
    a straightforward FastAPI app, ``ours`` kdutils.serving.app as shipped (batching on); each
    ``{concurrency: stats}``, measured interleaved by the light client (bench.peer_comparison).
    """

    model: Str = Field(description="Served model name (``<model>@<runtime>``, or eager).")
    runtime: Runtime = Field(description="Runtime every peer serves the model in.")
    floor: LightSweep = Field(description="Lower-bound server by concurrency.")
    naive: LightSweep = Field(description="Straightforward server by concurrency.")
    ours: LightSweep = Field(description="Our server, kdutils.serving.app (batching on), by concurrency.")
    settings: PeerSettings = Field(description="How the servers were measured.")

    @model_validator(mode="after")
    def _consistent(self) -> Peers:
        _, _, suffix = self.model.partition("@")
        if (suffix or "torch") != self.runtime:
            raise ValueError(f"runtime {self.runtime!r} is not the runtime of model {self.model!r}")
        _same_levels(
            {
                "floor": self.floor,
                "naive": self.naive,
                "ours": self.ours,
                "settings.client": self.settings.client,
            },
        )
        return self


class Batching(_Section):
    """``serving.batching``: our server with batching off against on (the peers' model and client).

    ``on`` is the same measurement as ``peers.ours``.
    """

    model: Str = Field(description="Served model name.")
    max_batch: Positive = Field(description="Most texts the server batches into one model call.")
    off: LightSweep = Field(description="Batching off, by concurrency.")
    on: LightSweep = Field(description="Batching on (the shipped default), by concurrency.")

    @model_validator(mode="after")
    def _same_concurrency(self) -> Batching:
        _same_levels({"off": self.off, "on": self.on})
        return self


class ServingSection(_Section):
    """``serving``: HTTP load tests of the served models (notebook 05), in the order written."""

    settings: ServingSettings = Field(description="The load-test set-up.")
    peers: Peers = Field(description="Floor, naive peer and ours on one model (light client).")
    batching: Batching = Field(description="Our server with batching off against on.")
    http_overhead: HttpOverhead = Field(description="HTTP cost at one request in flight.")
    one_replica: Sweep = Field(alias="1_replica", description="One server process (locust).")
    n_replicas_nginx: Sweep | None = Field(
        None,
        alias="N_replicas_nginx",
        description="settings.replicas servers behind nginx (locust); absent without nginx.",
    )
    fault_test: FaultResult = Field(
        description="Replica killed behind nginx, or why it was skipped."
    )
    micro_batching: MicroBatching = Field(description="Micro-batching off against on (locust).")

    def sweeps(self) -> dict[str, Sweep]:
        """The concurrency sweeps by their JSON names (``1_replica``, ``N_replicas_nginx``)."""
        out = {"1_replica": self.one_replica}
        if self.n_replicas_nginx is not None:
            out["N_replicas_nginx"] = self.n_replicas_nginx
        return out


# --------------------------------------------------------------------------- batch scoring (06)


class BatchRun(_Section):
    """One configuration of batch scoring, file to file: the median over the interleaved rounds."""

    name: Str = Field(description="The configuration: model, engine and workers (student_onnx_local_2, ...).")
    model: Str = Field(description="The served model name (student_distilled@onnx, teacher, ...) or the peer.")
    engine: Str = Field(description="local, ray, or transformers-pipeline (the peer).")
    workers: Positive = Field(description="Worker processes or Ray actors (1 for the peer).")
    cores: Positive = Field(description="Cores the configuration ran on (workers x threads; the peer's threads).")
    batch_size: Positive = Field(description="Texts per model call.")
    sentences: Positive = Field(description="Sentences scored, file to file.")
    seconds: NonNegative = Field(description="Wall time of the whole job (start-up included), s.")
    sentences_per_s: NonNegative = Field(description="Sentences per second, whole job.")
    steady_sentences_per_s: NonNegative | None = Field(
        None, description="Sentences per second once the first worker was ready (start-up excluded)."
    )
    startup_s: NonNegative | None = Field(None, description="The job's start-up: workers or actors and model loads, s.")
    ray_init_s: NonNegative | None = Field(None, description="ray.init before the job (Ray rows), s.")
    per_core_per_s: NonNegative = Field(description="sentences_per_s / cores.")
    gflops_per_core: NonNegative | None = Field(
        None, description="Achieved GFLOP/s per core (students: analytic FLOPs at the corpus's mean length)."
    )
    rounds: Positive = Field(description="Rounds the median is over.")


class BatchScoringSection(_Section):
    """``batch_scoring``: batch prediction file to file on a fixed corpus (notebook 06)."""

    corpus: Str = Field(description="Where the sentences come from, in words.")
    corpus_sentences: Positive = Field(description="Sentences the students score.")
    teacher_sentences: Positive = Field(description="The first sentences, scored by the teacher and its peer.")
    mean_student_tokens: NonNegative = Field(description="Mean student tokens per corpus sentence.")
    flops_per_sentence: NonNegative = Field(description="The student's analytic FLOPs per sentence of mean length.")
    matmul_1core_gflops: NonNegative = Field(description="This machine's single-thread fp32 matmul rate, GFLOP/s.")
    floor_per_core_per_s: NonNegative = Field(
        description="The student's FLOP floor: matmul_1core_gflops / flops_per_sentence, sentences/s per core."
    )
    teacher_precision: Str = Field(description="The eager teacher's numeric mode (fp32 or bf16).")
    runs: list[BatchRun] = Field(description="Every configuration measured.")
    student_teacher_ratio: NonNegative = Field(
        description="The ONNX student's sentences/s per core over the eager teacher's (local engine)."
    )
    ours_over_peer: NonNegative = Field(
        description="Our command running the eager teacher over the transformers pipeline peer (best batch), "
        "whole jobs, same cores."
    )
    ray_over_local: NonNegative = Field(description="Ray 2 actors over local 2 workers, steady (start-up excluded).")
    engines_identical: Bool = Field(description="Local and Ray predictions identical, matched by id.")
    compared_rows: Count = Field(description="Rows compared between the engines.")
    peer_agreement: Fraction | None = Field(
        None, description="Share of the teacher subset where the peer and our command predict the same label."
    )
    cpu: Str = Field(description="The CPU.")
    cores: Positive = Field(description="Cores of this machine.")
    other_processes_cpu_share: Fraction | None = Field(
        None, description="Share of the cores other processes used during the measurements."
    )


# --------------------------------------------------------------------------- targets (04, 05, 06)


class TargetRow(_Section):
    """One target the study is judged by, and what was measured against it."""

    target: Str = Field(description="The target, in words (its threshold included).")
    met: Bool | None = Field(description="Whether it was met; null when it could not be measured.")
    measured: Str = Field(description="The measured figures, in words.")
    value: Annotated[float, Strict()] | Annotated[int, Strict()] | None = Field(
        None, description="The measured value the target compares (05's rows; in ``unit``)."
    )
    unit: Str | None = Field(None, description="Unit of ``value`` (x, points, requests, ...).")


class TargetsSection(_Section):
    """``targets``: every target checked, as notebooks 04, 05 and 06 report them."""

    distillation: list[TargetRow] | None = Field(
        None, description="The distillation targets (04: gain, its interval and p, size, gap closed)."
    )
    deployment: list[TargetRow] | None = Field(
        None, description="The deployment targets (05: latency ratios, int8, HTTP, serving, errors)."
    )
    batch_scoring: list[TargetRow] | None = Field(
        None, description="The batch-scoring targets (06: FLOP floor, the peer, Ray, identical engines)."
    )

    def rows(self) -> list[tuple[str, TargetRow]]:
        """Every target as ``(section, row)`` (``distillation`` first), sections not written left out."""
        return [(name, row) for name in type(self).model_fields for row in getattr(self, name) or ()]


# --------------------------------------------------------------------------- the whole file


class Summary(_Section):
    """A run's ``summary.json``. Each section is absent (or null) until its notebook has run."""

    data: DataSection | None = Field(None, description="The splits (notebook 01).")
    models: Models | None = Field(None, description="Every trained model (notebooks 02-04).")
    student: StudentSection | None = Field(None, description="Student settings (notebook 03).")
    distillation: DistillationSection | None = Field(
        None, description="Distilled against baseline (notebook 04)."
    )
    # Notebook 05 writes null before it replaces these sections, so null also means "absent".
    inference: InferenceSection | None = Field(
        None, description="In-process latency and throughput (notebook 05)."
    )
    serving: ServingSection | None = Field(None, description="HTTP load tests (notebook 05).")
    batch_scoring: BatchScoringSection | None = Field(
        None, description="Batch scoring file to file: students, teacher, the peer, engines (notebook 06)."
    )
    targets: TargetsSection | None = Field(
        None, description="Targets met or missed, with the measured figures (notebooks 04, 05, 06)."
    )

    @classmethod
    def model_validate(cls, obj: Any, **kwargs: Any) -> Summary:
        """Validate a parsed summary; :class:`SummaryError` (one message naming every bad field) if
        it does not fit. Keyword arguments are pydantic's (``strict``, ``context``, ...)."""
        try:
            return super().model_validate(obj, **kwargs)
        except ValidationError as exc:
            raise SummaryError(format_errors(exc)) from None

    @classmethod
    def from_dict(cls, raw: Any, source: str = "summary.json", *, writing: bool = False) -> Summary:
        """:meth:`model_validate` with ``source`` (e.g. the file's path) leading the message.

        ``writing``: the summary is about to be written (RunDir.update_summary), so the hint
        says a notebook wrote a field the contract does not know, not only that the file is old.
        """
        try:
            return super().model_validate(raw)
        except ValidationError as exc:
            raise SummaryError(format_errors(exc, source, writing=writing)) from None

    def dump(self) -> dict[str, Any]:
        """The JSON object again: keys as written, only those given (explicit nulls kept)."""
        return self.model_dump(mode="json", by_alias=True, exclude_unset=True)


def validate_summary(raw: Any, source: str = "summary.json") -> Summary:
    """Same as :meth:`Summary.from_dict`."""
    return Summary.from_dict(raw, source)


def load_summary(path: str | Path) -> Summary:
    """Read and validate ``path``; :class:`SummaryError` names every field that does not fit.

    A missing file raises ``FileNotFoundError`` (callers say which notebook to run).
    """
    path = Path(path)
    text = path.read_text(encoding="utf-8")
    try:
        raw = json.loads(text)
    except json.JSONDecodeError as exc:
        raise SummaryError(
            f"{path}: not valid JSON (line {exc.lineno}, column {exc.colno}: {exc.msg}) — "
            "an interrupted write? rerun the last notebook"
        ) from None
    return Summary.from_dict(raw, str(path))


# --------------------------------------------------------------------------- error messages

# At most this many fields are listed; a summary from a much older version fails everywhere.
MAX_LISTED_ERRORS = 12

@functools.cache
def section_notebooks() -> dict[str, str]:
    """The notebook that writes each top-level section written whole, from :data:`kdutils.study.steps.STEPS`:
    ``{"data": "01_data", ...}``. Sections written entry by entry (``models``, ``targets``) are in
    :func:`split_sections`."""
    return {key: spec.name for spec in STEPS for key in spec.summary if "." not in key}


def split_sections() -> set[str]:
    """Top-level sections whose entries different notebooks write (``models.teacher``: 02,
    ``targets.deployment``: 05), from :data:`kdutils.study.steps.STEPS`."""
    return {key.split(".")[0] for spec in STEPS for key in spec.summary if "." in key}


def notebook_for(loc: tuple[Any, ...]) -> str | None:
    """The notebook that writes the field at ``loc``: ``('models', 'teacher_L2')`` -> 02_teacher."""
    if not loc:
        return None
    if loc[0] in split_sections():
        spec = writer(f"{loc[0]}.{loc[1]}") if len(loc) > 1 else None
        return spec.name if spec else None
    return section_notebooks().get(str(loc[0]))


def field_path(loc: tuple[Any, ...]) -> str:
    """A pydantic location as a dotted path with list indices in brackets.

    ``('models', 'student_baseline', 'per_seed', 2, 'accuracy')`` ->
    ``models.student_baseline.per_seed[2].accuracy``.
    """
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        elif part in _UNION_TAGS:
            continue
        elif part == "[key]":
            # pydantic's marker for a mapping key that failed (e.g. an unknown runtime name).
            out += " (the key)"
        else:
            out += f".{part}" if out else str(part)
    return out or "(top level)"


_EXPECTED = {
    "int_type": "expected an integer",
    "int_from_float": "expected an integer",
    "int_parsing": "expected an integer",
    "float_type": "expected a number",
    "float_parsing": "expected a number",
    "string_type": "expected a string",
    "bool_type": "expected true or false",
    "list_type": "expected a list",
    "dict_type": "expected an object",
    "model_type": "expected an object",
    "model_attributes_type": "expected an object",
    "extra_forbidden": "unknown key (not in kdutils.study.summary; renamed or misspelt?)",
    "missing": "missing",
}
# Errors whose message says everything: the offending input is the key itself or a whole object.
_NO_INPUT = frozenset({"missing", "extra_forbidden", "model_name", "throughput_key"})


def _describe(error: Any) -> str:
    kind = error["type"]
    message = _EXPECTED.get(kind)
    if message is None:
        message = error["msg"]
        # "Input should be 'a' or 'b'" -> "expected 'a' or 'b'"; "Value error, ..." -> "...".
        message = re.sub(r"^Input should be ", "expected ", message)
        message = re.sub(r"^(Value|Assertion) error, ", "", message)
        if (error.get("ctx") or {}).get("le") == 1:
            message += " (a fraction, not points or percent)"
    value = error.get("input")
    if kind in _NO_INPUT or isinstance(value, dict):
        return message
    got = repr(value)
    if len(got) > 60:
        got = got[:57] + "..."
    return f"{message}, got {got}"


def format_errors(
    exc: ValidationError, source: str = "summary.json", *, writing: bool = False
) -> str:
    """One message for a failed validation: each field's dotted path, what was expected, and
    which notebook to rerun (a summary written by an older version of the notebooks), or, when
    ``writing``, which notebook wrote a field that does not match the contract."""
    errors = exc.errors(include_url=False)
    lines = [f"{field_path(tuple(e['loc']))}: {_describe(e)}" for e in errors[:MAX_LISTED_ERRORS]]
    if len(errors) > MAX_LISTED_ERRORS:
        lines.append(f"... and {len(errors) - MAX_LISTED_ERRORS} more")
    # Every notebook behind a bad field, listed or not, in pipeline order.
    notebooks = sorted({nb for e in errors if (nb := notebook_for(tuple(e["loc"]))) is not None})
    rerun = " and ".join(f"notebooks/{n}.ipynb" for n in notebooks) or "the notebooks that write it"
    hint = f"written by an older version? rerun {rerun}"
    if writing:
        hint = (
            f"not written: does {rerun.replace(' and ', ' or ')} write what kdutils.study.summary does "
            f"not declare? (a section left by an older version: rerun its notebook)"
        )
    if len(lines) == 1:
        return f"{source}: {lines[0]} — {hint}"
    return (
        f"{source}: {len(errors)} fields do not match the summary contract — {hint}\n  "
        + "\n  ".join(lines)
    )
