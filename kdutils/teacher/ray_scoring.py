"""The teacher's scoring on a Ray cluster: new sentences scored by a pool of actors, cached by the driver.

:class:`RayTeacherScorer` is a :class:`~kdutils.teacher.scoring.TeacherScorer` whose sentences
missing from the cache are sent, ``chunk_rows`` at a time, to Ray Data actors that each load the
teacher once and return, per sentence, its row, the sha256 of its text and its logits. The driver
checks each digest against the text it sent and merges every chunk into the same content-keyed
cache as local scoring, so caching, resuming after an interruption and reading back across runs
work as they do on one machine. Workers score in the driver's numeric mode (its ``PrecisionChoice``
is sent, never resolved again on a worker), so the cache key stays true.

:func:`make_scorer` picks the engine from a profile's ``distill.scoring_engine`` (``local`` or
``ray``). The teacher's folder must be on storage every node sees (see
:mod:`kdutils.inference.ray_cluster` for the cluster recipe).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pyarrow as pa

from kdutils.inference.ray_cluster import ACTOR_CPUS, ray_session
from kdutils.machine import PrecisionChoice
from kdutils.study.model_files import CONFIG_FILE
from kdutils.teacher.scoring import TeacherScorer, text_digests

ScoringEngine = Literal["local", "ray"]
ENGINES: tuple[str, ...] = ("local", "ray")


class _ScoringActor:
    """A Ray Data actor: one teacher loaded once, scoring whole chunks in one torch thread."""

    def __init__(self, model_dir: str, max_length: int, batch_size: int, precision: PrecisionChoice) -> None:
        import torch

        # Several actors share a node's cores: one thread each, no OpenMP contention between them.
        torch.set_num_threads(1)
        self.scorer = TeacherScorer(model_dir, None, batch_size, max_length, precision=precision, runtime="torch")

    def __call__(self, batch: pa.Table) -> pa.Table:
        texts = batch.column("text").to_pylist()
        logits = self.scorer.score(texts)
        return pa.table({
            "row": batch.column("row"),
            "hash": pa.array(text_digests(texts).tolist(), type=pa.binary(32)),
            "logits": pa.array(list(logits), type=pa.list_(pa.float32())),
        })


class RayTeacherScorer(TeacherScorer):
    """A :class:`TeacherScorer` whose new sentences are scored by ``workers`` Ray actors.

    ``address``: the cluster to join (None: Ray's ``RAY_ADDRESS``, else a local cluster of this
    machine; a Ray already running in this process is used as it is). The other arguments are
    :class:`TeacherScorer`'s. ``last_stats`` adds ``engine`` and ``workers``.
    """

    def __init__(self, model_dir: str | Path, cache_dir: str | Path | None = None, *, address: str | None = None,
                 workers: int = 2, **kwargs: Any) -> None:
        super().__init__(model_dir, cache_dir, **kwargs)
        if workers < 1:
            raise ValueError(f"workers must be >= 1, got {workers}")
        self.address = address
        self.workers = int(workers)

    def _engine_stats(self) -> dict[str, Any]:
        return {"engine": "ray", "workers": self.workers}

    def score(self, texts: Sequence[str],
              on_chunk: Callable[[np.ndarray, np.ndarray], None] | None = None) -> np.ndarray:
        """Logits [N, C] of ``texts`` from the actors, in the order given; ``on_chunk(rows, logits)``
        after every chunk that comes back (chunks arrive in any order).

        Raises ``RuntimeError`` if a worker returns logits for a text other than the one sent.
        """
        texts = [str(t) for t in texts]
        num_labels = int(self.meta.get("num_labels") or _num_labels(self.model_dir))
        out = np.zeros((len(texts), num_labels), dtype=np.float32)
        if not texts:
            return out
        digests = text_digests(texts)
        seen = np.zeros(len(texts), dtype=bool)
        table = pa.table({"row": np.arange(len(texts), dtype=np.int64), "text": texts})
        # One block per chunk: each actor call scores one chunk, and each chunk persists on return.
        blocks = [table.slice(i, self.chunk_rows) for i in range(0, len(texts), self.chunk_rows)]
        with ray_session(self.address) as ray:
            scored = ray.data.from_arrow(blocks).map_batches(
                _ScoringActor, batch_size=None, batch_format="pyarrow",
                compute=ray.data.ActorPoolStrategy(size=min(self.workers, len(blocks))), num_cpus=ACTOR_CPUS,
                fn_constructor_kwargs={"model_dir": str(self.model_dir), "max_length": self.max_length,
                                       "batch_size": self.batch_size, "precision": self.precision})
            for batch in scored.iter_batches(batch_size=None, batch_format="pyarrow"):
                rows = batch.column("row").to_numpy()
                returned = np.array(batch.column("hash").to_pylist(), dtype="S32")
                if not np.array_equal(returned, digests[rows]):
                    raise RuntimeError("a Ray worker returned logits for texts other than those it was sent")
                logits = np.stack(batch.column("logits").to_numpy(zero_copy_only=False)).astype(np.float32)
                out[rows] = logits
                seen[rows] = True
                if on_chunk is not None:
                    on_chunk(rows, logits)
        if not seen.all():
            # Zeros are not the teacher's logits: never hand them to training.
            raise RuntimeError(f"the Ray workers returned no logits for {int((~seen).sum()):,} of "
                               f"{len(texts):,} sentences")
        self._last_runtime = "torch"
        return out


def _num_labels(model_dir: Path) -> int:
    config = json.loads((model_dir / CONFIG_FILE).read_text())
    return len(config.get("id2label") or {}) or int(config["num_labels"])


def make_scorer(engine: str, model_dir: str | Path, cache_dir: str | Path | None = None, *,
                address: str | None = None, workers: int = 2, **kwargs: Any) -> TeacherScorer:
    """The teacher's scorer on ``engine``: ``local`` (this process) or ``ray`` (``workers`` actors on
    the cluster at ``address``). Other arguments are :class:`TeacherScorer`'s. Raises
    ``ValueError`` for another engine."""
    if engine == "local":
        return TeacherScorer(model_dir, cache_dir, **kwargs)
    if engine == "ray":
        return RayTeacherScorer(model_dir, cache_dir, address=address, workers=workers, **kwargs)
    raise ValueError(f"scoring engine must be one of {', '.join(ENGINES)}, got {engine!r}")
