"""Fine-tuning a teacher with the Hugging Face ``Trainer``, in one process or under ``torchrun``.

- ``FineTuneSettings``: everything that shapes a run (part of the saved model's fingerprint), read
  from the profile and written to and parsed from the command line of :mod:`kdutils.teacher.train_cli`.
- ``FineTuneJob``: what one run works on (the splits, their label names) and where it writes.
- ``fine_tune(...)``: the first ``num_layers`` layers, dynamic padding, warm-up + linear decay,
  evaluation and a checkpoint each epoch (plus one every ``checkpoint_minutes``), best checkpoint
  kept, early stopping, resume from the last complete checkpoint, in the numeric mode of
  :mod:`kdutils.machine`. The same function runs unchanged under ``torchrun``. The result is
  written atomically with ``save_pretrained`` + tokenizer + ``kdmodel.json``.
- ``train_teacher(...)``: :func:`fine_tune` in this process or, for ``num_processes > 1``, under
  ``torchrun``; reuses a saved model whose fingerprint (base weights, data, settings) matches.
- ``TeacherResult.load(model_dir)``: a fine-tuned teacher as its ``kdmodel.json`` records it.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from types import UnionType
from typing import TYPE_CHECKING, Any, Literal, get_args, get_origin, get_type_hints

# Set before transformers is imported anywhere through this module: no hub, ever.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

import numpy as np
import pandas as pd

from kdutils import progress
from kdutils.machine import Precision, quiet_transformers, resolve_precision
from kdutils.study import steps
from kdutils.study.config import TeacherConfig
from kdutils.study.files import atomic_dir, read_json, sha256_file, sha256_text, write_json
from kdutils.study.model_files import WEIGHTS_FILE, meta_path, read_meta, weights_path, write_meta
from kdutils.study.runs import RunDir
from kdutils.teacher.scoring import weights_identity
from kdutils.teacher.weights import resolve_teacher

if TYPE_CHECKING:  # data reads the registry and plots; fine-tuning needs only its Splits type
    from kdutils.data.corpora import Splits

# transformers and torch are imported where used: each takes seconds, and the settings, the
# fingerprint and TeacherResult (read by later notebooks and the command line) need neither.

MIB = 2**20


# --------------------------------------------------------------------------- fine-tuning


# Settings whose profile key (kdutils.study.config.TeacherConfig) has another name; the others share theirs.
PROFILE_KEYS = {"patience": "early_stopping_patience", "eval_batch_size": "score_batch_size"}
# Settings a profile does not hold as such: the depth is chosen per run, the mode per machine.
NOT_IN_PROFILE = ("num_layers", "precision")


@dataclass(frozen=True)
class FineTuneSettings:
    """Everything that shapes a fine-tuning run (part of the saved model's fingerprint).

    The one definition of a fine-tuning setting: :meth:`from_config` reads each from the profile's
    teacher section, :meth:`to_args` / :meth:`add_arguments` / :meth:`from_args` make and parse the
    flags of :mod:`kdutils.teacher.train_cli`, and :meth:`identity` enters the fingerprint. A new
    field reaches all of them (and needs a same-named ``TeacherConfig`` field, or an entry in
    :data:`PROFILE_KEYS`).
    """

    max_length: int = 64
    epochs: int = 2
    batch_size: int = 32  # global batch: split across processes under torchrun
    learning_rate: float = 5e-5
    warmup_ratio: float = 0.1
    weight_decay: float = 0.01
    patience: int = 1  # epochs without a better validation accuracy before stopping; 0 = never
    seed: int = 42
    num_layers: int | None = None  # keep the first k layers; None = full depth
    eval_batch_size: int = 128
    # Already resolved for this machine (kdutils.machine): bf16 is CPU autocast.
    precision: Precision = "fp32"

    def __post_init__(self) -> None:
        if self.precision not in get_args(Precision):
            raise ValueError(f"precision must be fp32 or bf16 (resolved), got {self.precision!r}")

    def identity(self) -> dict[str, Any]:
        """The settings as they enter a run's fingerprint (fp32 runs keep their earlier fingerprints)."""
        out = asdict(self)
        if out["precision"] == "fp32":
            del out["precision"]
        return out

    @classmethod
    def from_config(cls, cfg: TeacherConfig, num_layers: int | None = None, epochs: int | None = None) -> FineTuneSettings:
        """Settings from a profile's teacher section; ``precision`` resolved on this machine.

        ``num_layers`` truncates the teacher (None: full depth); ``epochs`` replaces the profile's
        (the depth sweep's ``depth_epochs``).
        """
        values = {f.name: getattr(cfg, PROFILE_KEYS.get(f.name, f.name))
                  for f in fields(cls) if f.name not in NOT_IN_PROFILE}
        return cls(**{**values, "epochs": epochs or cfg.epochs}, num_layers=num_layers,
                   precision=resolve_precision(cfg.precision).mode)

    def to_args(self) -> list[str]:
        """Command-line flags of :mod:`kdutils.teacher.train_cli` for these settings (None left out)."""
        out: list[str] = []
        for f in fields(self):
            value = getattr(self, f.name)
            if value is not None:
                out += [_flag(f.name), str(value)]
        return out

    @classmethod
    def add_arguments(cls, parser: argparse.ArgumentParser) -> None:
        """One flag per setting (``--learning-rate``), typed from its annotation, defaulting to its default."""
        hints, defaults = get_type_hints(cls), cls()
        for f in fields(cls):
            kind = hints[f.name]
            # `int | None` parses as int (absent: None); a Literal offers its values as choices.
            base = next(t for t in get_args(kind) if t is not type(None)) if get_origin(kind) is UnionType else kind
            extra = {"choices": get_args(base), "type": str} if get_origin(base) is Literal else {"type": base}
            parser.add_argument(_flag(f.name), default=getattr(defaults, f.name), **extra)

    @classmethod
    def from_args(cls, args: argparse.Namespace) -> FineTuneSettings:
        """The settings :meth:`add_arguments` parsed into ``args`` (other attributes ignored)."""
        return cls(**{f.name: getattr(args, f.name) for f in fields(cls)})


def _flag(name: str) -> str:
    return f"--{name.replace('_', '-')}"


@dataclass
class TeacherResult:
    """A fine-tuned teacher as recorded in its ``kdmodel.json``."""

    model_dir: Path
    name: str
    params: int
    size_mb: float
    max_length: int
    num_layers: int
    history: list[dict[str, float]]
    best_epoch: int
    epochs_run: int
    val_accuracy: float
    train_seconds: float
    world_size: int
    meta: dict[str, Any] = field(repr=False, default_factory=dict)

    @classmethod
    def load(cls, model_dir: str | Path) -> TeacherResult:
        model_dir = Path(model_dir)
        path = meta_path(model_dir)
        if not path.exists():
            raise FileNotFoundError(f"{path} not found: the teacher was not trained "
                                    f"({steps.run_first(f'models.{model_dir.name}')})")
        meta = read_meta(model_dir)
        training = meta["training"]
        return cls(
            model_dir=model_dir,
            name=meta["name"],
            params=meta["params"],
            size_mb=meta["size_mb"],
            max_length=meta["max_length"],
            num_layers=meta["num_layers"],
            history=training["history"],
            best_epoch=training["best_epoch"],
            epochs_run=training["epochs_run"],
            val_accuracy=training["val_accuracy"],
            train_seconds=training["train_seconds"],
            world_size=training["world_size"],
            meta=meta,
        )


def load_pretrained(base_dir: str | Path, num_labels: int, num_layers: int | None = None,
                    label_names: Sequence[str] | None = None) -> tuple[Any, Any, list[str]]:
    """Tokenizer, classifier (first ``num_layers`` layers) and the names of the new parameters."""
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    quiet_transformers()
    kwargs: dict[str, Any] = {"num_labels": num_labels}
    if num_layers is not None:
        kwargs["num_hidden_layers"] = num_layers
    if label_names is not None:
        kwargs["id2label"] = dict(enumerate(label_names))
        kwargs["label2id"] = {n: i for i, n in enumerate(label_names)}
    tokenizer = AutoTokenizer.from_pretrained(base_dir)
    model, loading = AutoModelForSequenceClassification.from_pretrained(base_dir, output_loading_info=True, **kwargs)
    return tokenizer, model, sorted(loading["missing_keys"])


class _Encoded:
    """A list of tokenised rows for ``Trainer`` (no ``datasets`` dependency)."""

    def __init__(self, tokenizer: Any, texts: Sequence[str], labels: Sequence[int], max_length: int) -> None:
        enc = tokenizer(list(texts), truncation=True, max_length=max_length)
        keys = list(enc.keys())
        self.rows = [{k: enc[k][i] for k in keys} | {"labels": int(y)} for i, y in enumerate(labels)]

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, i: int) -> dict[str, Any]:
        return self.rows[i]


