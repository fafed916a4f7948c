"""Quantities read off a run's validated summary that tables, text, figures and index share.

Everything here takes a :class:`kdutils.study.summary.Summary` (read once, by
:func:`kdutils.report.reading.load_run`): a field the contract requires is used as it is; only
what the contract leaves optional (a section not run yet, a model not trained, a null interval
or latency) is checked for.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, NamedTuple

from kdutils.report.formatting import clip_ci, points_ci
from kdutils.stats import MIN_SEEDS_FOR_INTERVAL, gap_closed
from kdutils.study.specs import TEACHERS
from kdutils.study.summary import (
    DistillationSection,
    InferenceRow,
    LoadRunStats,
    SeededEntry,
    Summary,
    TeacherEntry,
)

# The level the paper's wording uses for "significant".
SIGNIFICANCE_LEVEL = 0.05


# ---- intervals over seeds: one rule for every table, sentence and page


def gain_seeds(dist: DistillationSection) -> int | None:
    """How many seeds the gain's interval is over: the per-seed gains, else the seed ids recorded."""
    return len(dist.gain_points_per_seed) or len(dist.seeds) or None


def _guarded(ci: Any, n: int | None, low: float, high: float) -> list[float] | None:
    if n is not None and n < MIN_SEEDS_FOR_INTERVAL:
        return None
    return clip_ci(ci, low, high)


def guard_intervals(summary: Summary) -> Summary:
    """A copy of ``summary`` whose intervals over seeds follow :func:`kdutils.stats.mean_ci`'s rule.

    Runs recorded before that rule have t-intervals from two seeds (``[-80.4, 173.7]`` %) and
    bounds beyond what is possible. Here an interval over fewer than
    :data:`kdutils.stats.MIN_SEEDS_FOR_INTERVAL` seeds becomes ``None`` and the others are
    clipped to the feasible range (accuracies [0, 1], gains [-100, 100] points), so the paper,
    its tables and the index say the same thing. ``summary`` itself is not changed.
    """
    out = summary.model_copy(deep=True)
    if out.models is not None:
        for entry in out.models.entries().values():
            if isinstance(entry, SeededEntry):
                entry.accuracy_ci95 = _guarded(entry.accuracy_ci95, entry.n_seeds, 0.0, 1.0)
                entry.macro_f1_ci95 = _guarded(entry.macro_f1_ci95, entry.n_seeds, 0.0, 1.0)
    dist = out.distillation
    if dist is not None:
        dist.gain_ci95 = _guarded(dist.gain_ci95, gain_seeds(dist), -100.0, 100.0)
        # Over test sentences, not seeds: clipped only.
        dist.bootstrap_gain_ci95_points = clip_ci(dist.bootstrap_gain_ci95_points, -100.0, 100.0)
        for row in dist.ablation:
            row.accuracy_ci95 = _guarded(row.accuracy_ci95, row.seeds, 0.0, 1.0)
    return out


def significance_caveat(significant: bool, ci: Any, n_seeds: int | None) -> str:
    """What must follow "significant at the 0.05 level" wherever it is said ('' when nothing).

    The p-value comes from a paired test over test sentences (seed-averaged accuracies); it
    says nothing about new seeds. When the interval over seeds is missing (too few seeds) or
    includes zero, a "significant" gain is qualified in the same words in the abstract, the
    results, the discussion, the run index and notebook 04. Starts with ", " when not empty.
    """
    if not significant:
        return ""
    seeds = f"{n_seeds} seed{'s' if n_seeds != 1 else ''}" if n_seeds is not None else "these seeds"
    clipped = clip_ci(ci, -100.0, 100.0)
    if clipped is None:
        return (f", although with {seeds} there is no interval over seeds (none below {MIN_SEEDS_FOR_INTERVAL}): "
                "the test covers new test sentences, not new seeds")
    if clipped[0] <= 0 <= clipped[1]:
        return f", although with {seeds} the 95% interval over seeds, {points_ci(clipped, 2)}, still includes zero"
    return ""


# ---- the teacher and its depths


def teacher_key(manifest: dict[str, Any]) -> str | None:
    """The teacher's registry name (``minilm-l6``) from the run's parameters; ``None`` if unknown.

    The summary records the teacher's results, not its name: the name is a parameter.
    """
    name = ((manifest.get("parameters") or {}).get("teacher") or {}).get("name")
    return name if isinstance(name, str) and name in TEACHERS else None


def _registry_label(key: str | None, fallback: str) -> str:
    return TEACHERS[key].label if key else fallback


def teacher_label(manifest: dict[str, Any], fallback: str = "teacher") -> str:
    """The run's teacher as the paper names it (``all-MiniLM-L6-v2``, from :mod:`kdutils.study.specs`),
    or ``fallback`` when the manifest names no teacher of the registry (:func:`teacher_key`)."""
    return _registry_label(teacher_key(manifest), fallback)


@dataclass(frozen=True)
class Depth:
    """One teacher of the depth sweep: ``teacher_L<k>`` (``layers`` = k) or the full ``teacher``."""

    name: str
    layers: int
    entry: TeacherEntry


def depth_rows(summary: Summary) -> list[Depth]:
    """The truncated teachers, shallowest first, then the full teacher; ``[]`` before notebook 02."""
    models = summary.models
    if models is None:
        return []
    rows = [Depth(f"teacher_L{k}", k, entry) for k, entry in models.depth_sweep().items()]
    if models.teacher is not None:
        rows.append(Depth("teacher", models.teacher.num_layers, models.teacher))
    return rows


# ---- in-process inference and serving


