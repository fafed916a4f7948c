"""One "texts -> logits" interface for every saved model of a run, in every runtime.

The server and the benchmarks see models only through this module. It loads
artefacts (``model.safetensors``, ``config.json``, ``kdmodel.json``,
``vocab.json``, a Hugging Face tokenizer, ``model.onnx``) and never imports
training code: the student's architecture comes from :mod:`kdutils.student.models`,
which defines the network but not how it is trained.

Names. A run's trained models are discovered by their ``kdmodel.json`` files:
``teacher``, ``teacher_L<k>`` (``models/<name>/``) and the students
``student_baseline``, ``student_distilled``, ``student_original``
(``models/<name>/seed<k>/``). **Seed rule:** a student is served from its
lowest-numbered seed directory (``seed0`` for every profile shipped here), so a
served student is always the same, documented, file. ONNX exports of a model
live in ``models/onnx/<name>/{model.onnx, model.int8.onnx}`` and are served as
``<name>@onnx`` and ``<name>@onnx-int8``; the plain name is the eager PyTorch
model (runtime ``torch``).
"""

from __future__ import annotations

import functools
import json
import os
import re
import time
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np

from kdutils.data.text import Vocab, tokenize
from kdutils.machine import Precision, quiet_transformers
from kdutils.study import steps
from kdutils.study.files import sha256_file
from kdutils.study.model_files import (
    EXPORT_META,
    ONNX_FILES,
    VOCAB_FILE,
    meta_path,
    read_meta,
    weights_path,
)
from kdutils.study.runs import RunDir
from kdutils.study.specs import TEACHER_NAME

# torch (also through kdutils.data.text and kdutils.student.models), transformers and onnxruntime are imported
# where a predictor of that runtime is built: a server of ONNX students never loads torch.

# Local directories only; a missing file must fail, never reach for a hub.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

Runtime = Literal["torch", "onnx", "onnx-int8"]
RUNTIMES: tuple[str, ...] = ("torch", "onnx", "onnx-int8")
# The students the pipeline trains (kdutils.study.steps), in name order: the order they are discovered in.
STUDENT_NAMES = tuple(sorted(steps.students()))
_SEED_DIR = re.compile(r"^seed(\d+)$")


class ModelNotFound(KeyError):
    """No served model has this name."""


class PredictorError(RuntimeError):
    """A model could not be loaded or produced an unusable output."""


@dataclass(frozen=True)
class ModelEntry:
    """A served model: one saved model in one runtime."""

    name: str  # served name, e.g. "student_distilled@onnx-int8"
    base: str  # model name in the run, e.g. "student_distilled"
    runtime: str  # "torch" | "onnx" | "onnx-int8"
    kind: str  # "teacher" | "student"
    source_dir: Path  # the directory holding kdmodel.json (a seed directory for students)
    weights: Path  # the file whose size is reported: model.safetensors or the .onnx file
    meta: dict[str, Any] = field(repr=False, hash=False, compare=False, default_factory=dict)

    @property
    def params(self) -> int:
        return int(self.meta.get("params", 0))

    @property
    def size_mb(self) -> float:
        """Size on disk of the weight file, MiB (tokenizer and vocab files not counted)."""
        return self.weights.stat().st_size / 2**20

    @property
    def label_names(self) -> list[str]:
        return list(self.meta["label_names"])

    @property
    def max_length(self) -> int:
        return int(self.meta["max_length"])

    def describe(self) -> dict[str, Any]:
        return {"name": self.name, "model": self.base, "runtime": self.runtime, "kind": self.kind,
                "params": self.params, "size_mb": round(self.size_mb, 4), "label_names": self.label_names,
                "max_length": self.max_length, "source": str(self.source_dir)}


def run_of(run_or_models: str | Path | Any) -> RunDir:
    """The run of a RunDir, a run directory or its ``models/`` folder."""
    # (A pathlib.Path has a ``.root`` too, the filesystem root: only a RunDir's is wanted.)
    root = Path(run_or_models if isinstance(run_or_models, str | Path) else run_or_models.root)
    parent = RunDir(root.parent)
    return parent if parent.models == root else RunDir(root)


