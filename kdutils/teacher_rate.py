"""Measure how fast a profile's teacher trains and scores on this machine; project notebook 02's wall time.

The ``paper`` profile's 110M teacher takes hours on a 2-core CPU. Rather than guess, this runs the
real fine-tuning code (:func:`kdutils.teachers.fine_tune`, same Trainer, collator, batch size and
sequence length) for a few optimiser steps at every depth of the profile, times them after a
warm-up, times the scorer on validation sentences, and projects::

    python -m kdutils.pipeline teacher-rate --profile paper [--steps 8] [--warmup 2]

The result goes to ``outputs/<profile>/metrics/teacher_rate.json`` (atomically) and is printed as a
table. Projections count training steps and evaluation passes only (model loading, saving and the
latency benchmark add a minute or two); the transfer-set line is an upper bound, as augmented
copies that repeat another sentence are dropped before scoring.
"""

from __future__ import annotations

import math
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import pandas as pd

from kdutils.config import Profile
from kdutils.runs import RunDir, write_json

RATE_FILE = "teacher_rate.json"


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
    from kdutils.scoring import TeacherScorer
    from kdutils.teachers import FineTuneSettings, fine_tune

    settings = FineTuneSettings.from_config(cfg.teacher, num_layers=num_layers, epochs=epochs)
    timer = _step_timer(warmup, steps)
    tag = f"L{num_layers}" if num_layers else "full"
    result = fine_tune(base, splits.train, splits.val, splits.label_names, workdir / tag, workdir / f"{tag}.scratch",
                       settings, name=f"rate-probe-{tag}", teacher=cfg.teacher.name, resume=False, progress=False,
                       callbacks=[timer])
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

    from kdutils import data
    from kdutils.bench import OtherLoad, cpu_count, cpu_name
    from kdutils.teachers import resolve_teacher, validate_teacher

    if steps < 1 or warmup < 0:
        raise ValueError(f"steps must be >= 1 and warmup >= 0, got steps={steps}, warmup={warmup}")
    info = validate_teacher(cfg.teacher)
    data.validate_source(cfg.data)
    df, label_names = data.load_dataset(cfg.data)
    splits = data.make_splits(df, cfg.data, label_names)
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
