"""Batch prediction's engines: one chunk predicted, and the chunks run on this machine or a Ray cluster.

The computing half of :mod:`kdutils.inference.batch` (files are :mod:`kdutils.inference.batch_io`):

* :func:`predict_chunk`: one chunk's texts in batches sorted by length (less padding), rows back in
  input order;
* :func:`run_local`: in this process (``workers=1``) or in worker processes or threads, each loading
  the model once;
* :func:`run_ray`: on Ray Data (the chunks staged as Parquet in the job's hidden folder,
  ``read_parquet``, ``map_batches`` on an actor pool that loads the model once per actor, results
  joined back to chunks by row number on the driver, which writes the parts).

Both engines call the same :func:`predict_chunk`, so their predictions are identical.
"""

from __future__ import annotations

import os
import shutil
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO, Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from kdutils.inference import ray_cluster
from kdutils.inference.batch_io import ROW, PredictInputError, output_schema
from kdutils.inference.predictors import EmptyTextError, ModelEntry, Predictor, make_predictor
from kdutils.inference.ray_cluster import ACTOR_CPUS, INSTALL_HINT, RayMissing, ray_session
from kdutils.machine import Precision
from kdutils.metrics import softmax
from kdutils.progress import bar

# ray is imported where that engine is used.

# 64: on the ONNX BiLSTM student, sorted batches of 256 and 1,024 were slower than 64 (issue 22's
# probe; see kdutils.inference.batch_bench.bench_batch_predict for this machine's figures).
BATCH_SIZE = 64
_READY = "_ready"  # a Ray actor's model-ready time, carried back with its results
RAY_INSTALL_HINT = f"--engine ray needs Ray. {INSTALL_HINT}"


def predict_chunk(predictor: Predictor, chunk: pa.Table, batch_size: int = BATCH_SIZE,
                  sort: bool = True, model_name: str | None = None) -> pa.Table:
    """Predictions for one chunk of :func:`iter_chunks`, in the chunk's row order.

    Rows with a reason get none; texts the model's own tokenizer leaves with no tokens get the
    reason ``no tokens``. With ``sort`` the texts run in batches of ``batch_size`` sorted by
    length in characters. Returns a table of :func:`output_schema` (with ``_row``); probabilities
    are softmax values (float64). Raises PredictorError when the model fails.
    """
    n = chunk.num_rows
    names = predictor.label_names
    texts = chunk.column("text").to_pylist()
    reasons = chunk.column("reason").to_pylist()
    todo = [i for i, r in enumerate(reasons) if r is None]
    if sort:
        todo.sort(key=lambda i: len(texts[i]))
    probs = np.full((n, len(names)), np.nan)
    for start in range(0, len(todo), batch_size):
        idx = todo[start:start + batch_size]
        batch = [texts[i] for i in idx]
        try:
            logits = predictor.predict_nonempty(batch)
        except EmptyTextError as err:
            # Rare: run the batch again without the texts that have no tokens.
            empty = set(err.indices)
            for j in empty:
                reasons[idx[j]] = "no tokens"
            idx = [i for j, i in enumerate(idx) if j not in empty]
            if not idx:
                continue
            logits = predictor.predict_nonempty([texts[i] for i in idx])
        probs[idx] = softmax(logits)
    ok = np.array([r is None for r in reasons], dtype=bool)
    best = probs[ok].argmax(axis=1) if ok.any() else np.zeros(0, dtype=int)
    labels: list[str | None] = [None] * n
    for i, b in zip(np.flatnonzero(ok), best, strict=True):
        labels[i] = names[b]
    id_col = chunk.column("id")
    schema = output_schema(names, id_col.type)
    cols: list[Any] = [chunk.column(ROW), id_col, pa.array(labels, type=pa.string())]
    cols += [pa.array(probs[:, c], mask=~ok) for c in range(len(names))]
    cols += [pa.array([model_name or predictor.name] * n, type=pa.string()), pa.array(reasons, type=pa.string())]
    return pa.Table.from_arrays(cols, schema=schema)


# One predictor per worker process, built by _worker_init (a model is loaded once per process).
_WORKER: dict[str, Any] = {}


def _limit_threads(threads: int) -> None:
    for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
        os.environ[var] = str(threads)


