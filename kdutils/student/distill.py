"""Distillation orchestration: distilled students, their selection, statistics and the ablation.

Notebook ``04_distillation`` drives this module; it holds no profile knowledge
(every value arrives as an argument). The rows the students learn from (the transfer set and its
teacher scores) are :mod:`kdutils.student.transfer_set`.

- :func:`run_setting` trains one :class:`Setting` (rows + loss) over seeds, each student
  built by the caller exactly like the baseline (``kdutils.student.train.init_student``), and
  caches every run so the headline reuses the runs trained for selection.
- :func:`grid_settings` and :func:`select_setting`: candidates, chosen on validation only.
- :func:`save_distilled` saves a student the way notebook 03 saves the baseline.
- :func:`paired_comparison` and :func:`agreement`: the gain, its tests, and fidelity.
- :func:`summary_sections`: the results as ``summary.json``'s typed sections
  (:func:`kdutils.report.distilled.evaluate_targets` checks the study's targets against them).

The figures of these results are :mod:`kdutils.report.distilled`'s.
"""

from __future__ import annotations

import hashlib
import json
import multiprocessing
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import numpy as np
import torch

from kdutils import progress
from kdutils.metrics import (
    classification_metrics,
    softmax,
)
from kdutils.stats import (
    mcnemar_exact,
    mean_ci,
    paired_bootstrap,
    paired_gain,
)
from kdutils.student.losses import make_loss
from kdutils.student.models import save_student
from kdutils.student.train import (
    TrainSettings,
    code_fingerprint,
    predict_logits,
    summarise_seeds,
    train_classifier,
)
from kdutils.student.transfer_set import SOURCES, TransferSet
from kdutils.study import steps
from kdutils.study.files import atomic_path, write_json
from kdutils.study.layout import history_file, predictions_file
from kdutils.study.model_files import read_meta
from kdutils.study.runs import save_predictions
from kdutils.study.specs import LOSSES
from kdutils.study.summary import DistillationSection, DistilledStudentEntry

# --------------------------------------------------------------------------- statistics helpers


def agreement(student_logits: np.ndarray, teacher_logits: np.ndarray) -> float:
    """Fidelity: the share of rows where student and teacher predict the same class."""
    a = np.asarray(student_logits).argmax(axis=1)
    b = np.asarray(teacher_logits).argmax(axis=1)
    if a.shape != b.shape:
        raise ValueError(f"{len(a)} student rows vs {len(b)} teacher rows")
    return float((a == b).mean())


def select_setting(rows: Sequence[dict[str, Any]], key: str = "val_accuracy_mean") -> dict[str, Any]:
    """The row with the best mean VALIDATION accuracy; ties keep the earlier row (the configured default)."""
    if not rows:
        raise ValueError("no candidate settings to select from")
    if "test" in key:
        raise ValueError("selection must use validation accuracy, never test")
    best = rows[0]
    for row in rows[1:]:
        if row[key] > best[key]:
            best = row
    return best


def softmax_confidence(logits: np.ndarray) -> float:
    """Mean probability of the predicted class (NaN for no rows)."""
    return float(softmax(logits).max(axis=1).mean()) if len(logits) else float("nan")


def load_predictions(metrics_dir: str | Path, model: str, seeds: Sequence[int],
                     split: str = "test") -> dict[int, dict[str, np.ndarray]]:
    """Per-seed ``logits`` and ``labels`` from ``<metrics>/<model>_seed<k>_<split>.npz``."""
    out = {}
    for seed in seeds:
        path = predictions_file(metrics_dir, model, split, seed)
        if not path.exists():
            raise FileNotFoundError(f"{path} not found: {steps.run_first(f'models.{model}')}")
        with np.load(path) as z:
            out[seed] = {"logits": z["logits"], "labels": z["labels"]}
    return out


# --------------------------------------------------------------------------- students


