"""Teacher logits for many sentences, fast and cached on disk by content.

``TeacherScorer(model_dir, cache_dir, batch_size, max_length).logits(texts) -> np.ndarray [N, C]``
tokenises every text once, scores them in batches of similar length (little padding) and returns
the rows in the order given.

Speed: the scorer runs in the machine's numeric mode (:func:`kdutils.machine.resolve_precision`:
bf16 autocast on CPUs with native bf16, fp32 elsewhere) and, for large jobs with
``runtime="auto"``, exports the teacher to ONNX once and times both runtimes on a few batches of
the job itself (interleaved, so a busy machine slows both alike). ONNX Runtime is used only where
it is faster *and* gives the same predictions (same argmax, logits within ``ONNX_TOLERANCE``).
``last_stats`` records the mode, the runtime and the calibration.

The cache holds one file per (weights sha256, ``config.json``, ``max_length``, mode) key, mapping
the sha256 of each text to its logits, so any later call reuses the rows it already has (the test
set, then the transfer set, ...). Rows are merged into the cache every ``chunk_rows`` scored
sentences, so an interrupted job loses at most one chunk. Each file carries its key and a digest
of its contents; a file whose key or digest does not match, or that cannot be read, is ignored and
rebuilt, never used. Writes are atomic and merged under a lock, so concurrent scorers never lose
or mix rows.
"""

from __future__ import annotations

import fcntl
import functools
import hashlib
import json
import os
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

import numpy as np

from kdutils import progress
from kdutils.inference.export import export_onnx
from kdutils.inference.predictors import ort_session
from kdutils.machine import PrecisionChoice, resolve_precision
from kdutils.study import steps
from kdutils.study.files import atomic_path, sha256_file, sha256_text
from kdutils.study.model_files import CONFIG_FILE, meta_path, read_meta, weights_path

# torch and transformers are imported where the teacher is loaded: each takes seconds, and a
# job served from the cache never needs them.

CACHE_FORMAT = 1
# ONNX Runtime and eager PyTorch (both fp32) must agree this closely to share cached rows.
ONNX_TOLERANCE = 1e-3
# A job smaller than this is scored in eager PyTorch: exporting would cost more than it saves.
ONNX_MIN_ROWS = 2000


@functools.lru_cache(maxsize=16)
def _weights_id(path: str, size: int, mtime_ns: int) -> str:
    # Keyed by size and mtime too, so a replaced file is hashed again.
    return sha256_file(path)


def weights_identity(model_dir: str | Path) -> str:
    """sha256 of a model directory's weights (hashed once per file version in a process)."""
    weights = weights_path(model_dir)
    stat = weights.stat()
    return _weights_id(str(weights.resolve()), stat.st_size, stat.st_mtime_ns)


def text_digests(texts: Sequence[str]) -> np.ndarray:
    """sha256 of each text (UTF-8, exact), as an ``S32`` array."""
    return np.array([hashlib.sha256(t.encode("utf-8")).digest() for t in texts], dtype="S32")


def _content_digest(key: str, hashes: np.ndarray, logits: np.ndarray) -> str:
    h = hashlib.sha256(key.encode())
    h.update(np.ascontiguousarray(hashes).tobytes())
    h.update(np.ascontiguousarray(logits, dtype=np.float32).tobytes())
    return h.hexdigest()