def _worker_init(entry: ModelEntry, threads: int, teacher_precision: Precision = "fp32") -> None:
    _limit_threads(threads)
    if entry.runtime == "torch":
        import torch

        torch.set_num_threads(threads)
    _WORKER["predictor"] = make_predictor(entry, threads, teacher_precision)
    # Wall-clock time the model became ready (time.time: comparable across this machine's
    # processes): the job's start-up ends at the first worker's.
    _WORKER["ready"] = time.time()


def _worker_predict(chunk: pa.Table, batch_size: int, sort: bool) -> tuple[pa.Table, float]:
    return predict_chunk(_WORKER["predictor"], chunk, batch_size, sort), _WORKER["ready"]


# --------------------------------------------------------------------------- engines


class Progress:
    """Rows done, rows/s and time left on the console (kdutils.progress); the start-up time."""

    def __init__(self, total: int, file: IO[str] | None, quiet: bool) -> None:
        self.bar = bar(total=total, unit=" rows", unit_scale=True, desc="predict", file=file,
                       mininterval=1.0, smoothing=0.1, disable=quiet)
        self.t0 = time.time()
        self.ready: float | None = None  # the first worker's model-ready time (time.time)
        self.t_last = self.t0
        self.rows = 0

    def add(self, rows: int, ready: float) -> None:
        """Count ``rows`` done by a worker whose model was ready at ``ready`` (time.time)."""
        self.ready = ready if self.ready is None else min(self.ready, ready)
        self.rows += rows
        self.t_last = time.time()
        self.bar.update(rows)

    def close(self) -> None:
        """Close the bar (its total raised to the rows counted, if more)."""
        if self.bar.total is not None and self.bar.n > self.bar.total:
            self.bar.total = self.bar.n
        self.bar.close()


def run_local(entry: ModelEntry, chunks: Iterator[tuple[int, pa.Table]], write: Callable[[int, pa.Table, float], None],
              workers: int, threads: int, batch_size: int, sort: bool, pool: str,
              teacher_precision: Precision = "fp32") -> None:
    """The local engine: ``write(k, table, ready)`` for every chunk, predicted in this process
    (``workers=1``) or by ``workers`` spawned processes (``pool="process"``) or threads, each model on
    ``threads`` threads (an eager teacher in ``teacher_precision``)."""
    if workers == 1:
        _worker_init(entry, threads, teacher_precision)
        for k, chunk in chunks:
            write(k, *_worker_predict(chunk, batch_size, sort))
        return
    import concurrent.futures as cf
    import multiprocessing as mp

    if pool == "thread":
        # One predictor shared by the threads (predictors are thread-safe); the GIL is released
        # inside onnxruntime and torch, not while tokenizing.
        _worker_init(entry, threads, teacher_precision)
        executor: cf.Executor = cf.ThreadPoolExecutor(workers)
    else:
        # spawn, not fork: this process already runs pyarrow's reader threads.
        executor = cf.ProcessPoolExecutor(workers, mp_context=mp.get_context("spawn"),
                                          initializer=_worker_init, initargs=(entry, threads, teacher_precision))
    pending: dict[cf.Future, int] = {}
    try:
        with executor:
            for k, chunk in chunks:
                pending[executor.submit(_worker_predict, chunk, batch_size, sort)] = k
                # Two chunks in flight per worker: workers never wait, memory stays bounded.
                while len(pending) >= 2 * workers:
                    done, _ = cf.wait(pending, return_when=cf.FIRST_COMPLETED)
                    for fut in done:
                        write(pending.pop(fut), *fut.result())
            for fut in cf.as_completed(list(pending)):
                write(pending.pop(fut), *fut.result())
    except BaseException:
        for fut in pending:
            fut.cancel()
        raise


class _RayChunkPredictor:
    """A Ray Data actor: the model is loaded once per actor (ONNX sessions cannot be pickled)."""

    def __init__(self, entry: ModelEntry, threads: int, batch_size: int, sort: bool, chunk_rows: int,
                 teacher_precision: Precision = "fp32") -> None:
        _worker_init(entry, threads, teacher_precision)
        self.batch_size, self.sort, self.chunk_rows = batch_size, sort, chunk_rows

    def __call__(self, batch: pa.Table) -> pa.Table:
        # A batch is normally one staged chunk; split by chunk anyway so that the sorted batches
        # (and so the floating-point results) are exactly those of the local engine.
        chunk_of = batch.column(ROW).to_numpy() // self.chunk_rows
        out = []
        for k in np.unique(chunk_of):
            part = batch.filter(pa.array(chunk_of == k))
            out.append(predict_chunk(_WORKER["predictor"], part, self.batch_size, self.sort))
        table = pa.concat_tables(out)
        return table.append_column(_READY, pa.array(np.full(table.num_rows, _WORKER["ready"])))