@dataclass(frozen=True)
class Setting:
    """One way of training a student: which rows (``data``) and which loss."""

    name: str
    data: str  # "train", "train+augmented", "train+augmented+unlabelled"
    loss: str  # a name of kdutils.study.specs.LOSSES: "mse", "kl" (or "ce": labels only)
    alpha: float
    temperature: float | None = None

    def loss_fn(self) -> Any:
        return make_loss(self.loss, self.alpha, self.temperature or 1.0)  # type: ignore[arg-type]

    def describe(self) -> dict[str, Any]:
        return {"setting": self.name, "data": self.data, "loss": self.loss, "alpha": self.alpha,
                "temperature": self.temperature}


def data_label(sources: Sequence[str]) -> str:
    """The rows of a setting in words, sources in :data:`SOURCES` order joined by ``+``:
    ``["augmented", "train"]`` -> ``"train+augmented"`` (unknown sources are left out)."""
    return "+".join(s for s in SOURCES if s in sources)


def loss_label(loss: str, alpha: float, temperature: float | None) -> str:
    """A loss as settings and tables name it, from its :data:`~kdutils.study.specs.LOSSES` label:
    ``"KL T=2, alpha=0.5"`` (``temperature`` is printed for a loss that takes one only),
    ``"MSE, alpha=0"``, ``"CE, alpha=1"``."""
    spec = LOSSES[loss]
    if spec.uses_temperature:
        return f"{spec.label} T={temperature:g}, alpha={alpha:g}"
    return f"{spec.label}, alpha={alpha:g}"


def grid_settings(
    *,
    loss: str,
    alpha: float,
    temperature: float,
    grid_loss: Sequence[str],
    grid_alpha: Sequence[float],
    grid_temperature: Sequence[float],
    data: str,
) -> list[Setting]:
    """Candidates for selection: every loss x alpha (x temperature, for a loss that takes one, as KL),
    configured one first.

    The temperature does not enter a loss without one (MSE), so it appears once per alpha. The
    configured (loss, alpha, temperature) leads the list, so a tie on validation keeps it.
    """
    def takes_t(kind: str) -> bool:
        return LOSSES[kind].uses_temperature

    combos: list[tuple[str, float, float | None]] = [(loss, alpha, temperature if takes_t(loss) else None)]
    for kind in grid_loss:
        for a in grid_alpha:
            for t in grid_temperature if takes_t(kind) else [None]:
                combos.append((kind, float(a), t))
    unique = list(dict.fromkeys(combos))
    return [Setting(f"{data}: {loss_label(k, a, t)}", data, k, a, t) for k, a, t in unique]


@dataclass
class StudentRun:
    """One trained student: its setting, seed, accuracies, logits and training history."""

    setting: str
    seed: int
    val_accuracy: float
    test_accuracy: float
    val_logits: np.ndarray
    test_logits: np.ndarray
    history: list[dict[str, Any]]
    best_epoch: int
    seconds: float
    from_cache: bool = False
    model: Any = None


def fingerprint(*parts: Any) -> str:
    """sha256 of arrays, tensors, token lists and JSON-able values (cache keys)."""
    h = hashlib.sha256()
    for part in parts:
        if hasattr(part, "numpy") and callable(part.numpy):
            part = part.detach().cpu().numpy()
        if isinstance(part, np.ndarray):
            h.update(str((part.dtype.str, part.shape)).encode())
            h.update(np.ascontiguousarray(part).tobytes())
        else:
            h.update(json.dumps(part, sort_keys=True, default=str).encode())
        h.update(b"\0")
    return h.hexdigest()


def run_key(setting: Setting, seed: int, training: TrainSettings, cache_key: str, code: str | None = None) -> str:
    """The run cache's key of one student: its setting, seed, training settings, data (``cache_key``)
    and the training code (``code``, default :func:`kdutils.student.train.code_fingerprint`)."""
    return fingerprint(setting.describe(), seed, training.epochs, training.batch_size, training.learning_rate,
                       training.patience, cache_key, code_fingerprint() if code is None else code)