def models_dir_of(run_or_models: str | Path | Any) -> Path:
    """Accept a RunDir, a run directory or its ``models/`` folder."""
    return run_of(run_or_models).models


def served_seed_dir(model_dir: Path) -> Path | None:
    """The seed directory a student is served from: the lowest seed number present."""
    seeds = sorted((int(m.group(1)), p) for p in model_dir.iterdir()
                   if p.is_dir() and (m := _SEED_DIR.match(p.name)) and meta_path(p).exists())
    return seeds[0][1] if seeds else None


def _trained_models(models_dir: Path) -> dict[str, Path]:
    """Base model name -> directory holding its kdmodel.json (teachers first, then students)."""
    found: dict[str, Path] = {}
    if not models_dir.is_dir():
        return found
    for p in sorted(models_dir.iterdir()):
        if TEACHER_NAME.match(p.name) and meta_path(p).exists():
            found[p.name] = p
    for name in STUDENT_NAMES:
        if (models_dir / name).is_dir() and (seed_dir := served_seed_dir(models_dir / name)):
            found[name] = seed_dir
    return found


def onnx_dir(run_or_models: str | Path | Any, base: str) -> Path:
    """Where the ONNX exports of ``base`` live: ``models/onnx/<base>/``."""
    return run_of(run_or_models).onnx_dir(base)


def source_key(source_dir: Path) -> str:
    """A model directory relative to ``models/`` (``teacher``, ``student_distilled/seed0``).

    Exports record this rather than an absolute path, so a run directory can be moved.
    """
    source_dir = Path(source_dir)
    return source_dir.name if TEACHER_NAME.match(source_dir.name) else f"{source_dir.parent.name}/{source_dir.name}"


def export_is_current(export_dir: Path, source_dir: Path) -> bool:
    """True when ``export_dir`` was exported from the weights now in ``source_dir``."""
    path = export_dir / EXPORT_META
    if not path.exists():
        return False
    meta = json.loads(path.read_text())
    return (meta.get("source") == source_key(source_dir)
            and meta.get("source_sha256") == weights_digest(weights_path(source_dir)))


def weights_digest(path: Path) -> str:
    """sha256 of a weight file, remembered per (path, size, mtime): discovery runs often."""
    st = path.stat()
    return _digest(str(path), st.st_size, st.st_mtime_ns)


@functools.lru_cache(maxsize=256)
def _digest(path: str, size: int, mtime_ns: int) -> str:
    return sha256_file(path)


def discover(run_or_models: str | Path | Any) -> dict[str, ModelEntry]:
    """Every servable model of a run, by served name, in a stable order.

    ONNX variants appear only when their export is current (exported from the
    weights now on disk), so a retrained model is never served with stale ONNX.
    """
    models_dir = models_dir_of(run_or_models)
    entries: dict[str, ModelEntry] = {}
    for base, source in _trained_models(models_dir).items():
        meta = read_meta(source)
        kind = meta.get("kind", "student" if base.startswith("student") else "teacher")
        entries[base] = ModelEntry(base, base, "torch", kind, source, weights_path(source), meta)
        exp = onnx_dir(models_dir, base)
        if export_is_current(exp, source):
            for runtime, fname in ONNX_FILES.items():
                if (exp / fname).exists():
                    name = f"{base}@{runtime}"
                    entries[name] = ModelEntry(name, base, runtime, kind, source, exp / fname, meta)
    return entries


# --------------------------------------------------------------------------- encoders


class EmptyTextError(ValueError):
    """Texts that the model's own encoder turns into no tokens at all (``indices``: their positions)."""

    def __init__(self, indices: Sequence[int], model: str) -> None:
        self.indices = list(indices)
        super().__init__(f"texts at {self.indices} have no tokens for {model}: a text needs at least one "
                         "word, number or punctuation mark (whitespace, zero-width and control characters "
                         "are dropped by the tokenizer)")


