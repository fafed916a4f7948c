"""Measure how fast a profile's teacher trains and scores on this machine; project notebook 02's wall time.

The ``paper`` profile's 110M teacher takes hours on a 2-core CPU. Rather than guess, this runs the
real fine-tuning code (:func:`kdutils.teacher.finetune.fine_tune`, same Trainer, collator, batch size and
sequence length) for a few optimiser steps at every depth of the profile, times them after a
warm-up, times the scorer on validation sentences, and projects::

    python -m kdutils.pipeline teacher-rate --profile paper [--steps 8] [--warmup 2]

The result goes to ``outputs/<profile>/metrics/teacher_rate.json`` (atomically) and is printed as a
table. With ``--modes`` it also compares the numeric modes of :mod:`kdutils.machine` for every teacher
(:func:`compare_modes`): training and scoring sentences per second in fp32 and bf16 autocast, and
scoring in ONNX Runtime, timed in interleaved rounds on the same batches, with the change each mode
causes in validation accuracy and its agreement with fp32 logits; it says which mode detection picks. Projections count training steps and evaluation passes only (model loading, saving and the
latency benchmark add a minute or two); the transfer-set line is an upper bound, as augmented
copies that repeat another sentence are dropped before scoring.
"""

from __future__ import annotations

import copy
import math
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from kdutils.data import corpora
from kdutils.host import OtherLoad, cpu_count
from kdutils.machine import PrecisionChoice, cpu_description, cpu_flags, cpu_name, resolve_precision
from kdutils.study.config import Profile
from kdutils.study.files import write_json
from kdutils.study.model_files import meta_path, read_meta, write_meta
from kdutils.study.runs import RunDir
from kdutils.study.specs import TEACHERS
from kdutils.teacher.finetune import FineTuneJob, FineTuneSettings, fine_tune, load_pretrained
from kdutils.teacher.scoring import TeacherScorer
from kdutils.teacher.weights import resolve_teacher, validate_teacher

# torch and transformers are imported where a probe runs: each takes seconds, and the pipeline
# imports this module for its command line.

RATE_FILE = "teacher_rate.json"
MODES_FILE = "teacher_modes.json"


def _step_timer(warmup: int, steps: int) -> Any:
    """A ``TrainerCallback`` that times optimiser steps and stops training after ``warmup + steps``."""
    from transformers import TrainerCallback

    class StepTimer(TrainerCallback):
        def __init__(self) -> None:
            self.durations: list[float] = []
            self._start = 0.0

        def on_step_begin(self, args, state, control, **kwargs):  # noqa: ANN001, ANN003
            self._start = time.perf_counter()

        def on_step_end(self, args, state, control, **kwargs):  # noqa: ANN001, ANN003
            self.durations.append(time.perf_counter() - self._start)
            if len(self.durations) >= warmup + steps:
                control.should_training_stop = True

        def on_epoch_end(self, args, state, control, **kwargs):  # noqa: ANN001, ANN003
            # Runs after the default flow callback: a stopped probe skips the epoch's evaluation
            # and checkpoint (the scorer measures evaluation speed on its own).
            if control.should_training_stop:
                control.should_evaluate = False
                control.should_save = False

    return StepTimer()