class TeacherScorer:
    """Batched, length-sorted, disk-cached logits of a saved teacher (``save_pretrained`` folder).

    ``max_length`` defaults to the one recorded in the folder's ``kdmodel.json``. ``cache_dir=None``
    disables the cache. ``precision`` is ``auto``/``fp32``/``bf16`` (resolved once, see
    :mod:`kdutils.machine`) or an already resolved ``PrecisionChoice``; ``runtime`` is ``auto``/``torch``/``onnx`` (``auto``: ONNX Runtime for
    jobs of at least ``ONNX_MIN_ROWS`` sentences where a calibration finds it faster and equal in
    its predictions; ``onnx`` needs ``onnxruntime`` and exports into ``cache_dir``). After each call,
    ``last_stats`` says how many rows came from the cache, how many were scored, whether a bad cache
    file was rebuilt, the scoring rate, and the mode and runtime used.
    """

    def __init__(self, model_dir: str | Path, cache_dir: str | Path | None = None, batch_size: int = 128,
                 max_length: int | None = None, device: str | None = None, progress: bool = False,
                 precision: str | PrecisionChoice = "auto", runtime: str = "auto", chunk_rows: int = 4096) -> None:
        self.model_dir = Path(model_dir)
        if not weights_path(self.model_dir).exists():
            weights = weights_path(self.model_dir)
            raise FileNotFoundError(f"{weights} not found: "
                                    f"{steps.run_first(f'models/{self.model_dir.name}/{weights.name}')}")
        if runtime not in ("auto", "torch", "onnx"):
            raise ValueError(f"runtime must be auto, torch or onnx, got {runtime!r}")
        if chunk_rows < 1:
            raise ValueError(f"chunk_rows must be >= 1, got {chunk_rows}")
        self.meta: dict[str, Any] = read_meta(self.model_dir) if meta_path(self.model_dir).exists() else {}
        if max_length is None:
            if "max_length" not in self.meta:
                raise ValueError(f"{self.model_dir}: no kdmodel.json max_length; pass max_length")
            max_length = int(self.meta["max_length"])
        self.max_length = int(max_length)
        self.batch_size = int(batch_size)
        self.cache_dir = Path(cache_dir) if cache_dir is not None else None
        self.device = device
        self.progress = progress
        # A PrecisionChoice is used as given: a driver's workers must score in the driver's mode,
        # whatever their own CPU would pick (the cache key carries the mode).
        self.precision = precision if isinstance(precision, PrecisionChoice) else resolve_precision(precision, device)
        self.runtime = runtime
        self.chunk_rows = int(chunk_rows)
        self._key: str | None = None
        self._model: Any = None
        self._tokenizer: Any = None
        self._onnx: Any = None
        self.calibration: dict[str, Any] | None = None
        self.last_stats: dict[str, Any] = {}

    # ------------------------------------------------------------------ identity and cache files

    @property
    def key(self) -> str:
        """Cache key: the weights' sha256, the model config, ``max_length`` and (if not fp32) the mode."""
        if self._key is None:
            config = (self.model_dir / CONFIG_FILE).read_text()
            # fp32 keys are those of earlier versions: cached fp32 rows stay valid.
            mode = () if self.precision.mode == "fp32" else (self.precision.mode,)
            self._key = sha256_text(f"format{CACHE_FORMAT}", weights_identity(self.model_dir), config,
                                    str(self.max_length), *mode)
        return self._key

    @property
    def cache_file(self) -> Path | None:
        return self.cache_dir / f"logits-{self.key[:32]}.npz" if self.cache_dir is not None else None

    def _read_cache(self) -> tuple[np.ndarray, np.ndarray, bool]:
        """(hashes, logits, rejected): the valid cache contents; ``rejected`` when a file was unusable."""
        empty = (np.zeros(0, dtype="S32"), np.zeros((0, 0), dtype=np.float32))
        path = self.cache_file
        if path is None or not path.exists():
            return (*empty, False)
        try:
            with np.load(path, allow_pickle=False) as data:
                header = json.loads(str(data["header"]))
                hashes, logits = data["hashes"], data["logits"].astype(np.float32)
        except (OSError, ValueError, KeyError, json.JSONDecodeError):
            return (*empty, True)
        ok = (
            header.get("key") == self.key
            and hashes.dtype == np.dtype("S32")
            and logits.ndim == 2
            and len(hashes) == len(logits)
            and header.get("digest") == _content_digest(self.key, hashes, logits)
        )
        return (hashes, logits, False) if ok else (*empty, True)

    def _write_cache(self, hashes: np.ndarray, logits: np.ndarray) -> None:
        path = self.cache_file
        assert path is not None
        header = json.dumps({"key": self.key, "model_dir": str(self.model_dir), "max_length": self.max_length,
                             "rows": len(hashes), "digest": _content_digest(self.key, hashes, logits)})
        with atomic_path(path) as tmp:
            with open(tmp, "wb") as handle:
                np.savez(handle, header=np.array(header), hashes=hashes, logits=logits.astype(np.float32))

    # ------------------------------------------------------------------ scoring

    def _load_model(self) -> None:
        if self._model is not None:
            return
        import torch
        from transformers import AutoModelForSequenceClassification, AutoTokenizer
        from transformers.utils import logging as hf_logging

        hf_logging.disable_progress_bar()
        self.device = self.device or ("cuda" if torch.cuda.is_available() else "cpu")
        self._tokenizer = AutoTokenizer.from_pretrained(self.model_dir)
        self._model = AutoModelForSequenceClassification.from_pretrained(self.model_dir).to(self.device).eval()

    def _torch_batch(self, batch: dict[str, Any]) -> np.ndarray:
        import torch

        with torch.inference_mode(), torch.autocast("cpu", dtype=torch.bfloat16,
                                                    enabled=self.precision.mode == "bf16" and self.device == "cpu"):
            logits = self._model(**{k: torch.as_tensor(v).to(self.device) for k, v in batch.items()}).logits
        return logits.float().cpu().numpy()

    def _onnx_batch(self, batch: dict[str, Any]) -> np.ndarray:
        feed = {name: np.asarray(batch[name], dtype=np.int64) for name in ("input_ids", "attention_mask")}
        return self._onnx.run(None, feed)[0]

    def _onnx_session(self) -> Any:
        """Export the teacher to ONNX once (kept beside the cache, keyed by its weights) and open it."""
        import torch

        folder = self.cache_dir if self.cache_dir is not None else self.model_dir
        path = Path(folder) / f"teacher-{weights_identity(self.model_dir)[:24]}.onnx"
        started = time.perf_counter()
        if not path.exists():
            with atomic_path(path) as tmp:
                export_onnx(self.model_dir, tmp)
        export_seconds = time.perf_counter() - started
        return ort_session(path, torch.get_num_threads()), path, export_seconds

    def _choose_runtime(self, enc: Any, order: np.ndarray, n_rows: int) -> str:
        """``torch`` or ``onnx`` for this job, by an interleaved timing on batches of the job."""
        if self.device != "cpu" or self.runtime == "torch" or (self.runtime == "auto" and n_rows < ONNX_MIN_ROWS):
            return "torch"
        if self._onnx is None:
            self._onnx, path, export_seconds = self._onnx_session()
            # The file's name: it lives in the scorer's cache folder, and a summary names no path
            # of the machine that made it.
            self.calibration = {"onnx_file": path.name, "export_seconds": round(export_seconds, 2)}
        if self.runtime == "onnx":
            return "onnx"
        # Three batches from the middle of the length order: typical of the job, not its extremes.
        mid = max(0, len(order) // 2 - 3 * self.batch_size // 2)
        batches = [self._pad(enc, order[i:i + self.batch_size])
                   for i in range(mid, min(len(order), mid + 3 * self.batch_size), self.batch_size)]
        seconds = {"torch": 0.0, "onnx": 0.0}
        worst, same = 0.0, True
        for _ in range(2):
            for batch in batches:
                outs = {}
                for name, fn in (("torch", self._torch_batch), ("onnx", self._onnx_batch)):
                    t0 = time.perf_counter()
                    outs[name] = fn(batch)
                    seconds[name] += time.perf_counter() - t0
                worst = max(worst, float(np.abs(outs["torch"] - outs["onnx"]).max()))
                same = same and bool((outs["torch"].argmax(1) == outs["onnx"].argmax(1)).all())
        # Against bf16 eager the tolerance is bf16's own error: only the argmax must agree.
        close = same and (worst <= ONNX_TOLERANCE or self.precision.mode != "fp32")
        choice = "onnx" if close and seconds["onnx"] < 0.95 * seconds["torch"] else "torch"
        self.calibration.update({"torch_seconds": round(seconds["torch"], 3), "onnx_seconds": round(seconds["onnx"], 3),
                                 "speedup": round(seconds["torch"] / max(seconds["onnx"], 1e-9), 3),
                                 "max_abs_logit_diff": worst, "same_argmax": same, "chosen": choice})
        return choice

    def _pad(self, enc: Any, idx: np.ndarray) -> dict[str, Any]:
        keys = list(enc.keys())
        return self._tokenizer.pad([{k: enc[k][i] for k in keys} for i in idx], return_tensors="np")

    def score(self, texts: Sequence[str],
              on_chunk: Callable[[np.ndarray, np.ndarray], None] | None = None) -> np.ndarray:
        """Logits [N, C] of ``texts`` straight from the model (no cache), in the order given.

        ``on_chunk(rows, logits)`` is called after every ``chunk_rows`` scored sentences (and at the
        end) with the positions in ``texts`` and their logits, so a caller can persist them.
        """
        texts = [str(t) for t in texts]
        self._load_model()
        if not texts:
            return np.zeros((0, self._model.config.num_labels), dtype=np.float32)
        enc = self._tokenizer(texts, truncation=True, max_length=self.max_length, return_token_type_ids=False)
        # Longest first: a memory problem shows at once, and batches of equal length pad little.
        order = np.argsort([-len(ids) for ids in enc["input_ids"]], kind="stable")
        runtime = self._choose_runtime(enc, order, len(texts))
        forward = self._onnx_batch if runtime == "onnx" else self._torch_batch
        self._last_runtime = runtime
        out = np.zeros((len(texts), self._model.config.num_labels), dtype=np.float32)
        batches: Any = range(0, len(order), self.batch_size)
        if self.progress:
            batches = progress.bar(batches, desc=f"teacher logits ({runtime}, {self.precision.mode})", leave=False,
                                   mininterval=5, unit="batch")
        pending: list[np.ndarray] = []
        n_pending = 0
        for start in batches:
            idx = order[start:start + self.batch_size]
            out[idx] = forward(self._pad(enc, idx))
            pending.append(idx)
            n_pending += len(idx)
            if on_chunk is not None and (n_pending >= self.chunk_rows or start + self.batch_size >= len(order)):
                rows = np.concatenate(pending)
                on_chunk(rows, out[rows])
                pending, n_pending = [], 0
        return out

    def logits(self, texts: Sequence[str]) -> np.ndarray:
        """Logits [N, C] of ``texts`` in the order given; rows already cached are not rescored."""
        texts = [str(t) for t in texts]
        self._last_runtime = None
        if not texts:
            return self.score([])
        started = time.perf_counter()
        hashes = text_digests(texts)
        cached_h, cached_l, rejected = self._read_cache()
        index = {h: i for i, h in enumerate(cached_h.tolist())}
        # Unique texts not in the cache, in first-seen order.
        missing: dict[bytes, int] = {}
        for i, h in enumerate(hashes.tolist()):
            if h not in index and h not in missing:
                missing[h] = i
        new_l = None
        if missing:
            keys = np.array(list(missing.keys()), dtype="S32")

            def persist(rows: np.ndarray, logits: np.ndarray) -> None:
                if self.cache_file is not None:
                    self._merge_into_cache(keys[rows], logits)

            new_l = self.score([texts[i] for i in missing.values()], on_chunk=persist)
        scored_at = time.perf_counter()

        table: dict[bytes, np.ndarray] = {}
        if new_l is not None:
            table.update(zip(missing.keys(), new_l, strict=True))
        num_labels = new_l.shape[1] if new_l is not None else cached_l.shape[1]
        out = np.empty((len(texts), num_labels), dtype=np.float32)
        for row, h in enumerate(hashes.tolist()):
            out[row] = table[h] if h in table else cached_l[index[h]]
        n_scored = len(missing)
        self.last_stats = {
            "rows": len(texts),
            "from_cache": len(texts) - sum(1 for h in hashes.tolist() if h in table),
            "scored": n_scored,
            "rebuilt": rejected,
            "seconds": round(time.perf_counter() - started, 3),
            "sentences_per_s": round(n_scored / max(scored_at - started, 1e-9), 1) if n_scored else None,
            "precision": self.precision.mode,
            "precision_reason": self.precision.reason,
            "runtime": self._last_runtime,
            "runtime_calibration": self.calibration if self._last_runtime else None,
            **self._engine_stats(),
        }
        return out

    def _engine_stats(self) -> dict[str, Any]:
        """What ``last_stats`` says of where the scoring ran: here, in this process."""
        return {"engine": "local"}

    def _merge_into_cache(self, hashes: np.ndarray, logits: np.ndarray) -> None:
        path = self.cache_file
        assert path is not None
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(path.with_suffix(".lock"), "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            # Re-read under the lock: another scorer may have added rows since our first read.
            old_h, old_l, _ = self._read_cache()
            if len(old_h) and old_l.shape[1] == logits.shape[1]:
                keep = ~np.isin(old_h, hashes)
                hashes = np.concatenate([old_h[keep], hashes])
                logits = np.concatenate([old_l[keep], logits])
            self._write_cache(hashes, logits)