def _frame_digest(df: pd.DataFrame) -> str:
    return sha256_text(*df["text"].astype(str), *map(str, df["label"].astype(int)))


@dataclass(frozen=True)
class FineTuneJob:
    """What one fine-tuning run works on and where it writes.

    ``train`` / ``val``: frames with ``text`` and an integer ``label`` column; ``label_names`` in
    label order; ``output_dir``: the fine-tuned model (written atomically); ``scratch_dir``: the
    run's checkpoints, removed when it finishes.
    """

    train: pd.DataFrame
    val: pd.DataFrame
    label_names: Sequence[str]
    output_dir: Path
    scratch_dir: Path

    def __post_init__(self) -> None:
        object.__setattr__(self, "output_dir", Path(self.output_dir))
        object.__setattr__(self, "scratch_dir", Path(self.scratch_dir))

    @classmethod
    def in_run(cls, run: RunDir, name: str, splits: Splits) -> FineTuneJob:
        """The job of model ``name`` (``teacher``, ``teacher_L2``) of ``run`` on ``splits``' train and
        validation sets: the run's model folder and checkpoint folder of that name."""
        return cls(splits.train, splits.val, splits.label_names, run.model_dir(name), run.checkpoint_dir(name))


def run_fingerprint(base_dir: Path, job: FineTuneJob, settings: FineTuneSettings) -> str:
    """Identity of a run: base weights, data, labels and settings (not where it writes). A saved
    model with it is reused."""
    return sha256_text(weights_identity(base_dir), _frame_digest(job.train), _frame_digest(job.val),
                       json.dumps(list(job.label_names)), json.dumps(settings.identity(), sort_keys=True))