def _probe_depth(base: Path, splits: Any, cfg: Profile, num_layers: int | None, epochs: int, warmup: int,
                 steps: int, score_rows: int, workdir: Path) -> dict[str, Any]:
    settings = FineTuneSettings.from_config(cfg.teacher, num_layers=num_layers, epochs=epochs)
    timer = _step_timer(warmup, steps)
    tag = f"L{num_layers}" if num_layers else "full"
    job = FineTuneJob(splits.train, splits.val, splits.label_names, workdir / tag, workdir / f"{tag}.scratch")
    result = fine_tune(base, job, settings, name=f"rate-probe-{tag}", teacher=cfg.teacher.name, resume=False,
                       progress=False, callbacks=[timer])
    timed = timer.durations[warmup:]
    if not timed:
        raise RuntimeError(f"the {tag} probe ran {len(timer.durations)} steps, fewer than warm-up {warmup} + 1")
    texts = splits.val["text"].astype(str).tolist()[:score_rows]
    scorer = TeacherScorer(result.model_dir, cache_dir=None, batch_size=cfg.teacher.score_batch_size,
                           max_length=cfg.teacher.max_length)
    scorer.score(texts[: min(len(texts), scorer.batch_size)])  # warm-up: first-call allocations
    started = time.perf_counter()
    scorer.score(texts)
    score_rate = len(texts) / (time.perf_counter() - started)

    steps_per_epoch = math.ceil(len(splits.train) / settings.batch_size)
    step_s = statistics.median(timed)
    eval_s = len(splits.val) / score_rate
    return {
        "depth": result.num_layers,
        "precision": settings.precision,
        "params": result.params,
        "epochs": epochs,
        "batch_size": settings.batch_size,
        "steps_timed": len(timed),
        "step_seconds_median": step_s,
        "step_seconds_mean": statistics.fmean(timed),
        "train_rows_per_s": settings.batch_size / step_s,
        "score_rows_per_s": score_rate,
        "steps_per_epoch": steps_per_epoch,
        "projected_seconds": epochs * (steps_per_epoch * step_s + eval_s) + len(splits.test) / score_rate,
    }