def train_student(
    setting: Setting,
    seed: int,
    make_model: Callable[[int], Any],
    train: Any,
    val: Any,
    test: Any,
    training: TrainSettings,
    *,
    cache_path: str | Path | None = None,
    show_progress: bool = True,
) -> StudentRun:
    """Train (or load from ``cache_path``) one student of ``setting`` for ``seed``.

    ``make_model(seed)`` builds the untrained student exactly as the baseline does.
    ``test`` is only scored, after training: early stopping and selection use ``val``.
    ``show_progress=False`` draws no per-batch bar (worker processes: see :func:`run_setting`).
    """
    model = make_model(seed)
    cache_path = Path(cache_path) if cache_path is not None else None
    if cache_path is not None and cache_path.exists():
        try:
            stored = torch.load(cache_path, weights_only=True)
            model.load_state_dict(stored["state_dict"])
            model.eval()
            return _run_from(setting, seed, model, val, test, stored["history"], int(stored["best_epoch"]),
                             float(stored["seconds"]), from_cache=True)
        except (RuntimeError, KeyError, OSError, ValueError):
            model = make_model(seed)  # an unreadable cache entry is retrained, never trusted
    result = train_classifier(model, train, val, loss_fn=setting.loss_fn(), epochs=training.epochs,
                              batch_size=training.batch_size, lr=training.learning_rate,
                              patience=training.stop_after, seed=seed, desc=f"{setting.name} seed {seed}",
                              show_progress=show_progress)
    run = _run_from(setting, seed, model, val, test, result.history, result.best_epoch, result.seconds)
    if cache_path is not None:
        with atomic_path(cache_path) as tmp:
            torch.save({"state_dict": result.state_dict, "history": result.history,
                        "best_epoch": result.best_epoch, "seconds": result.seconds}, tmp)
    return run


def _run_from(setting: Setting, seed: int, model: Any, val: Any, test: Any, history: list[dict[str, Any]],
              best_epoch: int, seconds: float, from_cache: bool = False) -> StudentRun:
    val_logits = predict_logits(model, val)
    test_logits = predict_logits(model, test)
    return StudentRun(
        setting=setting.name, seed=seed,
        val_accuracy=float((val_logits.argmax(1) == val.labels.numpy()).mean()),
        test_accuracy=float((test_logits.argmax(1) == test.labels.numpy()).mean()),
        val_logits=val_logits, test_logits=test_logits, history=list(history), best_epoch=best_epoch,
        seconds=seconds, from_cache=from_cache, model=model,
    )