def complete_checkpoints(scratch_dir: Path) -> list[Path]:
    """Trainer checkpoints that were fully written, oldest first.

    Trainer writes ``trainer_state.json`` last, after weights, optimizer and scheduler, so a folder
    without it (or without the others) was interrupted and is never resumed from.
    """
    needed = ("trainer_state.json", WEIGHTS_FILE, "optimizer.pt", "scheduler.pt")
    found = []
    for path in Path(scratch_dir).glob("checkpoint-*"):
        if not all((path / n).exists() for n in needed):
            continue
        try:
            json.loads((path / "trainer_state.json").read_text())
            step = int(path.name.split("-")[1])
        except (ValueError, IndexError):
            continue
        found.append((step, path))
    return [p for _, p in sorted(found)]


def _make_progress_callback(total_desc: str) -> Any:
    from transformers import TrainerCallback

    class _Progress(TrainerCallback):
        # One bar per run on the main process, instead of Trainer's bar per epoch and evaluation.
        def __init__(self) -> None:
            self.bar = None

        def on_train_begin(self, args, state, control, **kwargs):  # noqa: ANN001, ANN003
            if state.is_world_process_zero:
                self.bar = progress.bar(total=state.max_steps, initial=state.global_step, desc=total_desc,
                                        leave=False, mininterval=5)

        def on_step_end(self, args, state, control, **kwargs):  # noqa: ANN001, ANN003
            if self.bar is not None:
                self.bar.update(state.global_step - self.bar.n)

        def on_evaluate(self, args, state, control, metrics=None, **kwargs):  # noqa: ANN001, ANN003
            if self.bar is not None and metrics:
                self.bar.set_postfix(val_acc=f"{metrics.get('eval_accuracy', float('nan')):.3f}")

        def on_train_end(self, args, state, control, **kwargs):  # noqa: ANN001, ANN003
            if self.bar is not None:
                self.bar.close()

    return _Progress()


