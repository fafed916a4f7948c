"""Batch prediction: files of texts in, one file of predictions out, on one machine or a Ray cluster.

:func:`predict_file` is the library function behind ``python -m kdutils.predict``.

* **Input**: CSV, Parquet or JSONL (``.jsonl``, ``.ndjson``, ``.json`` read as one object per line),
  given as a file, a glob or a folder (every such file under it, in sorted path order). Rows are
  numbered from 0 across the files in that order.
* **Streaming**: the input is read in chunks of ``chunk_rows`` rows (Parquet through
  ``pyarrow.dataset`` batches, CSV through ``pyarrow.csv.open_csv``, JSONL line by line), so
  memory stays bounded whatever the input's size. Inside a chunk the texts run in batches
  sorted by length (less padding); each chunk's rows go back to their input order.
* **Output**: Parquet, or CSV / JSONL by the output's extension, with the columns ``id`` (the
  ``id_column``'s value, else the row number), ``label`` (predicted label name), one ``prob_<label>``
  column per class, ``model`` and ``reason`` (why a row got no prediction; empty otherwise).
* **Bad rows** (missing, not text, empty, whitespace only, no tokens for the model's own
  tokenizer) keep their place with no label, no probabilities and a reason; they are counted.
* **Resume and atomicity**: each finished chunk is a numbered part file in a hidden folder beside
  the output (``.<output name>.parts/``). The output is assembled from the parts into a temporary
  file and renamed into place, so the final name never holds a half-written file; a killed job
  rerun with ``resume=True`` predicts only the chunks it has no part for and gives the same bytes.
* **Engines**: ``local`` runs in this process (``workers=1``) or in worker processes, each loading
  the model once; ``ray`` runs on Ray Data (the chunks staged as Parquet in the hidden folder,
  ``read_parquet``, ``map_batches`` on an actor pool that loads the model once per actor, results
  joined back to chunks by row number on the driver, which writes the parts). Both call the same
  :func:`predict_chunk`, so their predictions are identical.

The job is split by concern: :mod:`kdutils.inference.batch_io` reads the inputs and writes parts
and output, :mod:`kdutils.inference.batch_engines` predicts chunks locally or on Ray, and this
module runs a job (arguments, resume, assembly, the result).

Model names are those the server accepts (:func:`kdutils.inference.predictors.find_entry`).
"""

from __future__ import annotations

import json
import shutil
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import IO, Any, Literal

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from kdutils.host import cpu_count
from kdutils.inference.batch_engines import BATCH_SIZE, Progress, import_ray, run_local, run_ray
from kdutils.inference.batch_io import (
    CHUNK_ROWS,
    OUTPUT_FORMATS,
    REASONS,
    PredictInputError,
    assemble,
    check_columns,
    count_rows,
    done_parts,
    format_of,
    id_column_type,
    iter_chunks,
    list_inputs,
    output_schema,
    part_path,
    parts_dir,
    write_part,
)
from kdutils.inference.predictors import ModelNotFound, find_entry
from kdutils.machine import Precision
from kdutils.study.files import read_json, write_json

DEFAULT_MODEL = "student_distilled@onnx"


@dataclass
class PredictResult:
    """What a :func:`predict_file` call did.

    ``rows``: rows in the input; ``predicted``: rows with a prediction; ``bad``: rows without one, by
    reason; ``resumed_chunks``: chunks read back from a killed job's parts; ``seconds``: wall time
    of the call; ``startup_s``: from the call's start until the first worker (process, thread or
    Ray actor) had its model loaded (for Ray: staging the chunks and starting the actors, not a
    ``ray.init`` done before); ``steady_rows_per_s``: rows predicted by this call per second from
    then to the last part written (start-up excluded; None when nothing was predicted).
    """

    output: Path
    model: str
    engine: str
    workers: int
    rows: int = 0
    predicted: int = 0
    bad: dict[str, int] = field(default_factory=dict)
    chunks: int = 0
    resumed_chunks: int = 0
    seconds: float = 0.0
    startup_s: float = 0.0
    steady_rows_per_s: float | None = None

    def summary_line(self) -> str:
        """One line for the console: rows, output, model, engine, predictions, bad rows, time and rate."""
        bad = sum(self.bad.values())
        why = ", ".join(f"{r} {n}" for r, n in self.bad.items() if n)
        rate = self.rows / self.seconds if self.seconds > 0 else 0.0
        return (f"{self.rows:,} rows -> {self.output} ({self.model}, {self.engine} x{self.workers}): "
                f"{self.predicted:,} predicted, {bad:,} without a prediction" + (f" ({why})" if why else "")
                + f"; {self.seconds:.1f} s, {rate:,.0f} rows/s")