class StudentEncoder:
    """Texts -> (input_ids int64 [B,T], mask bool [B,T]) with the student's saved vocab.

    Encodes straight into numpy (the same ids and mask as ``Vocab.encode_batch``, which builds
    torch tensors: measured 42 µs instead of 79 µs for one 25-token sentence).
    """

    input_names = ("input_ids", "mask")
    mask_name = "mask"
    special_tokens = 0

    def __init__(self, source_dir: Path, max_length: int) -> None:
        self.vocab = Vocab.load(source_dir / VOCAB_FILE)
        self.max_length = max_length

    def encode(self, texts: Sequence[str]) -> tuple[dict[str, np.ndarray], np.ndarray]:
        """The model inputs and each text's token count before padding (0: nothing the vocab can encode).

        An empty text still gets one UNK position (as in ``Vocab.encode_batch``) so pooling is defined.
        """
        stoi, unk, limit = self.vocab.stoi, self.vocab.UNK_ID, self.max_length
        rows = [[stoi.get(t, unk) for t in tokenize(text)[:limit]] for text in texts]
        counts = np.fromiter((len(r) for r in rows), dtype=np.int64, count=len(rows))
        width = max(1, int(counts.max(initial=0)))
        ids = np.full((len(rows), width), self.vocab.PAD_ID, dtype=np.int64)
        for i, r in enumerate(rows):
            ids[i, :len(r)] = r
        mask = np.arange(width)[None, :] < np.maximum(counts, 1)[:, None]
        ids[counts == 0, 0] = unk
        return {"input_ids": ids, "mask": mask}, counts

    def __call__(self, texts: Sequence[str]) -> dict[str, np.ndarray]:
        return self.encode(texts)[0]

    def lengths(self, texts: Sequence[str]) -> np.ndarray:
        return self(texts)["mask"].sum(axis=1)


class TeacherEncoder:
    """Texts -> (input_ids, attention_mask) int64, padded to the longest text, truncated."""

    input_names = ("input_ids", "attention_mask")
    mask_name = "attention_mask"

    def __init__(self, source_dir: Path, max_length: int) -> None:
        from transformers import AutoTokenizer

        self.tokenizer = AutoTokenizer.from_pretrained(str(source_dir), local_files_only=True)
        self.max_length = max_length
        # [CLS] and [SEP] (or <s>, </s>): a text that leaves only these has no tokens of its own.
        self.special_tokens = int(self.tokenizer.num_special_tokens_to_add(pair=False))

    def encode(self, texts: Sequence[str]) -> tuple[dict[str, np.ndarray], np.ndarray]:
        """The model inputs and each text's token count without special tokens (0: nothing left)."""
        batch = self(texts)
        return batch, batch["attention_mask"].sum(axis=1) - self.special_tokens

    def __call__(self, texts: Sequence[str]) -> dict[str, np.ndarray]:
        enc = self.tokenizer(list(texts), padding=True, truncation=True, max_length=self.max_length,
                             return_tensors="np", return_token_type_ids=False)
        return {"input_ids": enc["input_ids"].astype(np.int64),
                "attention_mask": enc["attention_mask"].astype(np.int64)}

    def lengths(self, texts: Sequence[str]) -> np.ndarray:
        return self(texts)["attention_mask"].sum(axis=1)


def make_encoder(entry: ModelEntry) -> StudentEncoder | TeacherEncoder:
    if entry.kind == "student":
        return StudentEncoder(entry.source_dir, entry.max_length)
    return TeacherEncoder(entry.source_dir, entry.max_length)


# --------------------------------------------------------------------------- predictors