def _checkpoint_every(minutes: float) -> Any:
    """A ``TrainerCallback`` that also checkpoints mid-epoch, every ``minutes`` of training.

    Epoch checkpoints alone would lose up to a whole epoch on an interruption (about 20 minutes for
    the 110M teacher on 2 CPU cores); ``Trainer`` resumes from a mid-epoch checkpoint by skipping
    the batches it already saw. These saves carry no evaluation, so they never become the "best"
    checkpoint; ``save_total_limit`` keeps the best epoch and the newest save.
    """
    from transformers import TrainerCallback

    class _Every(TrainerCallback):
        def __init__(self) -> None:
            self.last = time.monotonic()

        def on_step_end(self, args, state, control, **kwargs):  # noqa: ANN001, ANN003
            if time.monotonic() - self.last >= 60 * minutes:
                control.should_save = True

        def on_save(self, args, state, control, **kwargs):  # noqa: ANN001, ANN003
            self.last = time.monotonic()

    return _Every()


def _history(log_history: list[dict[str, Any]]) -> list[dict[str, float]]:
    """Per-epoch train loss, validation accuracy and loss from Trainer's log."""
    by_epoch: dict[int, dict[str, float]] = {}
    for entry in log_history:
        if "epoch" not in entry:
            continue
        epoch = int(round(entry["epoch"]))
        row = by_epoch.setdefault(epoch, {"epoch": epoch})
        if "loss" in entry:
            row["train_loss"] = float(entry["loss"])
        if "eval_accuracy" in entry:
            row["val_accuracy"] = float(entry["eval_accuracy"])
            row["val_loss"] = float(entry["eval_loss"])
    return [by_epoch[e] for e in sorted(by_epoch) if "val_accuracy" in by_epoch[e]]


def _dist_info() -> tuple[int, int, list[dict[str, Any]]]:
    """(rank, world size, one record per rank) — gathered, so the record proves every rank ran."""
    import torch.distributed as dist

    me = {"rank": int(os.environ.get("RANK", 0)), "pid": os.getpid(), "host": os.uname().nodename}
    if dist.is_available() and dist.is_initialized():
        ranks: list[Any] = [None] * dist.get_world_size()
        dist.all_gather_object(ranks, me)
        return dist.get_rank(), dist.get_world_size(), ranks
    return 0, 1, [me]


def _barrier() -> None:
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        dist.barrier()