@dataclass(frozen=True)
class _Job:
    """What a set of part files was made from: a resume must match it."""

    inputs: list[list[Any]]  # [path, size, mtime_ns] per input file
    model: str
    model_weights: str
    text_column: str
    id_column: str | None
    chunk_rows: int
    batch_size: int
    sort: bool
    teacher_precision: str = "fp32"


# --------------------------------------------------------------------------- the job


def predict_file(run: str | Path, input: str | Path, output: str | Path, *, model: str = DEFAULT_MODEL,
                 text_column: str = "text", id_column: str | None = None,
                 engine: Literal["local", "ray"] = "local", address: str | None = None,
                 resume: bool = False, overwrite: bool = False, batch_size: int = BATCH_SIZE,
                 workers: int | None = None, sort: bool = True, chunk_rows: int = CHUNK_ROWS,
                 pool: Literal["process", "thread"] = "process", progress: IO[str] | None = None,
                 quiet: bool = False, teacher_precision: Precision = "fp32") -> PredictResult:
    """Predict every row of ``input`` with one model of the run ``run`` and write ``output``.

    ``input``: a CSV, Parquet or JSONL file, a folder or a glob (:func:`list_inputs`);
    ``output``: ``.parquet``, ``.csv`` or ``.jsonl`` (:func:`output_schema` columns, input order).
    ``model``: a name the server accepts (``student_distilled@onnx``, ``teacher``, ``teacher@onnx`` ...).
    ``workers``: local processes (or ``pool="thread"`` threads), or Ray actors; default: this
    machine's cores (local) or 2 (ray). Each runs the model on ``cores // workers`` threads (at least 1).
    ``batch_size``: texts per model call; ``sort``: sort a chunk's texts by length first;
    ``chunk_rows``: rows per chunk (streaming, parts, resume). ``progress``: the stream of the
    progress bar (None: the console, or one updatable output in a notebook); ``quiet``: no bar.
    ``teacher_precision``: the numeric mode of an eager teacher (resolved: ``fp32`` or ``bf16``
    autocast, :func:`kdutils.machine.resolve_precision`); other models ignore it.

    Returns a :class:`PredictResult`. Raises :class:`PredictInputError` (one-line message) for a
    missing column, an unreadable or unmatched input, an unknown model (naming the available
    ones), an existing output without ``resume``/``overwrite``, parts of an unfinished job without
    either, parts made with other settings, conflicting arguments, or Ray missing;
    ``PredictorError`` when the model itself fails. An interrupted call leaves its finished parts
    for ``resume=True``.
    """
    t0 = time.perf_counter()
    if resume and overwrite:
        raise PredictInputError("--resume and --overwrite exclude each other: resume continues the parts "
                                "of a killed job, overwrite starts again")
    if engine not in ("local", "ray"):
        raise PredictInputError(f"--engine {engine!r}: expected local or ray")
    if address is not None and engine != "ray":
        raise PredictInputError("--address needs --engine ray")
    if pool not in ("process", "thread"):
        raise PredictInputError(f"pool {pool!r}: expected process or thread")
    cores = cpu_count()
    workers = workers if workers is not None else (cores if engine == "local" else 2)
    for name, value in (("--batch-size", batch_size), ("--workers", workers), ("chunk_rows", chunk_rows)):
        if value < 1:
            raise PredictInputError(f"{name} must be at least 1, got {value}")
    threads = max(1, cores // workers) if engine == "local" else 1
    output = Path(output)
    format_of(output, OUTPUT_FORMATS, "output")
    if engine == "ray":
        import_ray()
    try:
        entry = find_entry(run, model)
    except ModelNotFound as err:
        raise PredictInputError(f"--model: {err.args[0]}") from None
    files = list_inputs(input)
    check_columns(files, text_column, id_column)
    if Path(output).resolve() in {f.resolve() for f in files}:
        raise PredictInputError(f"output {output} is also an input")

    work = parts_dir(output)
    if overwrite:
        shutil.rmtree(work, ignore_errors=True)
    elif output.exists() and not resume:
        raise PredictInputError(f"output {output} exists: pass --overwrite to replace it "
                                "(or --resume to finish a killed job)")
    elif work.exists() and not resume:
        raise PredictInputError(f"{work} holds the parts of an unfinished job: pass --resume to continue it "
                                "or --overwrite to start again")
    result = PredictResult(output, model, engine, workers)
    if resume and output.exists() and not work.exists():
        result.seconds = time.perf_counter() - t0
        return result  # finished before: nothing to do

    job = _Job([[str(f.resolve()), f.stat().st_size, f.stat().st_mtime_ns] for f in files], model,
               f"{entry.weights.stat().st_size}:{entry.weights.stat().st_mtime_ns}", text_column, id_column,
               chunk_rows, batch_size, sort, teacher_precision if entry.kind == "teacher" and entry.runtime == "torch" else "fp32")
    job_file = work / "job.json"
    if work.exists() and job_file.exists():
        if read_json(job_file) != json.loads(json.dumps(asdict(job))):
            raise PredictInputError(f"the parts in {work} were made from other inputs, model or settings: "
                                    "pass --overwrite to start again")
    work.mkdir(parents=True, exist_ok=True)
    write_json(job_file, asdict(job))

    done = done_parts(work)
    result.resumed_chunks = len(done)
    id_type = id_column_type(files, id_column)
    schema = output_schema(entry.label_names, id_type)
    total = count_rows(files)
    prog = Progress(total, progress, quiet)

    n_chunks = 0
    bad = dict.fromkeys(REASONS, 0)

    def todo() -> Iterator[tuple[int, pa.Table]]:
        nonlocal n_chunks
        for k, chunk in enumerate(iter_chunks(files, text_column, id_column, chunk_rows)):
            n_chunks = k + 1
            if k in done:
                prog.bar.update(chunk.num_rows)  # already predicted by the killed job
                continue
            yield k, chunk

    def write(k: int, table: pa.Table, ready: float) -> None:
        write_part(work, k, table.cast(schema))
        prog.add(table.num_rows, ready)

    try:
        if engine == "local":
            run_local(entry, todo(), write, workers, threads, batch_size, sort, pool, teacher_precision)
        else:
            run_ray(entry, todo(), write, work, workers, threads, batch_size, sort, chunk_rows, address,
                    teacher_precision)
    except BaseException:
        if not done_parts(work):
            shutil.rmtree(work, ignore_errors=True)  # nothing to resume: leave no folder in the way
        raise
    finally:
        prog.close()
    missing = set(range(n_chunks)) - done_parts(work)
    if missing:
        raise RuntimeError(f"chunks {sorted(missing)[:5]} produced no part file")  # an engine bug, not an input
    for k in range(n_chunks):
        meta = pq.read_table(part_path(work, k), columns=["reason"]).column("reason")
        result.rows += len(meta)
        for reason, count in zip(*np.unique(np.asarray(meta.fill_null("").to_pylist(), dtype=object),
                                            return_counts=True), strict=True):
            if reason:
                bad[reason] = bad.get(reason, 0) + int(count)
    assemble(work, n_chunks, output, output_schema(entry.label_names, id_type, row=False))
    shutil.rmtree(work, ignore_errors=True)
    result.chunks = n_chunks
    result.bad = bad
    result.predicted = result.rows - sum(bad.values())
    result.seconds = time.perf_counter() - t0
    if prog.ready is not None:
        result.startup_s = prog.ready - prog.t0
        if prog.t_last > prog.ready:
            result.steady_rows_per_s = prog.rows / (prog.t_last - prog.ready)
    return result