def import_ray() -> Any:
    """The ``ray`` module (with Ray Data); :class:`PredictInputError` naming the extra when missing."""
    try:
        return ray_cluster.import_ray()
    except RayMissing:
        raise PredictInputError(RAY_INSTALL_HINT) from None


def run_ray(entry: ModelEntry, chunks: Iterator[tuple[int, pa.Table]], write: Callable[[int, pa.Table, float], None],
            work: Path, workers: int, threads: int, batch_size: int, sort: bool, chunk_rows: int,
            address: str | None, teacher_precision: Precision = "fp32") -> None:
    """The Ray engine: the chunks staged as Parquet under ``work``, predicted by ``workers`` Ray Data
    actors, ``write(k, table, ready)`` called on the driver once a chunk's rows are all back.
    Starts (and shuts down) a local Ray unless Ray is running or ``address`` names a cluster
    (:func:`kdutils.inference.ray_cluster.ray_session`)."""
    import_ray()  # without Ray, one line before anything is staged

    # Stage the chunks still to do: the driver's reader numbers the rows and judges bad rows exactly
    # as the local engine does, and each staged file is one chunk, read back by Ray Data.
    stage = work / "stage"
    shutil.rmtree(stage, ignore_errors=True)
    stage.mkdir(parents=True)
    sizes: dict[int, int] = {}
    for k, chunk in chunks:
        pq.write_table(chunk, stage / f"in-{k:06d}.parquet")
        sizes[k] = chunk.num_rows
    if not sizes:
        return
    try:
        with ray_session(address) as ray:
            _predict_staged(ray, entry, stage, sizes, write, workers, threads, batch_size, sort, chunk_rows,
                            teacher_precision)
    finally:
        shutil.rmtree(stage, ignore_errors=True)


def _predict_staged(ray: Any, entry: ModelEntry, stage: Path, sizes: dict[int, int],
                    write: Callable[[int, pa.Table, float], None], workers: int, threads: int, batch_size: int,
                    sort: bool, chunk_rows: int, teacher_precision: Precision = "fp32") -> None:
    """Predict the chunks staged in ``stage`` on a Ray Data actor pool of ``workers`` actors and
    ``write`` each chunk's part on the driver (``sizes``: rows per chunk number)."""
    # One block per staged chunk: left to itself Ray Data merged the small files into one read
    # task, one input for the whole actor pool, so a single actor did all the work.
    # (The folder, not a list of files: with a list, Ray 2.60 resolved each path through
    # fsspec's HTTP filesystem, which failed to import here.)
    ds = ray.data.read_parquet(str(stage), file_extensions=["parquet"], override_num_blocks=len(sizes))
    predicted = ds.map_batches(
        _RayChunkPredictor, batch_size=None, batch_format="pyarrow",
        compute=ray.data.ActorPoolStrategy(size=workers), num_cpus=ACTOR_CPUS,
        fn_constructor_kwargs={"entry": entry, "threads": threads, "batch_size": batch_size,
                               "sort": sort, "chunk_rows": chunk_rows, "teacher_precision": teacher_precision})
    # Results arrive in any order (preserve_order is off): gather each chunk's rows by row
    # number and write its part once all of them are in.
    gathered: dict[int, list[pa.Table]] = {}
    counts: dict[int, int] = {}
    for batch in predicted.iter_batches(batch_size=None, batch_format="pyarrow"):
        chunk_of = batch.column(ROW).to_numpy() // chunk_rows
        for k in np.unique(chunk_of):
            k = int(k)
            part = batch.filter(pa.array(chunk_of == k))
            gathered.setdefault(k, []).append(part)
            counts[k] = counts.get(k, 0) + part.num_rows
            if counts[k] == sizes[k]:
                table = pa.concat_tables(gathered.pop(k))
                ready = float(pc.min(table.column(_READY)).as_py())
                table = table.drop_columns([_READY])
                write(k, table.take(pc.sort_indices(table, [(ROW, "ascending")])), ready)