def fine_tune(
    base_dir: str | Path,
    job: FineTuneJob,
    settings: FineTuneSettings,
    *,
    name: str = "teacher",
    teacher: str = "",
    resume: bool = True,
    progress: bool = True,
    callbacks: Sequence[Any] = (),
    checkpoint_minutes: float | None = 10.0,
) -> TeacherResult:
    """Fine-tune a pretrained encoder (first ``settings.num_layers`` layers) on ``job.train``.

    Runs unchanged in one process or under ``torchrun`` (every rank calls it; rank 0 writes).
    Checkpoints go to ``scratch_dir`` (one per epoch; the best and the last kept); a rerun resumes
    from the last complete checkpoint of the same fingerprint, or starts afresh. The best model on
    validation accuracy is written to ``output_dir`` through :func:`kdutils.study.files.atomic_dir`, and
    the checkpoints are then removed. ``callbacks`` are extra ``TrainerCallback`` objects.
    ``checkpoint_minutes`` adds a mid-epoch checkpoint every that many minutes of training (None:
    epoch checkpoints only), so an interrupted long run loses at most that much work.
    """
    import torch
    from transformers import (
        DataCollatorWithPadding,
        EarlyStoppingCallback,
        PrinterCallback,
        Trainer,
        TrainingArguments,
        set_seed,
    )

    base_dir = Path(base_dir)
    train, val, label_names = job.train, job.val, job.label_names
    output_dir, scratch_dir = job.output_dir, job.scratch_dir
    world_size = int(os.environ.get("WORLD_SIZE", 1))
    is_main = int(os.environ.get("RANK", 0)) == 0
    fingerprint = run_fingerprint(base_dir, job, settings)
    stamp = {"fingerprint": fingerprint, "world_size": world_size}
    stamp_path = scratch_dir / "run.json"

    if is_main:
        # Checkpoints of another configuration (or process count) must not be resumed from.
        if scratch_dir.exists() and (not resume or not stamp_path.exists() or read_json(stamp_path) != stamp):
            shutil.rmtree(scratch_dir)
        scratch_dir.mkdir(parents=True, exist_ok=True)
        write_json(stamp_path, stamp)

    set_seed(settings.seed)
    tokenizer, model, new_params = load_pretrained(base_dir, len(label_names), settings.num_layers, label_names)
    train_set = _Encoded(tokenizer, train["text"].astype(str), train["label"], settings.max_length)
    val_set = _Encoded(tokenizer, val["text"].astype(str), val["label"], settings.max_length)

    per_device = max(1, settings.batch_size // world_size)
    args = TrainingArguments(
        output_dir=str(scratch_dir),
        num_train_epochs=settings.epochs,
        per_device_train_batch_size=per_device,
        per_device_eval_batch_size=settings.eval_batch_size,
        learning_rate=settings.learning_rate,
        weight_decay=settings.weight_decay,
        lr_scheduler_type="linear",
        warmup_steps=settings.warmup_ratio,  # a float below 1 is a fraction of all steps
        eval_strategy="epoch",
        save_strategy="epoch",
        logging_strategy="epoch",
        load_best_model_at_end=True,
        metric_for_best_model="accuracy",
        greater_is_better=True,
        save_total_limit=2,  # the best and the most recent
        restore_callback_states_from_checkpoint=True,
        # Batches of similar length: dynamic padding then pads little (sentences average ~27 pieces).
        train_sampling_strategy="group_by_length",
        seed=settings.seed,
        data_seed=settings.seed,
        report_to="none",
        disable_tqdm=True,
        log_level="warning",
        dataloader_num_workers=0,
        # Token-count averaging multiplies a sequence classifier's mean loss by the world size
        # (doubling the logged train and eval losses under 2 ranks); DDP's own gradient mean is right.
        average_tokens_across_devices=False,
        dataloader_pin_memory=torch.cuda.is_available(),
        # Only name a backend for real multi-process runs: naming one alone makes accelerate expect a group.
        ddp_backend="gloo" if world_size > 1 and not torch.cuda.is_available() else None,
        # CPU autocast to bfloat16 (fp32 master weights), only where kdutils.machine found native bf16.
        bf16=settings.precision == "bf16",
        # bf16 is only ever chosen for the CPU (kdutils.machine), and transformers refuses bf16 without
        # a bf16 GPU unless told the run is on the CPU. fp32 runs keep the Trainer's own device choice.
        use_cpu=settings.precision == "bf16",
    )

    def compute_metrics(pred: Any) -> dict[str, float]:
        logits = pred.predictions[0] if isinstance(pred.predictions, tuple) else pred.predictions
        return {"accuracy": float((np.argmax(logits, axis=-1) == pred.label_ids).mean())}

    all_callbacks = list(callbacks)
    if checkpoint_minutes:
        all_callbacks.append(_checkpoint_every(checkpoint_minutes))
    if settings.patience > 0:
        all_callbacks.append(EarlyStoppingCallback(early_stopping_patience=settings.patience))
    if progress:
        all_callbacks.append(_make_progress_callback(name))
    trainer = Trainer(
        model=model,
        args=args,
        data_collator=DataCollatorWithPadding(tokenizer),
        train_dataset=train_set,
        eval_dataset=val_set,
        processing_class=tokenizer,
        compute_metrics=compute_metrics,
        callbacks=all_callbacks,
    )
    # With tqdm off, Trainer prints every log dict; the single bar above replaces both.
    trainer.remove_callback(PrinterCallback)

    rank, seen_world, ranks = _dist_info()
    checkpoints = complete_checkpoints(scratch_dir) if resume else []
    resume_from = checkpoints[-1] if checkpoints else None
    started = time.perf_counter()
    trainer.train(resume_from_checkpoint=str(resume_from) if resume_from else None)
    seconds = time.perf_counter() - started

    history = _history(trainer.state.log_history)
    best = max(history, key=lambda r: r["val_accuracy"]) if history else {"epoch": 0, "val_accuracy": float("nan")}
    final = trainer.accelerator.unwrap_model(trainer.model)
    params = int(sum(p.numel() for p in final.parameters()))

    if rank == 0:
        with atomic_dir(output_dir) as tmp:
            final.save_pretrained(tmp)
            tokenizer.save_pretrained(tmp)
            size_mb = weights_path(tmp).stat().st_size / MIB
            meta = {
                "kind": "teacher",
                "name": name,
                "label_names": list(label_names),
                "params": params,
                "size_mb": round(size_mb, 3),
                "max_length": settings.max_length,
                "teacher": teacher,
                "base_model": str(base_dir),
                "model_type": final.config.model_type,
                "num_layers": int(final.config.num_hidden_layers),
                "new_parameters": new_params,
                "weights_sha256": sha256_file(weights_path(tmp)),
                "fingerprint": fingerprint,
                "settings": asdict(settings),
                "training": {
                    "history": history,
                    "best_epoch": int(best["epoch"]),
                    "epochs_run": len(history),
                    "val_accuracy": float(best["val_accuracy"]),
                    "train_seconds": round(seconds, 2),
                    "resumed_from": resume_from.name if resume_from else None,
                    "world_size": seen_world,
                    "ranks": ranks,
                    "per_device_batch_size": per_device,
                    "device": str(trainer.args.device),
                    "torch_threads": torch.get_num_threads(),
                    "train_examples": len(train_set),
                    "precision": settings.precision,
                },
            }
            write_meta(tmp, meta)
        shutil.rmtree(scratch_dir, ignore_errors=True)
    _barrier()
    return TeacherResult.load(output_dir)


def _saved_matches(output_dir: Path, fingerprint: str) -> bool:
    return (meta_path(output_dir).exists() and weights_path(output_dir).exists()
            and read_meta(output_dir).get("fingerprint") == fingerprint)


def train_teacher(
    teacher: str,
    job: FineTuneJob,
    settings: FineTuneSettings,
    *,
    name: str = "teacher",
    num_processes: int = 1,
    force: bool = False,
    log_path: str | Path | None = None,
    timeout: float | None = None,
) -> tuple[TeacherResult, bool]:
    """Fine-tune teacher ``teacher`` (a registry name) unless the same run is already saved.

    Returns ``(result, reused)``. With ``num_processes > 1`` the run is started under ``torchrun``
    (``python -m torch.distributed.run --standalone``), one process per data-parallel rank.
    """
    base_dir = resolve_teacher(teacher)
    output_dir, scratch_dir = job.output_dir, job.scratch_dir
    fingerprint = run_fingerprint(base_dir, job, settings)
    if not force and _saved_matches(output_dir, fingerprint):
        return TeacherResult.load(output_dir), True
    if num_processes <= 1:
        return fine_tune(base_dir, job, settings, name=name, teacher=teacher), False

    inputs = scratch_dir.parent / f".{scratch_dir.name}-inputs"
    inputs.mkdir(parents=True, exist_ok=True)
    job.train.to_parquet(inputs / "train.parquet", index=False)
    job.val.to_parquet(inputs / "val.parquet", index=False)
    cmd = [
        sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", str(num_processes),
        "-m", "kdutils.teacher.train_cli",
        "--teacher", teacher, "--train", str(inputs / "train.parquet"), "--val", str(inputs / "val.parquet"),
        "--label-names", json.dumps(list(job.label_names)), "--output", str(output_dir),
        "--scratch", str(scratch_dir), "--name", name, "--quiet",
        *settings.to_args(),
    ]
    run_command(cmd, log_path, timeout)
    shutil.rmtree(inputs, ignore_errors=True)
    result = TeacherResult.load(output_dir)
    if result.meta.get("fingerprint") != fingerprint:
        raise RuntimeError(f"{output_dir}: the multi-process run saved a model of a different configuration")
    return result, False


def run_command(cmd: list[str], log_path: str | Path | None, timeout: float | None) -> None:
    """Run a training command, its output to ``log_path``; raise with the log's tail on failure."""
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1",
           # The repository root first, so `-m kdutils...` finds this checkout.
           "PYTHONPATH": os.pathsep.join([str(Path(__file__).resolve().parent.parent.parent),
                                          os.environ.get("PYTHONPATH", "")]).rstrip(os.pathsep)}
    log = Path(log_path) if log_path else Path(tempfile.mkstemp(prefix="teacher-train-", suffix=".log")[1])
    log.parent.mkdir(parents=True, exist_ok=True)
    with open(log, "w") as out:
        proc = subprocess.run(cmd, stdout=out, stderr=subprocess.STDOUT, env=env, timeout=timeout, check=False)
    if proc.returncode != 0:
        tail = "\n".join(log.read_text(errors="replace").splitlines()[-30:])
        raise RuntimeError(f"teacher training exited with {proc.returncode} (log: {log}):\n{tail}")