class Predictor:
    """``predict_logits(texts) -> float32 [N, C]`` for one model in one runtime.

    Subclasses implement ``_forward(batch)`` on an encoded batch. Thread-safe:
    the server calls one predictor from several worker threads at once.
    """

    def __init__(self, entry: ModelEntry) -> None:
        self.entry = entry
        self.encoder = make_encoder(entry)
        self._recent: deque[float] = deque(maxlen=15)

    @property
    def name(self) -> str:
        return self.entry.name

    @property
    def label_names(self) -> list[str]:
        return self.entry.label_names

    # False for a runtime whose answer for one text depends on the other rows of its batch
    # (dynamic int8: activation scales over the whole batch): such a predictor runs row by row,
    # and the server never batches requests to it together.
    batch_invariant = True

    def _forward(self, batch: dict[str, np.ndarray]) -> np.ndarray:
        raise NotImplementedError

    def predict_nonempty(self, texts: Sequence[str]) -> np.ndarray:
        """Logits ``float32 [N, C]`` for texts that must each keep at least one token.

        One encoding serves both the check and the model call. Raises :class:`EmptyTextError`
        (naming the positions) when the model's own encoder leaves a text with no tokens, and
        :class:`PredictorError` on an unusable model output.
        """
        texts = list(texts)
        t0 = time.perf_counter()
        batch, counts = self.encoder.encode(texts)
        empty = np.flatnonzero(counts <= 0)
        if empty.size:
            raise EmptyTextError(empty.tolist(), self.name)
        out = self._checked(self._forward(batch), len(texts))
        self._recent.append((time.perf_counter() - t0) / len(texts))
        return out

    @property
    def seconds_per_text(self) -> float | None:
        """Median seconds one text took in the last calls of :meth:`predict_nonempty` (encoding and
        model), None before the first. A median: one call stalled by a busy core must not count."""
        recent = sorted(self._recent)
        return recent[len(recent) // 2] if recent else None

    def predict_logits(self, texts: Sequence[str], batch_size: int | None = None) -> np.ndarray:
        """Logits in input order. With ``batch_size`` the texts run in chunks sorted by length."""
        texts = list(texts)
        if not texts:
            return np.zeros((0, len(self.label_names)), dtype=np.float32)
        if batch_size is None or len(texts) <= batch_size:
            return self._checked(self._forward(self.encoder(texts)), len(texts))
        order = np.argsort([len(t) for t in texts], kind="stable")
        out = np.empty((len(texts), len(self.label_names)), dtype=np.float32)
        for start in range(0, len(texts), batch_size):
            idx = order[start:start + batch_size]
            out[idx] = self._checked(self._forward(self.encoder([texts[i] for i in idx])), len(idx))
        return out

    def _checked(self, logits: np.ndarray, n: int) -> np.ndarray:
        # A wrong shape or a NaN is a model failure: raise, never hand back a made-up answer.
        logits = np.asarray(logits, dtype=np.float32)
        if logits.shape != (n, len(self.label_names)):
            raise PredictorError(f"{self.name} returned logits of shape {logits.shape}, "
                                 f"expected ({n}, {len(self.label_names)})")
        if not np.isfinite(logits).all():
            raise PredictorError(f"{self.name} returned non-finite logits")
        return logits


class TorchStudentPredictor(Predictor):
    def __init__(self, entry: ModelEntry) -> None:
        import torch

        # Here, not at the top: the student's module is PyTorch through and through, and a server of
        # ONNX models never loads torch (its start-up stays under a second).
        from kdutils.student.models import load_student

        super().__init__(entry)
        self._torch = torch
        self.model, _, _ = load_student(entry.source_dir)

    def _forward(self, batch: dict[str, np.ndarray]) -> np.ndarray:
        with self._torch.inference_mode():
            ids = self._torch.from_numpy(batch["input_ids"])
            mask = self._torch.from_numpy(batch["mask"])
            return self.model(ids, mask).float().numpy()


class TorchTeacherPredictor(Predictor):
    """The eager teacher, in fp32 or in bf16 autocast on the CPU (``precision``, already resolved
    for this machine by :func:`kdutils.machine.resolve_precision`)."""

    def __init__(self, entry: ModelEntry, precision: Precision = "fp32") -> None:
        import torch
        from transformers import AutoModelForSequenceClassification

        super().__init__(entry)
        self._torch = torch
        self.precision = precision
        quiet_transformers()
        # safetensors only: a pickled checkpoint in the directory is never unpickled.
        self.model = AutoModelForSequenceClassification.from_pretrained(
            str(entry.source_dir), use_safetensors=True, local_files_only=True).eval()

    def _forward(self, batch: dict[str, np.ndarray]) -> np.ndarray:
        torch = self._torch
        with torch.inference_mode(), torch.autocast("cpu", dtype=torch.bfloat16, enabled=self.precision == "bf16"):
            out = self.model(input_ids=torch.from_numpy(batch["input_ids"]),
                             attention_mask=torch.from_numpy(batch["attention_mask"]))
            return out.logits.float().numpy()


def ort_session(path: str | Path, threads: int | None = None) -> Any:
    """An onnxruntime CPU session with explicit intra-op threads (inter-op 1, sequential)."""
    import onnxruntime as ort

    opts = ort.SessionOptions()
    if threads:
        opts.intra_op_num_threads = threads
    opts.inter_op_num_threads = 1
    opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    opts.log_severity_level = 3
    return ort.InferenceSession(str(path), sess_options=opts, providers=["CPUExecutionProvider"])


class OnnxPredictor(Predictor):
    def __init__(self, entry: ModelEntry, threads: int | None = None) -> None:
        super().__init__(entry)
        self.session = ort_session(entry.weights, threads)
        self.threads = threads
        wanted = set(self.encoder.input_names)
        got = {i.name for i in self.session.get_inputs()}
        if got != wanted:
            raise PredictorError(f"{entry.weights} takes inputs {sorted(got)}, expected {sorted(wanted)}")

        # Dynamic int8 quantisation computes activation scales over the whole input, padding
        # included: a text's answer would change with its batch-mates. Each row runs alone,
        # trimmed to its own length, so it gets exactly the answer it gets when sent alone.
        self.batch_invariant = entry.runtime != "onnx-int8"
        self._mask = self.encoder.mask_name

    def _forward(self, batch: dict[str, np.ndarray]) -> np.ndarray:
        if self.batch_invariant:
            return self.session.run(None, batch)[0]
        lengths = batch[self._mask].sum(axis=1)
        return np.concatenate([self.session.run(None, {k: v[i:i + 1, :max(int(n), 1)] for k, v in batch.items()})[0]
                               for i, n in enumerate(lengths)], axis=0)


def make_predictor(entry: ModelEntry, threads: int | None = None, teacher_precision: Precision = "fp32") -> Predictor:
    """The predictor for one discovered entry (``threads``: onnxruntime intra-op threads).

    ``teacher_precision`` is the numeric mode of an eager teacher (resolved, ``fp32`` or ``bf16``);
    students and ONNX models always run in fp32.
    """
    if entry.runtime in ONNX_FILES:
        return OnnxPredictor(entry, threads)
    if entry.kind == "student":
        return TorchStudentPredictor(entry)
    return TorchTeacherPredictor(entry, teacher_precision)


def find_entry(run_or_models: str | Path | Any, name: str) -> ModelEntry:
    """The discovered entry of one served name, without loading the model.

    Raises :class:`ModelNotFound` naming the run's models directory and every name it serves.
    """
    entries = discover(run_or_models)
    if name not in entries:
        raise ModelNotFound(f"no model {name!r} in {models_dir_of(run_or_models)}; "
                            f"available: {', '.join(entries) or 'none'}")
    return entries[name]


def load_predictor(run_or_models: str | Path | Any, name: str, threads: int | None = None) -> Predictor:
    """Load one served model by name, e.g. ``"teacher"`` or ``"student_distilled@onnx-int8"``."""
    return make_predictor(find_entry(run_or_models, name), threads)


def split_name(name: str) -> tuple[str, str]:
    """``"student_distilled@onnx-int8"`` -> ``("student_distilled", "onnx-int8")``."""
    base, _, runtime = name.partition("@")
    return base, runtime or "torch"