def probe(cfg: Profile, *, steps: int = 8, warmup: int = 2, score_rows: int = 256,
          output_root: str | Path | None = None, write: bool = True) -> dict[str, Any]:
    """Time ``steps`` training steps (after ``warmup``) at the profile's full depth and every sweep depth.

    Returns (and writes to ``<run>/metrics/teacher_rate.json``) the per-depth rates and the projected
    seconds of the teacher notebook, plus the teacher's scoring of the distillation transfer set.
    """
    import torch

    if steps < 1 or warmup < 0:
        raise ValueError(f"steps must be >= 1 and warmup >= 0, got steps={steps}, warmup={warmup}")
    info = validate_teacher(cfg.teacher)
    corpora.validate_source(cfg.data)
    df, label_names = corpora.load_dataset(cfg.data)
    splits = corpora.make_splits(df, cfg.data, label_names)
    base = resolve_teacher(cfg.teacher.name)

    rows = []
    # Other work on a shared machine slows every step: the share is recorded beside the rates.
    with tempfile.TemporaryDirectory(prefix="teacher-rate-") as tmp, OtherLoad() as other:
        depth_plan = [(None, cfg.teacher.epochs)] + [(k, cfg.teacher.depth_epochs) for k in cfg.teacher.depths
                                                      if k != info.num_layers]
        for num_layers, epochs in depth_plan:
            rows.append(_probe_depth(base, splits, cfg, num_layers, epochs, warmup, steps, score_rows, Path(tmp)))

    full = rows[0]
    dc = cfg.distill
    transfer_upper = len(splits.train) * (1 + dc.n_iter) + dc.unlabelled
    result = {
        "profile": cfg.name,
        "teacher": cfg.teacher.name,
        "max_length": cfg.teacher.max_length,
        "n_train": len(splits.train),
        "n_val": len(splits.val),
        "n_test": len(splits.test),
        "torch_threads": torch.get_num_threads(),
        "machine": {"cpu": cpu_name(), "cores": cpu_count()},
        "other_load_share": other.share,
        "warmup_steps": warmup,
        "depths": rows,
        "projected_teacher_seconds": full["projected_seconds"],
        "projected_depth_sweep_seconds": sum(r["projected_seconds"] for r in rows[1:]),
        "projected_notebook02_seconds": sum(r["projected_seconds"] for r in rows),
        "transfer_set_rows_upper_bound": transfer_upper,
        "projected_transfer_scoring_seconds": transfer_upper / full["score_rows_per_s"],
        "measured_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }
    if write:
        run = RunDir.for_profile(cfg.name, output_root)
        write_json(run.metrics / RATE_FILE, result)
    return result


def rate_table(result: dict[str, Any]) -> pd.DataFrame:
    """One row per depth: measured rates and projected minutes."""
    return pd.DataFrame([{
        "layers": r["depth"],
        "params (M)": round(r["params"] / 1e6, 1),
        "s / step": round(r["step_seconds_median"], 3),
        "train rows/s": round(r["train_rows_per_s"], 1),
        "score rows/s": round(r["score_rows_per_s"], 1),
        "epochs": r["epochs"],
        "projected min": round(r["projected_seconds"] / 60, 1),
    } for r in result["depths"]])


def describe(result: dict[str, Any]) -> str:
    """The rate table and a one-line projection, as the command line prints them."""
    return (rate_table(result).to_string(index=False) + "\n"
            f"{result['teacher']} on {result['machine']['cpu']} ({result['machine']['cores']} cores), "
            f"{result['torch_threads']} torch threads, other load {result['other_load_share'] or 0:.0%}: "
            f"notebook 02 projected {result['projected_notebook02_seconds'] / 3600:.2f} h "
            f"(teacher {result['projected_teacher_seconds'] / 3600:.2f} h, depth sweep "
            f"{result['projected_depth_sweep_seconds'] / 3600:.2f} h); scoring the transfer set of notebook 04 "
            f"(<= {result['transfer_set_rows_upper_bound']:,} rows) "
            f"{result['projected_transfer_scoring_seconds'] / 60:.0f} min")


# --------------------------------------------------------------------------- numeric modes


def _training_batches(tokenizer: Any, texts: list[str], labels: list[int], batch_size: int, max_length: int,
                      n: int) -> list[dict[str, Any]]:
    import torch

    out = []
    for i in range(n):
        rows = slice(i * batch_size, (i + 1) * batch_size)
        enc = tokenizer(texts[rows], truncation=True, max_length=max_length, padding=True, return_tensors="pt")
        enc["labels"] = torch.tensor(labels[rows])
        out.append(dict(enc))
    return out


def _mode_rates(base: Path, num_labels: int, train_texts: list[str], train_labels: list[int],
                val_texts: list[str], val_labels: list[int], *, batch_size: int, max_length: int, steps: int,
                warmup: int, score_batches: int, model_dir: Path | None) -> dict[str, Any]:
    """Interleaved rates of fp32 / bf16 training steps and fp32 / bf16 / ONNX scoring for one teacher."""
    import torch

    tokenizer, model, _ = load_pretrained(base, num_labels)
    batches = _training_batches(tokenizer, train_texts, train_labels, batch_size, max_length, warmup + steps)
    models = {"fp32": model, "bf16": copy.deepcopy(model)}  # same initial weights, same batches
    optims = {m: torch.optim.AdamW(models[m].parameters(), lr=2e-5) for m in models}
    train_s: dict[str, list[float]] = {m: [] for m in models}
    losses: dict[str, list[float]] = {m: [] for m in models}
    for i, batch in enumerate(batches):
        for mode in (("fp32", "bf16") if i % 2 == 0 else ("bf16", "fp32")):  # alternate who goes first
            net = models[mode].train()
            started = time.perf_counter()
            with torch.autocast("cpu", dtype=torch.bfloat16, enabled=mode == "bf16"):
                loss = net(**batch).loss
            loss.backward()
            optims[mode].step()
            optims[mode].zero_grad()
            if i >= warmup:
                train_s[mode].append(time.perf_counter() - started)
            losses[mode].append(loss.item())
    del models, optims

    # Scoring: a fine-tuned teacher where the run has one (accuracy is then meaningful), else the
    # pretrained encoder with its new head (agreement and speed only). The copy of the pretrained
    # teacher and the ONNX export live in a folder of the probe's own, removed after it: never in
    # another run's models/teacher.
    with tempfile.TemporaryDirectory(prefix="teacher-modes-") as work:
        scoring, n_val = _score_modes(model, tokenizer, model_dir, Path(work), val_texts, val_labels,
                                      batch_size=batch_size, max_length=max_length, score_batches=score_batches)
    training = {mode: {"sentences_per_s": batch_size / float(np.median(train_s[mode])),
                       "step_seconds_median": float(np.median(train_s[mode])),
                       "losses": losses[mode]} for mode in train_s}
    training["bf16"]["max_abs_loss_diff_vs_fp32"] = float(np.max(np.abs(np.subtract(losses["bf16"], losses["fp32"]))))
    return {"training": training, "scoring": scoring, "scored_model": "fine-tuned" if model_dir else "pretrained",
            "n_val_scored": n_val, "train_steps_timed": steps, "batch_size": batch_size}


def _score_modes(model: Any, tokenizer: Any, model_dir: Path | None, work: Path, val_texts: list[str],
                 val_labels: list[int], *, batch_size: int, max_length: int,
                 score_batches: int) -> tuple[dict[str, Any], int]:
    """Interleaved fp32 / bf16 / ONNX scoring of one teacher (the fine-tuned one in ``model_dir``,
    else ``model`` saved under ``work``, which also takes the ONNX export): per mode, sentences/s
    and the agreement with fp32 (and the change in validation accuracy for a fine-tuned teacher);
    with the number of validation sentences scored."""
    scored_dir = model_dir
    if scored_dir is None:
        scored_dir = work / "pretrained"
        model.save_pretrained(scored_dir)
        tokenizer.save_pretrained(scored_dir)
        write_meta(scored_dir, {"kind": "teacher", "name": "pretrained", "max_length": max_length})
    scorers = {
        "fp32": TeacherScorer(scored_dir, None, batch_size, max_length, precision="fp32", runtime="torch"),
        "bf16": TeacherScorer(scored_dir, None, batch_size, max_length, precision="fp32", runtime="torch"),
        "onnx": TeacherScorer(scored_dir, work / "onnx", batch_size, max_length, precision="fp32", runtime="onnx"),
    }
    # The bf16 scorer is forced (not resolved): the probe measures the mode even where detection
    # would refuse it, to show why.
    scorers["bf16"].precision = PrecisionChoice("bf16", "bf16", "cpu", "forced by the probe")
    score_texts = val_texts[: score_batches * batch_size]
    for sc in scorers.values():
        sc.score(score_texts[:batch_size])  # warm-up (and the ONNX export)
    score_s = {m: 0.0 for m in scorers}
    for r in range(2):
        for mode in (list(scorers) if r % 2 == 0 else list(reversed(scorers))):
            started = time.perf_counter()
            scorers[mode].score(score_texts)
            score_s[mode] += time.perf_counter() - started
    if model_dir is None:
        # No fine-tuned head: only agreement is meaningful, and a few batches show it.
        val_texts, val_labels = val_texts[: 2 * batch_size], val_labels[: 2 * batch_size]
    val_logits = {m: sc.score(val_texts) for m, sc in scorers.items()}
    labels = np.asarray(val_labels)
    ref = val_logits["fp32"]
    scoring = {}
    for mode, logits in val_logits.items():
        scoring[mode] = {
            "sentences_per_s": 2 * len(score_texts) / score_s[mode],
            "val_accuracy": float((logits.argmax(1) == labels).mean()) if model_dir is not None else None,
            "val_accuracy_change_points": (float(100 * ((logits.argmax(1) == labels).mean()
                                                          - (ref.argmax(1) == labels).mean()))
                                           if model_dir is not None else None),
            "argmax_agreement_with_fp32": float((logits.argmax(1) == ref.argmax(1)).mean()),
            "max_abs_logit_diff": float(np.abs(logits - ref).max()),
        }
    return scoring, len(val_texts)


def finetuned_teacher(run: RunDir, teacher: str, num_labels: int) -> tuple[Path, pd.DataFrame] | None:
    """A fine-tuned ``teacher`` and the validation split of the run that trained it, or None.

    Looks in ``run`` first, then in every other run folder beside it (``outputs/default`` holds
    ``minilm-l6``, ``outputs/paper`` ``mpnet-12``); only a teacher with ``num_labels`` classes and
    its run's splits on disk counts. The split is returned as notebook 01 wrote it (columns
    ``text`` and ``label``).
    """
    siblings = sorted(p for p in run.root.parent.iterdir() if p.is_dir() and p != run.root) \
        if run.root.parent.is_dir() else []
    for root in [run.root, *siblings]:
        other = RunDir(root)
        model_dir = other.model_dir("teacher")
        if not meta_path(model_dir).exists() or read_meta(model_dir).get("teacher") != teacher:
            continue
        try:
            splits = corpora.load_splits(other)
        except (FileNotFoundError, corpora.DataError):
            continue  # a run whose splits are missing or changed since its teacher trained
        if len(splits.label_names) == num_labels:
            return model_dir, splits.val
    return None


def compare_modes(cfg: Profile, teachers: list[str] | None = None, *, steps: int = 4, warmup: int = 1,
                  score_batches: int = 2, output_root: str | Path | None = None,
                  write: bool = True) -> dict[str, Any]:
    """Sentences per second of each numeric mode for each teacher, in one interleaved run.

    For every teacher (default: all in the registry) this times ``steps`` training steps (after
    ``warmup``) in fp32 and in bf16 autocast on the same real training batches (alternating which
    mode goes first), and scoring of ``score_batches`` validation batches in fp32, bf16 and ONNX
    Runtime; then scores the whole validation split in each mode and records the change in accuracy
    (where a run under the output root has a fine-tuned teacher of that name: see
    :func:`finetuned_teacher`) and the agreement with fp32 logits.
    Also records what :func:`kdutils.machine.resolve_precision` chooses here and why. Writes
    ``<run>/metrics/teacher_modes.json``.
    """
    teachers = list(teachers or TEACHERS)
    corpora.validate_source(cfg.data)
    df, label_names = corpora.load_dataset(cfg.data)
    splits = corpora.make_splits(df, cfg.data, label_names)
    run = RunDir.for_profile(cfg.name, output_root)
    train = splits.train.sample(frac=1.0, random_state=cfg.teacher.seed)
    rows = {}
    with OtherLoad() as other:
        for name in teachers:
            found = finetuned_teacher(run, name, len(label_names))
            # A fine-tuned teacher is scored on the validation split of the run that trained it:
            # held out from its training, and the split its accuracy was chosen on.
            model_dir, val = found if found else (None, splits.val)
            rows[name] = _mode_rates(
                resolve_teacher(name), len(label_names), train["text"].astype(str).tolist(),
                train["label"].astype(int).tolist(), val["text"].astype(str).tolist(),
                val["label"].astype(int).tolist(), batch_size=cfg.teacher.batch_size,
                max_length=cfg.teacher.max_length, steps=steps, warmup=warmup, score_batches=score_batches,
                model_dir=model_dir)
            if model_dir is not None:
                rows[name]["scored_run"] = str(model_dir.parent.parent)
    choice = resolve_precision(cfg.teacher.precision)
    result = {
        "profile": cfg.name,
        "machine": {"cpu": cpu_description(), "bf16_flags": sorted(f for f in cpu_flags() if "bf16" in f)},
        "detected": choice.as_dict(),
        "other_load_share": other.share,
        "teachers": rows,
        "measured_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }
    if write:
        write_json(run.metrics / MODES_FILE, result)
    return result


def modes_table(result: dict[str, Any]) -> pd.DataFrame:
    """One row per teacher and mode: training and scoring rates relative to fp32, agreement, accuracy change."""
    rows = []
    for name, r in result["teachers"].items():
        base_train = r["training"]["fp32"]["sentences_per_s"]
        base_score = r["scoring"]["fp32"]["sentences_per_s"]
        for mode in ("fp32", "bf16", "onnx"):
            tr, sc = r["training"].get(mode), r["scoring"][mode]
            rows.append({
                "teacher": name, "mode": mode,
                "train sent/s": round(tr["sentences_per_s"], 2) if tr else None,
                "train x fp32": round(tr["sentences_per_s"] / base_train, 2) if tr else None,
                "score sent/s": round(sc["sentences_per_s"], 1),
                "score x fp32": round(sc["sentences_per_s"] / base_score, 2),
                "argmax agreement": round(sc["argmax_agreement_with_fp32"], 4),
                "max |logit diff|": float(f"{sc['max_abs_logit_diff']:.2g}"),
                "val acc change (points)": (None if sc["val_accuracy_change_points"] is None
                                            else round(sc["val_accuracy_change_points"], 2)),
            })
    return pd.DataFrame(rows)
