"""Seeded training loop for the student, shared by label training and distillation.

Inputs are pre-encoded tensors (:class:`EncodedSet`); each epoch shuffles row
indices, groups rows of similar length into batches (bucketing: far less
padding, which the mask-based BiLSTM would otherwise process) and trims every
batch to its longest row. The loss is a parameter, so the distillation room can
pass MSE/KL on teacher logits; rows with label ``-1`` are unlabelled.
Early stopping watches validation accuracy; the best weights are kept in memory
and loaded back into the model at the end.
"""

from __future__ import annotations

import contextlib
import copy
import hashlib
import json
import math
import random
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from kdutils import progress
from kdutils.data.embeddings import glove_embedding_matrix
from kdutils.data.text import Vocab, tokenize
from kdutils.metrics import classification_metrics
from kdutils.stats import mean_ci
from kdutils.student.losses import LossFn
from kdutils.student.models import BiLSTMClassifier, build_student, save_student
from kdutils.study.config import DistillConfig, StudentConfig
from kdutils.study.files import read_json, sha256_text, write_json
from kdutils.study.layout import history_file, predictions_file
from kdutils.study.model_files import meta_path, read_meta
from kdutils.study.runs import save_predictions
from kdutils.study.source import import_closure, modules, source_digest


@contextlib.contextmanager
def torch_threads(n: int | None) -> Iterator[None]:
    """Run the block with ``n`` intra-op threads (None: leave torch's setting), then restore it.

    The LSTM's matrices are small: on a shared 2-core machine, two spinning OpenMP threads
    competing with other processes were measured 40x slower per batch than one thread.
    """
    if n is None:
        yield
        return
    before = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def set_seed(seed: int, deterministic: bool = True) -> None:
    """Seed python, numpy and torch; optionally ask torch for deterministic kernels."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
    if deterministic:
        # warn_only: an op without a deterministic kernel warns instead of failing a run.
        torch.use_deterministic_algorithms(True, warn_only=True)


@dataclass
class EncodedSet:
    """Encoded rows: ``ids``/``mask`` ``[N, T]``, ``labels`` ``[N]`` (-1 = unlabelled), optional teacher logits ``[N, C]``."""

    ids: torch.Tensor
    mask: torch.Tensor
    labels: torch.Tensor
    teacher_logits: torch.Tensor | None = None

    def __post_init__(self) -> None:
        self.ids = torch.as_tensor(self.ids, dtype=torch.long)
        self.mask = torch.as_tensor(self.mask, dtype=torch.bool)
        self.labels = torch.as_tensor(np.asarray(self.labels), dtype=torch.long)
        n = self.ids.shape[0]
        if self.ids.ndim != 2 or self.mask.shape != self.ids.shape:
            raise ValueError(f"ids {tuple(self.ids.shape)} and mask {tuple(self.mask.shape)} must both be [N, T]")
        if self.labels.shape != (n,):
            raise ValueError(f"labels must have shape [{n}], got {tuple(self.labels.shape)}")
        if n and bool((self.mask.sum(dim=1) == 0).any()):
            raise ValueError("every row needs at least one real token in its mask (encode_batch ensures it)")
        if self.teacher_logits is not None:
            self.teacher_logits = torch.as_tensor(np.asarray(self.teacher_logits), dtype=torch.float32)
            if self.teacher_logits.ndim != 2 or self.teacher_logits.shape[0] != n:
                raise ValueError(f"teacher_logits must be [{n}, C], got {tuple(self.teacher_logits.shape)}")

    def __len__(self) -> int:
        return self.ids.shape[0]

    @property
    def lengths(self) -> torch.Tensor:
        return self.mask.sum(dim=1)

    def subset(self, index: np.ndarray | torch.Tensor | list[int]) -> EncodedSet:
        idx = torch.as_tensor(np.asarray(index), dtype=torch.long)
        tl = None if self.teacher_logits is None else self.teacher_logits[idx]
        return EncodedSet(self.ids[idx], self.mask[idx], self.labels[idx], tl)

    @staticmethod
    def concat(sets: list[EncodedSet]) -> EncodedSet:
        """Rows of several sets, padded to a common width (teacher logits kept only if all have them)."""
        width = max(s.ids.shape[1] for s in sets)
        ids = torch.cat([F.pad(s.ids, (0, width - s.ids.shape[1])) for s in sets])
        mask = torch.cat([F.pad(s.mask, (0, width - s.mask.shape[1])) for s in sets])
        labels = torch.cat([s.labels for s in sets])
        tl = None
        if all(s.teacher_logits is not None for s in sets):
            tl = torch.cat([s.teacher_logits for s in sets])
        return EncodedSet(ids, mask, labels, tl)


@dataclass(frozen=True)
class TrainSettings:
    """How a student is trained: the one settings object of notebook 03's and 04's students.

    ``patience`` is the number of epochs without a better validation accuracy before training
    stops; ``None`` trains every epoch (the best validation epoch is still the one kept).
    """

    epochs: int
    batch_size: int
    learning_rate: float
    patience: int | None = None

    @classmethod
    def from_config(cls, student_cfg: StudentConfig, student: str,
                    distill_cfg: DistillConfig | None = None) -> TrainSettings:
        """The profile's settings for ``student``: ``student_baseline`` and ``student_original``
        (notebook 03, from ``student_cfg``) or ``student_distilled`` (notebook 04: ``distill_cfg``'s
        epochs, batch size and patience, the baseline's learning rate). ValueError for another name,
        or for ``student_distilled`` without ``distill_cfg``."""
        sc, dc = student_cfg, distill_cfg
        if student == "student_baseline":
            return cls(sc.epochs, sc.batch_size, sc.learning_rate, sc.patience)
        if student == "student_original":
            return cls(sc.original_epochs, sc.batch_size, sc.learning_rate, sc.original_patience)
        if student == "student_distilled":
            if dc is None:
                raise ValueError("student_distilled: pass the profile's distill section as distill_cfg")
            return cls(dc.epochs, dc.batch_size, sc.learning_rate, dc.patience)
        raise ValueError(f"unknown student {student!r}; allowed: student_baseline, student_original, student_distilled")

    @property
    def stop_after(self) -> int:
        """Epochs without improvement before stopping, as :func:`train_classifier` takes it."""
        return self.patience or self.epochs


@dataclass
class TrainResult:
    state_dict: dict[str, torch.Tensor]
    history: list[dict[str, Any]] = field(default_factory=list)
    best_epoch: int = 0
    best_val_accuracy: float = float("nan")
    seconds: float = 0.0


def cross_entropy_loss(logits: torch.Tensor, labels: torch.Tensor,
                       teacher_logits: torch.Tensor | None = None) -> torch.Tensor:
    """Cross-entropy on the labelled rows of a batch (label -1 is ignored)."""
    if not bool((labels >= 0).any()):
        return logits.sum() * 0.0  # a batch with no labels contributes no gradient
    return F.cross_entropy(logits, labels, ignore_index=-1)


def length_bucketed_batches(lengths: torch.Tensor, batch_size: int, generator: torch.Generator,
                            bucket_factor: int = 50) -> list[torch.Tensor]:
    """Shuffled batches of row indices, each drawn from rows of similar length.

    Rows are shuffled, cut into pools of ``bucket_factor * batch_size``, sorted by
    length within a pool, sliced into batches, and the batch order is shuffled:
    batches stay random from epoch to epoch while padding nearly vanishes.
    """
    n = len(lengths)
    perm = torch.randperm(n, generator=generator)
    pool = max(batch_size * bucket_factor, batch_size)
    batches = []
    for start in range(0, n, pool):
        chunk = perm[start:start + pool]
        chunk = chunk[torch.argsort(lengths[chunk], stable=True)]
        batches.extend(chunk[i:i + batch_size] for i in range(0, len(chunk), batch_size))
    order = torch.randperm(len(batches), generator=generator)
    return [batches[i] for i in order]


def _trimmed(data: EncodedSet, idx: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    width = int(data.mask[idx].sum(dim=1).max())
    return data.ids[idx, :width], data.mask[idx, :width]


@torch.no_grad()
def predict_logits(model: torch.nn.Module, data: EncodedSet | tuple[torch.Tensor, torch.Tensor],
                   batch_size: int = 256) -> np.ndarray:
    """Logits ``[N, C]`` in row order (batches sorted by length internally)."""
    if isinstance(data, EncodedSet):
        ids, mask = data.ids, data.mask
    else:
        ids, mask = (torch.as_tensor(t) for t in data)
    mask = mask.to(torch.bool)
    was_training = model.training
    model.eval()
    n = ids.shape[0]
    order = torch.argsort(mask.sum(dim=1), stable=True)
    out: torch.Tensor | None = None
    try:
        for start in range(0, n, batch_size):
            idx = order[start:start + batch_size]
            width = max(int(mask[idx].sum(dim=1).max()), 1)
            logits = model(ids[idx, :width], mask[idx, :width])
            if out is None:
                out = torch.empty((n, logits.shape[1]), dtype=torch.float32)
            out[idx] = logits.float()
    finally:
        model.train(was_training)
    return out.numpy() if out is not None else np.zeros((0, 0), dtype=np.float32)


def evaluate(model: torch.nn.Module, data: EncodedSet, batch_size: int = 256) -> dict[str, float]:
    """Accuracy and cross-entropy on the labelled rows of ``data``."""
    logits = torch.from_numpy(predict_logits(model, data, batch_size))
    labelled = data.labels >= 0
    if not bool(labelled.any()):
        raise ValueError("validation set has no labelled rows: early stopping needs labels")
    lg, lb = logits[labelled], data.labels[labelled]
    return {"accuracy": float((lg.argmax(dim=1) == lb).float().mean()),
            "loss": float(F.cross_entropy(lg, lb))}


def train_classifier(model: torch.nn.Module, train: EncodedSet, val: EncodedSet, *,
                     loss_fn: LossFn = cross_entropy_loss, epochs: int = 20, batch_size: int = 64,
                     lr: float = 1e-3, patience: int = 3, seed: int = 0, desc: str = "",
                     weight_decay: float = 0.0, grad_clip: float | None = 5.0,
                     eval_batch_size: int = 512, num_threads: int | None = 1,
                     show_progress: bool = True) -> TrainResult:
    """Train ``model`` with Adam; keep the weights of the best validation accuracy.

    ``loss_fn(student_logits, labels, teacher_logits_or_None)`` gets each batch's
    rows (labels -1 = unlabelled). Training stops after ``patience`` epochs
    without a better validation accuracy (ties keep the earlier epoch). On return
    the model holds the best weights. ``history`` has one entry per epoch:
    ``epoch, train_loss, val_accuracy, val_loss`` (cross-entropy on gold labels).
    ``num_threads`` torch threads are used while training (see :func:`torch_threads`).
    ``show_progress=False`` draws no bar (e.g. in a worker process, whose output no reader sees).
    """
    with torch_threads(num_threads):
        return _train_classifier(model, train, val, loss_fn=loss_fn, epochs=epochs, batch_size=batch_size,
                                 lr=lr, patience=patience, seed=seed, desc=desc, weight_decay=weight_decay,
                                 grad_clip=grad_clip, eval_batch_size=eval_batch_size,
                                 show_progress=show_progress)


def _train_classifier(model: torch.nn.Module, train: EncodedSet, val: EncodedSet, *, loss_fn: LossFn,
                      epochs: int, batch_size: int, lr: float, patience: int, seed: int, desc: str,
                      weight_decay: float, grad_clip: float | None, eval_batch_size: int,
                      show_progress: bool = True) -> TrainResult:
    if len(train) == 0:
        raise ValueError("empty training set")
    if epochs < 1 or batch_size < 1 or patience < 1 or lr <= 0:
        raise ValueError(f"need epochs>=1, batch_size>=1, patience>=1, lr>0; got {epochs}, {batch_size}, {patience}, {lr}")
    set_seed(seed)
    generator = torch.Generator().manual_seed(seed)
    optimizer = torch.optim.Adam(model.parameters(), lr=lr, weight_decay=weight_decay)
    lengths = train.lengths
    history: list[dict[str, Any]] = []
    best_acc, best_epoch, best_state, stale = -math.inf, 0, None, 0
    start = time.perf_counter()
    n_batches = math.ceil(len(train) / batch_size)
    bar = progress.bar(total=epochs * n_batches, desc=desc or "train", leave=False, mininterval=5,
                       disable=not show_progress)
    try:
        for epoch in range(1, epochs + 1):
            model.train()
            total, seen = 0.0, 0
            for idx in length_bucketed_batches(lengths, batch_size, generator):
                ids, mask = _trimmed(train, idx)
                teacher = None if train.teacher_logits is None else train.teacher_logits[idx]
                logits = model(ids, mask)
                loss = loss_fn(logits, train.labels[idx], teacher)
                if not torch.isfinite(loss):
                    raise FloatingPointError(f"{desc or 'train'}: loss became {float(loss)} at epoch {epoch}")
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                if grad_clip:
                    torch.nn.utils.clip_grad_norm_(model.parameters(), grad_clip)
                optimizer.step()
                total += loss.item() * len(idx)
                seen += len(idx)
                bar.update(1)
            scores = evaluate(model, val, eval_batch_size)
            history.append({"epoch": epoch, "train_loss": total / seen, "val_accuracy": scores["accuracy"],
                            "val_loss": scores["loss"], "seconds": time.perf_counter() - start})
            bar.set_postfix(epoch=epoch, val_acc=f"{scores['accuracy']:.3f}", refresh=False)
            if scores["accuracy"] > best_acc:
                best_acc, best_epoch, stale = scores["accuracy"], epoch, 0
                best_state = copy.deepcopy({k: v.detach().clone() for k, v in model.state_dict().items()})
            else:
                stale += 1
                if stale >= patience:
                    break
    finally:
        bar.close()
    assert best_state is not None  # at least one epoch ran
    model.load_state_dict(best_state)
    model.eval()
    return TrainResult(state_dict=best_state, history=history, best_epoch=best_epoch,
                       best_val_accuracy=best_acc, seconds=time.perf_counter() - start)


# --------------------------------------------------------------------------- student experiments
# The steps notebook 03 runs per configuration and seed; distillation builds its students with
# the same `build_vocab` / `init_student`, so the two differ only in what they are trained on.


def build_vocab(train_texts: Sequence[str], max_size: int, min_count: int = 1) -> Vocab:
    """The student vocabulary, from the training split only."""
    return Vocab.build((tokenize(t) for t in train_texts), max_size=max_size, min_count=min_count)


def encode_texts(vocab: Vocab, texts: Sequence[str | Sequence[str]], labels: Sequence[int] | None,
                 max_length: int, teacher_logits: np.ndarray | None = None) -> EncodedSet:
    """An :class:`EncodedSet` of texts (or token lists); ``labels=None`` marks every row unlabelled."""
    ids, mask = vocab.encode_batch(list(texts), max_length)
    lab = np.full(len(texts), -1, dtype=np.int64) if labels is None else np.array(labels, dtype=np.int64)
    return EncodedSet(ids, mask, torch.from_numpy(lab), teacher_logits)


def init_student(vocab: Vocab, num_labels: int, arch: Any, seed: int) -> BiLSTMClassifier:
    """A freshly initialised student for ``arch`` (a ``StudentArch``): seeded, GloVe rows when asked."""
    set_seed(seed)
    model = build_student(len(vocab), num_labels, arch)
    if arch.embedding == "glove":
        matrix, _ = glove_embedding_matrix(vocab, seed=seed)
        model.set_embeddings(matrix)
    return model


# The stage packages whose modules shape a trained student (the study's spine and the shared
# modules keep files and report results; they do not change what a student learns).
STUDENT_CODE_UNITS = ("student", "data")


def student_code_modules() -> list[str]:
    """The modules that shape a trained student: :mod:`kdutils.student.train` and every module of the
    :data:`STUDENT_CODE_UNITS` packages it imports, directly or through each other (read from the
    source by :func:`kdutils.study.source.import_closure`, not listed by hand)."""
    return import_closure([__name__], STUDENT_CODE_UNITS)


def code_fingerprint() -> str:
    """Digest of :func:`student_code_modules`, so a saved or cached run dies with a code change."""
    files = modules()
    return source_digest(files[name] for name in student_code_modules())


def _fit_fingerprint(name: str, arch: Any, vocab: Vocab, train: EncodedSet, val: EncodedSet, test: EncodedSet,
                     loss_fn: LossFn, **settings: Any) -> str:
    """Identity of one student run: data, vocabulary, architecture, loss, settings and training code."""
    h = hashlib.sha256()
    for part in (train.ids, train.labels, val.ids, val.labels, test.ids, test.labels):
        h.update(np.ascontiguousarray(part.numpy()).tobytes())
    code = code_fingerprint()
    arch_dump = arch.model_dump() if hasattr(arch, "model_dump") else dict(arch)
    return sha256_text(name, h.hexdigest(), json.dumps(vocab.itos), json.dumps(arch_dump, sort_keys=True),
                       getattr(loss_fn, "__qualname__", repr(loss_fn)), json.dumps(settings, sort_keys=True), code)


def _saved_record(model_dir: Path, metrics_dir: Path, name: str, seed: int, fingerprint: str) -> dict[str, Any] | None:
    """The record of a finished run with this fingerprint, read back from its files; None if absent or partial."""
    files = {split: predictions_file(metrics_dir, name, split, seed) for split in ("val", "test")}
    history_path = history_file(metrics_dir, name, seed)
    if not (meta_path(model_dir).exists() and history_path.exists() and all(p.exists() for p in files.values())):
        return None
    meta = read_meta(model_dir)
    if meta.get("fingerprint") != fingerprint:
        return None
    scores = {}
    for split, path in files.items():
        with np.load(path) as saved:
            scores[split] = classification_metrics(saved["labels"], saved["logits"])
    history = read_json(history_path)
    return {"seed": seed, "accuracy": scores["test"]["accuracy"], "macro_f1": scores["test"]["macro_f1"],
            "ece": scores["test"]["ece"], "val_accuracy": scores["val"]["accuracy"],
            "best_epoch": meta["best_epoch"], "epochs_run": len(history),
            "train_seconds": meta["train_seconds"], "params": meta["params"], "size_mb": meta["size_mb"],
            "history": history}


def fit_student(name: str, arch: Any, vocab: Vocab, train: EncodedSet, val: EncodedSet, test: EncodedSet,
                training: TrainSettings, *, seed: int, label_names: Sequence[str], max_length: int,
                model_dir: str | Path, metrics_dir: str | Path, loss_fn: LossFn = cross_entropy_loss,
                extra_meta: dict[str, Any] | None = None, num_threads: int | None = 1,
                reuse: bool = True) -> dict[str, Any]:
    """Train one student for one seed, save it and its val/test logits; return the seed's record.

    Writes ``model_dir`` (:func:`~kdutils.student.models.save_student`),
    ``metrics_dir/<name>_seed<k>_{val,test}.npz`` and ``..._history.json``.
    With ``reuse``, a run already saved with the same data, vocabulary, architecture, loss, settings
    and training code (its fingerprint in ``kdmodel.json``) is read back instead of retrained, so an
    interrupted notebook resumes with the seeds it had not finished.
    """
    model_dir, metrics_dir = Path(model_dir), Path(metrics_dir)
    fingerprint = _fit_fingerprint(name, arch, vocab, train, val, test, loss_fn, seed=seed, epochs=training.epochs,
                                   batch_size=training.batch_size, lr=training.learning_rate,
                                   patience=training.patience, max_length=max_length,
                                   label_names=list(label_names), extra_meta=extra_meta or {})
    if reuse and (saved := _saved_record(model_dir, metrics_dir, name, seed, fingerprint)) is not None:
        return saved
    model = init_student(vocab, len(label_names), arch, seed)
    result = train_classifier(model, train, val, loss_fn=loss_fn, epochs=training.epochs,
                              batch_size=training.batch_size, lr=training.learning_rate,
                              patience=training.stop_after, seed=seed, desc=f"{name} seed {seed}",
                              num_threads=num_threads)
    scores = {}
    for split, data in (("val", val), ("test", test)):
        with torch_threads(num_threads):
            logits = predict_logits(model, data)
        save_predictions(predictions_file(metrics_dir, name, split, seed), logits, data.labels.numpy())
        scores[split] = classification_metrics(data.labels.numpy(), logits)
    write_json(history_file(metrics_dir, name, seed), result.history)
    meta = {"name": name, "label_names": list(label_names), "max_length": max_length, "seed": seed,
            "best_epoch": result.best_epoch, "val_accuracy": scores["val"]["accuracy"],
            "test_accuracy": scores["test"]["accuracy"], "train_seconds": result.seconds,
            "arch": arch.model_dump() if hasattr(arch, "model_dump") else dict(arch), **(extra_meta or {}),
            "fingerprint": fingerprint}
    # The model (with its fingerprint) is written last: a run interrupted before this is retrained.
    save_student(model_dir, model, vocab, meta)
    saved = read_meta(model_dir)
    return {"seed": seed, "accuracy": scores["test"]["accuracy"], "macro_f1": scores["test"]["macro_f1"],
            "ece": scores["test"]["ece"], "val_accuracy": scores["val"]["accuracy"],
            "best_epoch": result.best_epoch, "epochs_run": len(history := result.history),
            "train_seconds": result.seconds, "params": saved["params"], "size_mb": saved["size_mb"],
            "history": history}


def summarise_seeds(records: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """The contract's summary entry for a model trained over seeds (mean, std, 95% CI over seeds)."""
    if not records:
        raise ValueError("no per-seed records to summarise")
    acc = mean_ci([r["accuracy"] for r in records])
    f1 = mean_ci([r["macro_f1"] for r in records])
    per_seed = [{k: r[k] for k in ("seed", "accuracy", "macro_f1", "best_epoch", "train_seconds") if k in r}
                | ({"val_accuracy": r["val_accuracy"]} if "val_accuracy" in r else {}) for r in records]
    out = {"accuracy_mean": acc["mean"], "accuracy_std": acc["std"], "accuracy_ci95": acc["ci95"],
           "macro_f1_mean": f1["mean"], "macro_f1_std": f1["std"], "macro_f1_ci95": f1["ci95"],
           "n_seeds": len(records), "per_seed": per_seed,
           "params": records[0].get("params"), "size_mb": records[0].get("size_mb")}
    if all("val_accuracy" in r for r in records):
        out["val_accuracy_mean"] = float(np.mean([r["val_accuracy"] for r in records]))
    if all("ece" in r for r in records):
        out["ece_mean"] = float(np.mean([r["ece"] for r in records]))
    return out