def run_setting(
    setting: Setting,
    seeds: Sequence[int],
    make_model: Callable[[int], Any],
    train: Any,
    val: Any,
    test: Any,
    training: TrainSettings,
    *,
    cache_dir: str | Path | None = None,
    cache_key: str = "",
    keep_models: bool = False,
    workers: int = 1,
    progress_file: IO[str] | None = None,
) -> list[StudentRun]:
    """:func:`train_student` over ``seeds``. With ``cache_dir``, a run whose setting, seed, data
    (``cache_key``), training settings and code are unchanged is loaded instead of retrained
    (:func:`run_key`).

    With ``workers > 1``, seeds still to train run in that many spawned processes at once: each
    student trains on one thread (small LSTMs scale poorly across threads), so on a 2-core machine
    two seeds side by side take about the time of one. ``make_model`` must then be picklable
    (a module-level function or a ``functools.partial`` of one, not a closure). A seed gives the
    same weights in a worker as in this process.

    One bar per call counts seeds done (cached, trained here or in a worker), advanced in this
    process as each finishes: output written inside a worker never reaches a notebook as a
    live bar (it stayed at ``0/14``). Workers draw no bar of their own. ``progress_file``
    redirects the bar (default: stdout, see :mod:`kdutils.progress`).
    """
    if workers < 1:
        raise ValueError(f"workers must be >= 1, got {workers}")
    paths: dict[int, Path | None] = {}
    for seed in seeds:
        paths[seed] = None
        if cache_dir is not None:
            paths[seed] = Path(cache_dir) / f"{run_key(setting, seed, training, cache_key)[:40]}.pt"
    todo = [s for s in seeds if paths[s] is None or not paths[s].exists()]  # type: ignore[union-attr]
    done: dict[int, StudentRun] = {}
    # mininterval=0: a seed takes seconds to minutes, so every finished seed is worth a redraw.
    bar = progress.bar(total=len(seeds), desc=setting.name, unit="seed", file=progress_file, mininterval=0,
                       bar_format="{desc}: {n_fmt}/{total_fmt} seeds [{elapsed}]{postfix}")
    try:
        if workers > 1 and len(todo) > 1:
            # spawn, not fork: a forked child of a process that already ran OpenMP can hang in torch.
            with ProcessPoolExecutor(min(workers, len(todo)),
                                     mp_context=multiprocessing.get_context("spawn")) as pool:
                futures = {pool.submit(train_student, setting, s, make_model, train, val, test, training,
                                       cache_path=paths[s], show_progress=False): s for s in todo}
                for future in as_completed(futures):
                    done[futures[future]] = future.result()
                    bar.update(1)
        runs = []
        for seed in seeds:
            run = done.get(seed)
            if run is None:
                # In this process the bar counts seeds; a second, per-batch bar would garble it.
                run = train_student(setting, seed, make_model, train, val, test, training,
                                    cache_path=paths[seed], show_progress=False)
                bar.update(1)
            if not keep_models:
                run.model = None
            runs.append(run)
        bar.set_postfix_str(f"{sum(r.from_cache for r in runs)} from cache", refresh=False)
    finally:
        bar.close()
    return runs


