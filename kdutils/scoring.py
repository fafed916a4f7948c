"""Teacher logits for many sentences, fast and cached on disk by content.

``TeacherScorer(model_dir, cache_dir, batch_size, max_length).logits(texts) -> np.ndarray [N, C]``
tokenises every text once, scores them in batches of similar length (little padding) under
``torch.inference_mode`` and returns the rows in the order given.

The cache holds one file per (weights sha256, ``config.json``, ``max_length``) key, mapping the
sha256 of each text to its logits, so any later call reuses the rows it already has (the test
set, then the transfer set, ...). Each file carries its key and a digest of its contents; a file
whose key or digest does not match, or that cannot be read, is ignored and rebuilt, never used.
Writes are atomic and merged under a lock, so concurrent scorers never lose or mix rows.
"""

from __future__ import annotations

import fcntl
import functools
import hashlib
import json
import os
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

import numpy as np

from kdutils.runs import atomic_path, read_json, sha256_file, sha256_text

WEIGHTS_FILE = "model.safetensors"
CACHE_FORMAT = 1


@functools.lru_cache(maxsize=16)
def _weights_id(path: str, size: int, mtime_ns: int) -> str:
    # Keyed by size and mtime too, so a replaced file is hashed again.
    return sha256_file(path)


def weights_identity(model_dir: str | Path) -> str:
    """sha256 of a model directory's weights (hashed once per file version in a process)."""
    weights = Path(model_dir) / WEIGHTS_FILE
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
    disables the cache. After each call, ``last_stats`` says how many rows came from the cache,
    how many were scored, whether a bad cache file was rebuilt, and the scoring rate.
    """

    def __init__(self, model_dir: str | Path, cache_dir: str | Path | None = None, batch_size: int = 128,
                 max_length: int | None = None, device: str | None = None, progress: bool = False) -> None:
        self.model_dir = Path(model_dir)
        if not (self.model_dir / WEIGHTS_FILE).exists():
            raise FileNotFoundError(f"{self.model_dir / WEIGHTS_FILE} not found: train the teacher first")
        meta_path = self.model_dir / "kdmodel.json"
        self.meta: dict[str, Any] = read_json(meta_path) if meta_path.exists() else {}
        if max_length is None:
            if "max_length" not in self.meta:
                raise ValueError(f"{self.model_dir}: no kdmodel.json max_length; pass max_length")
            max_length = int(self.meta["max_length"])
        self.max_length = int(max_length)
        self.batch_size = int(batch_size)
        self.cache_dir = Path(cache_dir) if cache_dir is not None else None
        self.device = device
        self.progress = progress
        self._key: str | None = None
        self._model: Any = None
        self._tokenizer: Any = None
        self.last_stats: dict[str, Any] = {}

    # ------------------------------------------------------------------ identity and cache files

    @property
    def key(self) -> str:
        """Cache key: the weights' sha256, the model config and ``max_length``."""
        if self._key is None:
            config = (self.model_dir / "config.json").read_text()
            self._key = sha256_text(f"format{CACHE_FORMAT}", weights_identity(self.model_dir), config,
                                    str(self.max_length))
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

    def score(self, texts: Sequence[str]) -> np.ndarray:
        """Logits of ``texts`` straight from the model (no cache), in the order given."""
        import torch

        texts = [str(t) for t in texts]
        self._load_model()
        if not texts:
            return np.zeros((0, self._model.config.num_labels), dtype=np.float32)
        enc = self._tokenizer(texts, truncation=True, max_length=self.max_length)
        keys = list(enc.keys())
        # Longest first: a memory problem shows at once, and batches of equal length pad little.
        order = np.argsort([-len(ids) for ids in enc["input_ids"]], kind="stable")
        out = np.zeros((len(texts), self._model.config.num_labels), dtype=np.float32)
        batches = range(0, len(order), self.batch_size)
        if self.progress:
            from kdutils import progress

            batches = progress.bar(batches, desc="teacher logits", leave=False, mininterval=5)
        with torch.inference_mode():
            for start in batches:
                idx = order[start:start + self.batch_size]
                batch = self._tokenizer.pad([{k: enc[k][i] for k in keys} for i in idx], return_tensors="pt")
                logits = self._model(**{k: v.to(self.device) for k, v in batch.items()}).logits
                out[idx] = logits.float().cpu().numpy()
        return out

    def logits(self, texts: Sequence[str]) -> np.ndarray:
        """Logits [N, C] of ``texts`` in the order given; rows already cached are not rescored."""
        texts = [str(t) for t in texts]
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
        new_l = self.score([texts[i] for i in missing.values()]) if missing else None
        scored_at = time.perf_counter()

        table: dict[bytes, np.ndarray] = {}
        if new_l is not None:
            table.update(zip(missing.keys(), new_l, strict=True))
            if self.cache_file is not None:
                self._merge_into_cache(np.array(list(missing.keys()), dtype="S32"), new_l)
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
        }
        return out

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