class Bench(NamedTuple):
    """One model in one runtime of the in-process benchmark (``inference.<model>.<runtime>``)."""

    model: str
    runtime: str
    row: InferenceRow


def inference_rows(summary: Summary) -> list[Bench]:
    """Every benchmarked model and runtime, in the order notebook 05 measured them; ``[]`` before it."""
    if summary.inference is None:
        return []
    return [Bench(model, runtime, row) for model, by_runtime in summary.inference.by_model().items()
            for runtime, row in by_runtime.items()]


def eager_p50_ms(summary: Summary, model: str) -> float | None:
    """Batch-1 p50 latency (ms) of ``model`` in eager PyTorch from the in-process benchmark."""
    row = next((b.row for b in inference_rows(summary) if b.model == model and b.runtime == "torch"), None)
    return row.latency_ms_p50 if row is not None else None


def latency_ratio(summary: Summary, student: str = "student_distilled") -> float | None:
    """How many times slower the full teacher answers one sentence than ``student``: the ratio of
    their batch-1 p50 latencies in eager PyTorch (the same runtime and the same interleaved
    benchmark, notebook 05). ``None`` without both measurements or with a zero student latency."""
    teacher, small = eager_p50_ms(summary, "teacher"), eager_p50_ms(summary, student)
    if teacher is None or small is None or small <= 0:
        return None
    return teacher / small


SETUP_LABELS = {"1_replica": "1 replica", "N_replicas_nginx": "replicas behind nginx"}


class Load(NamedTuple):
    """One closed-loop load run: a setup (``1_replica``, ``N_replicas_nginx``), a model, a concurrency."""

    setup: str
    model: str
    concurrency: int
    stats: LoadRunStats


def serving_rows(summary: Summary) -> list[Load]:
    """Every load run of the serving sweeps, setup by setup; ``[]`` before notebook 05."""
    if summary.serving is None:
        return []
    return [Load(setup, model, int(c), stats) for setup, by_model in summary.serving.sweeps().items()
            for model, by_c in by_model.items() for c, stats in by_c.items()]


# ---- teachers side by side (the paper's comparison table, figure and text)


@dataclass(frozen=True)
class TeacherComparison:
    """One run's teacher against its students: what the paper sets side by side per teacher.

    Accuracies are fractions on the test split (students: mean over seeds, with their 95%
    intervals, ``None`` below :data:`~kdutils.stats.MIN_SEEDS_FOR_INTERVAL` seeds). ``gain_points``
    is the paired mean gain over seeds in points, with its interval and one-sided p-value.
    ``gap_closed`` is :func:`gap_closed` of the three accuracies. ``latency_ratio`` is
    :func:`latency_ratio`: the full teacher's batch-1 p50 over the distilled student's, both in
    eager PyTorch. ``size_ratio`` is teacher over distilled student weights on disk (MiB, as
    notebook 04 recorded ``distillation.size_ratio_teacher_over_student``), ``params_ratio`` the
    same in parameters (``params_ratio_teacher_over_student``).
    """

    profile: str
    teacher: str | None  # registry name (kdutils.study.specs.TEACHERS), None if not recorded
    teacher_layers: int
    teacher_params: int
    teacher_accuracy: float
    baseline_accuracy: float
    baseline_ci95: tuple[float, float] | None
    distilled_accuracy: float
    distilled_ci95: tuple[float, float] | None
    gain_points: float
    gain_ci95: tuple[float, float] | None
    p_value: float
    gap_closed: float | None
    latency_ratio: float | None
    size_ratio: float | None
    params_ratio: float | None

    @property
    def teacher_label(self) -> str:
        """The teacher's published name (``all-MiniLM-L6-v2``), else the run's profile."""
        return _registry_label(self.teacher, f"the {self.profile} teacher")


def _pair(ci: Any) -> tuple[float, float] | None:
    return (float(ci[0]), float(ci[1])) if ci is not None else None


def teacher_comparison(summary: Summary, manifest: dict[str, Any], profile: str) -> TeacherComparison | None:
    """The comparison numbers of one run (its summary already through :func:`guard_intervals`);
    ``None`` unless the run has a teacher, both main students and a distillation section."""
    models, dist = summary.models, summary.distillation
    if models is None or dist is None:
        return None
    teacher, baseline, distilled = models.teacher, models.student_baseline, models.student_distilled
    if teacher is None or baseline is None or distilled is None:
        return None
    return TeacherComparison(
        profile=profile, teacher=teacher_key(manifest), teacher_layers=teacher.num_layers,
        teacher_params=teacher.params, teacher_accuracy=teacher.accuracy,
        baseline_accuracy=baseline.accuracy_mean, baseline_ci95=_pair(baseline.accuracy_ci95),
        distilled_accuracy=distilled.accuracy_mean, distilled_ci95=_pair(distilled.accuracy_ci95),
        gain_points=dist.gain_points_mean, gain_ci95=_pair(dist.gain_ci95), p_value=dist.p_value,
        gap_closed=gap_closed(teacher.accuracy, baseline.accuracy_mean, distilled.accuracy_mean),
        latency_ratio=latency_ratio(summary), size_ratio=dist.size_ratio_teacher_over_student,
        params_ratio=dist.params_ratio_teacher_over_student)


def served_p50_ms(summary: Summary, model: str, concurrency: int = 1) -> float | None:
    """p50 latency (ms) of ``model`` served by one replica at ``concurrency`` requests in flight
    (the ``1_replica`` load sweep of notebook 05); ``None`` where it was not served so."""
    return next((r.stats.p50_ms for r in serving_rows(summary)
                 if r.setup == "1_replica" and r.model == model and r.concurrency == concurrency), None)