def save_distilled(
    name: str,
    run: StudentRun,
    vocab: Any,
    *,
    arch: Any,
    label_names: Sequence[str],
    max_length: int,
    model_dir: str | Path,
    metrics_dir: str | Path,
    val_labels: np.ndarray,
    test_labels: np.ndarray,
    extra_meta: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Save a trained student the way ``kdutils.student.train.fit_student`` saves the baseline; return its record.

    Writes ``model_dir`` (``save_student``), ``<metrics>/<name>_seed<k>_{val,test}.npz`` and
    ``..._history.json``, so later notebooks read every student alike.
    """
    if run.model is None:
        raise ValueError("the run kept no model: call run_setting(..., keep_models=True)")
    metrics_dir = Path(metrics_dir)
    scores = {}
    for split, logits, labels in (("val", run.val_logits, val_labels), ("test", run.test_logits, test_labels)):
        save_predictions(predictions_file(metrics_dir, name, split, run.seed), logits, labels)
        scores[split] = classification_metrics(labels, logits)
    write_json(history_file(metrics_dir, name, run.seed), run.history)
    meta = {"name": name, "label_names": list(label_names), "max_length": max_length, "seed": run.seed,
            "best_epoch": run.best_epoch, "val_accuracy": scores["val"]["accuracy"],
            "test_accuracy": scores["test"]["accuracy"], "train_seconds": run.seconds,
            "arch": arch.model_dump() if hasattr(arch, "model_dump") else dict(arch), **(extra_meta or {})}
    save_student(model_dir, run.model, vocab, meta)
    saved = read_meta(model_dir)
    return {"seed": run.seed, "accuracy": scores["test"]["accuracy"], "macro_f1": scores["test"]["macro_f1"],
            "ece": scores["test"]["ece"], "val_accuracy": scores["val"]["accuracy"],
            "best_epoch": run.best_epoch, "epochs_run": len(run.history), "train_seconds": run.seconds,
            "params": saved["params"], "size_mb": saved["size_mb"], "history": run.history}


def prediction_row(setting: Setting, val_logits: dict[int, np.ndarray], test_logits: dict[int, np.ndarray],
                   val_labels: np.ndarray, test_labels: np.ndarray) -> dict[str, Any]:
    """An ablation row from saved predictions (e.g. the baseline's), in :func:`setting_row`'s format."""
    seeds = sorted(test_logits)
    test = mean_ci([float((test_logits[s].argmax(1) == test_labels).mean()) for s in seeds])
    val = mean_ci([float((val_logits[s].argmax(1) == val_labels).mean()) for s in seeds])
    return {**setting.describe(), "seeds": len(seeds), "accuracy_mean": test["mean"], "accuracy_ci95": test["ci95"],
            "val_accuracy_mean": val["mean"], "val_accuracy_ci95": val["ci95"], "epochs_mean": float("nan"),
            "train_seconds_mean": float("nan")}


def setting_row(setting: Setting, runs: Sequence[StudentRun]) -> dict[str, Any]:
    """One ablation row: test accuracy (mean, 95% CI over seeds) and mean validation accuracy."""
    test = mean_ci([r.test_accuracy for r in runs])
    val = mean_ci([r.val_accuracy for r in runs])
    return {**setting.describe(), "seeds": len(runs), "accuracy_mean": test["mean"], "accuracy_ci95": test["ci95"],
            "val_accuracy_mean": val["mean"], "val_accuracy_ci95": val["ci95"],
            "epochs_mean": float(np.mean([len(r.history) for r in runs])),
            "train_seconds_mean": float(np.mean([r.seconds for r in runs]))}


# --------------------------------------------------------------------------- paired statistics


def paired_comparison(
    distilled: dict[int, np.ndarray],
    baseline: dict[int, np.ndarray],
    labels: np.ndarray,
    *,
    n_resamples: int,
    seed: int = 0,
) -> dict[str, Any]:
    """Distilled vs baseline on the same test sentences, paired by seed.

    ``distilled`` and ``baseline`` map a seed to its test logits. Returns the gain
    in points (mean and t-interval of per-seed differences), the paired bootstrap
    over sentences (one-sided, distilled better; the headline p-value) and an exact
    McNemar test per seed.
    """
    seeds = sorted(distilled)
    missing = [s for s in seeds if s not in baseline]
    if missing:
        raise ValueError(f"no baseline test predictions for seeds {missing}: pairing by seed needs them")
    labels = np.asarray(labels)
    correct_d = np.stack([distilled[s].argmax(axis=1) == labels for s in seeds])
    correct_b = np.stack([baseline[s].argmax(axis=1) == labels for s in seeds])
    acc_d, acc_b = correct_d.mean(axis=1), correct_b.mean(axis=1)
    gain = paired_gain(acc_d, acc_b)
    boot = paired_bootstrap(correct_d, correct_b, n_resamples=n_resamples, seed=seed, alternative="greater")
    mcnemar = [{"seed": s, **mcnemar_exact(correct_d[i], correct_b[i])} for i, s in enumerate(seeds)]
    return {
        "seeds": seeds,
        "distilled_accuracy": acc_d.tolist(),
        "baseline_accuracy": acc_b.tolist(),
        "gain_points_mean": gain["mean"],
        "gain_points_std": gain["std"],
        "gain_ci95": gain["ci95"],
        "gain_points_per_seed": gain["per_seed"],
        "p_value": boot["p_value"],
        "p_value_test": (f"paired bootstrap over the {boot['n_sentences']} test sentences ({n_resamples} "
                         f"resamples), one-sided (distilled more accurate than baseline), accuracy averaged "
                         f"over {len(seeds)} seeds per system"),
        "bootstrap_gain_ci95_points": [100 * x for x in boot["ci95"]],
        "mcnemar": mcnemar,
        "mcnemar_test": "exact McNemar per seed (binomial test on discordant sentences), two-sided",
    }


# --------------------------------------------------------------------------- the summary's sections

# The keys of paired_comparison and of an ablation row that summary.json keeps.
_COMPARISON_KEYS = ("gain_points_mean", "gain_points_std", "gain_ci95", "gain_points_per_seed", "p_value",
                    "p_value_test", "bootstrap_gain_ci95_points", "mcnemar", "mcnemar_test")
_ABLATION_KEYS = ("setting", "data", "loss", "alpha", "temperature", "seeds", "accuracy_mean", "accuracy_ci95",
                  "val_accuracy_mean")


def summary_sections(
    records: Sequence[dict[str, Any]],
    comparison: dict[str, Any],
    *,
    seeds: Sequence[int],
    agreement: dict[int, float],
    baseline_agreement: dict[int, float],
    transfer: TransferSet,
    chosen: Setting,
    training: TrainSettings,
    unlabelled_requested: int,
    unlabelled_source: str | None,
    ablation_seeds: Sequence[int],
    ablation_rows: Sequence[dict[str, Any]],
    teacher: dict[str, Any],
    teacher_scoring: dict[str, Any],
    selection_runs: Iterable[StudentRun],
    headline_runs: Iterable[StudentRun],
) -> tuple[DistilledStudentEntry, DistillationSection]:
    """Notebook 04's results as ``summary.json``'s ``models.student_distilled`` and ``distillation``.

    ``records`` are :func:`save_distilled`'s, one per seed of ``seeds``; ``comparison`` is
    :func:`paired_comparison`'s; ``agreement`` / ``baseline_agreement`` map a seed to the share of
    test sentences where the distilled / baseline student agrees with the teacher (:func:`agreement`).
    The transfer set gives its size, sources and augmentation settings; ``unlabelled_requested``
    is what the profile asked for (``transfer`` may hold fewer). ``teacher`` is the summary's
    ``models.teacher`` entry ({} without one: no size ratios), ``teacher_scoring`` the scorer's
    ``last_stats``. ``train_seconds_total`` adds the runs trained here (cached ones excluded) of
    the selection grid and of the headline. Raises pydantic's ValidationError when a value does
    not fit :mod:`kdutils.study.summary`.
    """
    entry = summarise_seeds(records)
    entry["teacher_agreement"] = float(np.mean(list(agreement.values())))
    entry["teacher_agreement_per_seed"] = [agreement[s] for s in seeds]
    size_ratio = teacher["size_mb"] / entry["size_mb"] if teacher.get("size_mb") else None
    params_ratio = teacher["params"] / entry["params"] if teacher.get("params") else None
    counts = transfer.counts()
    section = {
        **{k: comparison[k] for k in _COMPARISON_KEYS},
        "seeds": list(seeds),
        "transfer_set_size": len(transfer),
        "transfer_set": counts,
        "loss": chosen.loss, "alpha": chosen.alpha, "temperature": chosen.temperature,
        **{k: transfer.info[k] for k in ("n_iter", "p_mask", "p_replace", "p_ngram")},
        "unlabelled": counts["unlabelled"], "unlabelled_requested": unlabelled_requested,
        "unlabelled_source": unlabelled_source,
        "epochs": training.epochs, "batch_size": training.batch_size,
        "ablation_seeds": list(ablation_seeds),
        "ablation": [{k: r[k] for k in _ABLATION_KEYS} for r in ablation_rows],
        "selected_on": "validation",
        "baseline_teacher_agreement": float(np.mean(list(baseline_agreement.values()))),
        "size_ratio_teacher_over_student": size_ratio,
        "params_ratio_teacher_over_student": params_ratio,
        "teacher_scoring": teacher_scoring,
        "train_seconds_total": float(sum(r.seconds for r in selection_runs if not r.from_cache)
                                     + sum(r.seconds for r in headline_runs if not r.from_cache)),
    }
    return DistilledStudentEntry.from_record(entry), DistillationSection.from_record(section)
