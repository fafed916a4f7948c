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

Model names are those the server accepts (:func:`kdutils.inference.predictors.find_entry`).
"""

from __future__ import annotations

import glob as globlib
import json
import os
import re
import shutil
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import IO, Any, Literal

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from kdutils.inference.predictors import (
    EmptyTextError,
    ModelEntry,
    ModelNotFound,
    Predictor,
    find_entry,
    make_predictor,
)
from kdutils.metrics import softmax
from kdutils.progress import bar
from kdutils.study.files import atomic_path, read_json, write_json

# pyarrow.csv, pyarrow.dataset and ray are imported where a file of that kind or that engine is used.

DEFAULT_MODEL = "student_distilled@onnx"
# 64: on the ONNX BiLSTM student, sorted batches of 256 and 1,024 were slower than 64 (issue 22's
# probe; see bench_batch_predict for this machine's figures).
BATCH_SIZE = 64
# Rows per chunk: the unit of streaming, of a part file and of resuming. Large enough that sorting
# by length inside it leaves little padding; small enough that a killed job loses seconds.
CHUNK_ROWS = 4096
INPUT_FORMATS = {".csv": "csv", ".parquet": "parquet", ".pq": "parquet",
                 ".jsonl": "jsonl", ".ndjson": "jsonl", ".json": "jsonl"}
OUTPUT_FORMATS = INPUT_FORMATS
REASONS = ("missing", "not text", "empty", "whitespace only", "no tokens")
ROW = "_row"  # the row number, kept in part files for joining and dropped from the output
_READY = "_ready"  # a Ray actor's model-ready time, carried back with its results
_PART = re.compile(r"^part-(\d{6})\.parquet$")
# Ray actors ask for half a CPU: on a 2-core machine two actors of one CPU each hold both CPUs and
# Ray Data's read task never gets one (seen: the job hangs); the model runs one thread regardless.
RAY_ACTOR_CPUS = 0.5
RAY_INSTALL_HINT = ("--engine ray needs Ray: pip install -e '.[ray]' (pinned ray[data]; make setup "
                    "installs it)")


class PredictInputError(ValueError):
    """A bad input, model name, output path or flag combination; the message is one line."""


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
        bad = sum(self.bad.values())
        why = ", ".join(f"{r} {n}" for r, n in self.bad.items() if n)
        rate = self.rows / self.seconds if self.seconds > 0 else 0.0
        return (f"{self.rows:,} rows -> {self.output} ({self.model}, {self.engine} x{self.workers}): "
                f"{self.predicted:,} predicted, {bad:,} without a prediction" + (f" ({why})" if why else "")
                + f"; {self.seconds:.1f} s, {rate:,.0f} rows/s")


# --------------------------------------------------------------------------- input


def format_of(path: Path, formats: dict[str, str], what: str) -> str:
    """``csv``, ``parquet`` or ``jsonl`` from a file name's extension; PredictInputError otherwise."""
    kind = formats.get(path.suffix.lower())
    if kind is None:
        raise PredictInputError(f"{what} {path}: unknown extension {path.suffix!r}; "
                                f"expected one of {', '.join(sorted(formats))}")
    return kind


def list_inputs(spec: str | Path) -> list[Path]:
    """The input files of a file, a folder (every CSV/Parquet/JSONL file under it) or a glob, sorted.

    Raises PredictInputError when nothing matches or a named file has an unknown extension.
    """
    spec = str(spec)
    path = Path(spec)
    if path.is_dir():
        files = sorted(p for p in path.rglob("*") if p.is_file() and p.suffix.lower() in INPUT_FORMATS
                       and not any(part.startswith(".") for part in p.relative_to(path).parts))
        if not files:
            raise PredictInputError(f"input folder {path} holds no {'/'.join(sorted(INPUT_FORMATS))} files")
        return files
    if path.is_file():
        format_of(path, INPUT_FORMATS, "input")
        return [path]
    if globlib.has_magic(spec):
        files = sorted(Path(p) for p in globlib.glob(spec, recursive=True)
                       if Path(p).is_file() and Path(p).suffix.lower() in INPUT_FORMATS)
        if not files:
            raise PredictInputError(f"input glob {spec!r} matches no CSV, Parquet or JSONL file")
        return files
    raise PredictInputError(f"input {spec}: no such file or folder")


def _classify(texts: Sequence[Any]) -> list[str | None]:
    """The bad-row reason of each value (None: a text to predict); the model's check comes later."""
    out: list[str | None] = []
    for t in texts:
        if t is None:
            out.append("missing")
        elif not isinstance(t, str):
            out.append("not text")
        elif not t:
            out.append("empty")
        elif not t.strip():
            out.append("whitespace only")
        else:
            out.append(None)
    return out


def _unreadable(path: Path, err: BaseException) -> PredictInputError:
    detail = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
    return PredictInputError(f"cannot read {path}: {detail}")


def _missing_column(path: Path, column: str, flag: str, available: Sequence[str]) -> PredictInputError:
    return PredictInputError(f"{path}: no column {column!r} ({flag}); available: {', '.join(map(str, available))}")


def _parquet_batches(path: Path, text_col: str, id_col: str | None) -> Iterator[tuple[list, list | None]]:
    import pyarrow.dataset as ds

    try:
        dataset = ds.dataset(str(path), format="parquet")
    except (pa.ArrowException, OSError) as err:
        raise _unreadable(path, err) from None
    columns = [text_col] + ([id_col] if id_col else [])
    for batch in dataset.to_batches(columns=columns, batch_size=CHUNK_ROWS):
        yield batch.column(0).to_pylist(), (batch.column(1).to_pylist() if id_col else None)


def _csv_batches(path: Path, text_col: str, id_col: str | None) -> Iterator[tuple[list, list | None]]:
    import pyarrow.csv as pcsv

    columns = [text_col] + ([id_col] if id_col else [])
    # Every CSV cell is text: typing the columns as strings keeps "007" and "1e3" as written, and
    # a type guessed from the first block cannot fail on a later one.
    convert = pcsv.ConvertOptions(include_columns=columns, column_types=dict.fromkeys(columns, pa.string()),
                                  strings_can_be_null=False, quoted_strings_can_be_null=False)
    with open(path, "rb") as f:
        reader = pcsv.open_csv(f, convert_options=convert)
        for batch in reader:
            texts = batch.column(text_col).to_pylist()
            yield texts, (batch.column(id_col).to_pylist() if id_col else None)


def _jsonl_batches(path: Path, text_col: str, id_col: str | None) -> Iterator[tuple[list, list | None]]:
    texts: list = []
    ids: list = []
    try:
        f = open(path, encoding="utf-8")  # noqa: SIM115 - closed below, lines stream out of it
    except OSError as err:
        raise _unreadable(path, err) from None
    with f:
        for lineno, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                obj = json.loads(line)
            except json.JSONDecodeError as err:
                raise PredictInputError(f"cannot read {path}: line {lineno} is not JSON ({err.msg})") from None
            if not isinstance(obj, dict):
                raise PredictInputError(f"cannot read {path}: line {lineno} is not a JSON object")
            texts.append(obj.get(text_col))
            if id_col:
                v = obj.get(id_col)
                ids.append(v if v is None or isinstance(v, str) else json.dumps(v))
            if len(texts) >= CHUNK_ROWS:
                yield texts, (ids if id_col else None)
                texts, ids = [], []
    if texts:
        yield texts, (ids if id_col else None)


def _columns(path: Path) -> list[str]:
    """The column names of one input file; for JSONL, the keys of its first object."""
    kind = format_of(path, INPUT_FORMATS, "input")
    try:
        if kind == "parquet":
            return list(pq.read_schema(path).names)
        if kind == "csv":
            import pyarrow.csv as pcsv

            with open(path, "rb") as f:
                return list(pcsv.open_csv(f).schema.names)
        with open(path, encoding="utf-8") as f:
            for line in f:
                if line.strip():
                    obj = json.loads(line)
                    if not isinstance(obj, dict):
                        raise PredictInputError(f"cannot read {path}: its first line is not a JSON object")
                    return list(obj)
        return []
    except (pa.ArrowException, OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise _unreadable(path, err) from None


def check_columns(files: Sequence[Path], text_column: str, id_column: str | None) -> None:
    """Raise PredictInputError naming the first file that lacks a column, and the columns it has.

    A JSONL file's first object names its columns: a key missing from a later one is a bad row.
    """
    for path in files:
        names = _columns(path)
        for col, flag in ((text_column, "--text-column"), (id_column, "--id-column")):
            if col is not None and col not in names:
                raise _missing_column(path, col, flag, names)


_READERS: dict[str, Callable[[Path, str, str | None], Iterator[tuple[list, list | None]]]] = {
    "parquet": _parquet_batches, "csv": _csv_batches, "jsonl": _jsonl_batches}


def _id_type(files: Sequence[Path], id_col: str | None) -> pa.DataType:
    """The output's id type: the row number's, Parquet's own column type, or text (CSV and JSONL)."""
    if id_col is None:
        return pa.int64()
    first = files[0]
    if format_of(first, INPUT_FORMATS, "input") == "parquet":
        try:
            schema = pq.read_schema(first)
        except (pa.ArrowException, OSError) as err:
            raise _unreadable(first, err) from None
        if id_col in schema.names:
            return schema.field(id_col).type
    return pa.string()


def iter_chunks(files: Sequence[Path], text_column: str, id_column: str | None = None,
                chunk_rows: int = CHUNK_ROWS) -> Iterator[pa.Table]:
    """The input as tables of exactly ``chunk_rows`` rows (the last may be shorter), in input order.

    Columns: ``_row`` (int64, the row number across all files), ``id`` (the id column's values, else
    the row number), ``text`` (string, null where the value is not text) and ``reason`` (string,
    null for a text to predict). Raises PredictInputError on a missing column or an unreadable file
    (also one found unreadable part-way through).
    """
    id_type = _id_type(files, id_column)
    row = 0
    texts: list = []
    ids: list = []

    def emit() -> pa.Table:
        nonlocal texts, ids, row
        n = len(texts)
        reasons = _classify(texts)
        rows = np.arange(row, row + n, dtype=np.int64)
        try:
            id_arr = pa.array(ids, type=id_type) if id_column else pa.array(rows)
        except (pa.ArrowException, TypeError, ValueError) as err:
            raise PredictInputError(f"--id-column {id_column!r}: values do not share one type ({err})") from None
        table = pa.table({ROW: pa.array(rows), "id": id_arr,
                          "text": pa.array([t if r is None else None for t, r in zip(texts, reasons, strict=True)],
                                           type=pa.string()),
                          "reason": pa.array(reasons, type=pa.string())})
        row += n
        texts, ids = [], []
        return table

    for path in files:
        reader = _READERS[format_of(path, INPUT_FORMATS, "input")]
        try:
            for batch_texts, batch_ids in reader(path, text_column, id_column):
                start = 0
                while start < len(batch_texts):
                    take = min(chunk_rows - len(texts), len(batch_texts) - start)
                    texts.extend(batch_texts[start:start + take])
                    if id_column:
                        ids.extend(batch_ids[start:start + take])  # type: ignore[index]
                    start += take
                    if len(texts) == chunk_rows:
                        yield emit()
        except PredictInputError:
            raise
        except (pa.ArrowException, OSError, UnicodeDecodeError) as err:
            raise _unreadable(path, err) from None
    if texts:
        yield emit()


def count_rows(files: Sequence[Path]) -> int:
    """The number of rows, exact for Parquet (its metadata), estimated for CSV and JSONL (their
    newlines, counted in blocks): the progress bar's total."""
    total = 0
    for path in files:
        kind = format_of(path, INPUT_FORMATS, "input")
        try:
            if kind == "parquet":
                total += pq.ParquetFile(path).metadata.num_rows
                continue
            with open(path, "rb") as f:
                lines = sum(block.count(b"\n") for block in iter(lambda f=f: f.read(1 << 22), b""))
        except (pa.ArrowException, OSError) as err:
            raise _unreadable(path, err) from None
        total += max(0, lines - (1 if kind == "csv" else 0))
    return total


# --------------------------------------------------------------------------- prediction


def output_schema(label_names: Sequence[str], id_type: pa.DataType | None = None, row: bool = True) -> pa.Schema:
    """The output columns (with ``_row`` first in part files): id (``id_type``, default int64: the row
    number), label, one prob_<label> per class, model, reason."""
    id_type = pa.int64() if id_type is None else id_type
    fields = [pa.field(ROW, pa.int64())] if row else []
    fields += [pa.field("id", id_type), pa.field("label", pa.string())]
    fields += [pa.field(f"prob_{n}", pa.float64()) for n in label_names]
    fields += [pa.field("model", pa.string()), pa.field("reason", pa.string())]
    return pa.schema(fields)


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


def _worker_init(entry: ModelEntry, threads: int) -> None:
    _limit_threads(threads)
    if entry.runtime == "torch":
        import torch

        torch.set_num_threads(threads)
    _WORKER["predictor"] = make_predictor(entry, threads)
    # Wall-clock time the model became ready (time.time: comparable across this machine's
    # processes): the job's start-up ends at the first worker's.
    _WORKER["ready"] = time.time()


def _worker_predict(chunk: pa.Table, batch_size: int, sort: bool) -> tuple[pa.Table, float]:
    return predict_chunk(_WORKER["predictor"], chunk, batch_size, sort), _WORKER["ready"]


# --------------------------------------------------------------------------- parts and output


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


def parts_dir(output: Path) -> Path:
    """The hidden folder of a job's part files: ``.<output name>.parts`` beside the output."""
    return output.with_name(f".{output.name}.parts")


def _part_path(work: Path, k: int) -> Path:
    return work / f"part-{k:06d}.parquet"


def _done_parts(work: Path) -> set[int]:
    if not work.is_dir():
        return set()
    return {int(m.group(1)) for p in work.iterdir() if (m := _PART.match(p.name))}


def _write_part(work: Path, k: int, table: pa.Table) -> None:
    with atomic_path(_part_path(work, k)) as tmp:
        pq.write_table(table, tmp)


def _assemble(work: Path, n_chunks: int, output: Path, schema: pa.Schema) -> None:
    """Concatenate the parts, in chunk order and without ``_row``, into ``output`` atomically."""
    kind = format_of(output, OUTPUT_FORMATS, "output")
    with atomic_path(output) as tmp:
        if kind == "parquet":
            with pq.ParquetWriter(tmp, schema) as writer:
                for k in range(n_chunks):
                    writer.write_table(pq.read_table(_part_path(work, k)).drop_columns([ROW]))
        elif kind == "csv":
            import pyarrow.csv as pcsv

            with pcsv.CSVWriter(str(tmp), schema) as writer:
                for k in range(n_chunks):
                    writer.write_table(pq.read_table(_part_path(work, k)).drop_columns([ROW]))
        else:
            with open(tmp, "w", encoding="utf-8") as f:
                for k in range(n_chunks):
                    for rec in pq.read_table(_part_path(work, k)).drop_columns([ROW]).to_pylist():
                        f.write(json.dumps(rec, ensure_ascii=False) + "\n")


# --------------------------------------------------------------------------- engines


class _Progress:
    """Rows done, rows/s and time left on the console (kdutils.progress); the start-up time."""

    def __init__(self, total: int, file: IO[str] | None, quiet: bool) -> None:
        self.bar = bar(total=total, unit=" rows", unit_scale=True, desc="predict", file=file,
                       mininterval=1.0, smoothing=0.1, disable=quiet)
        self.t0 = time.time()
        self.ready: float | None = None  # the first worker's model-ready time (time.time)
        self.t_last = self.t0
        self.rows = 0

    def add(self, rows: int, ready: float) -> None:
        self.ready = ready if self.ready is None else min(self.ready, ready)
        self.rows += rows
        self.t_last = time.time()
        self.bar.update(rows)

    def close(self) -> None:
        if self.bar.total is not None and self.bar.n > self.bar.total:
            self.bar.total = self.bar.n
        self.bar.close()


def _run_local(entry: ModelEntry, chunks: Iterator[tuple[int, pa.Table]], write: Callable[[int, pa.Table, float], None],
               workers: int, threads: int, batch_size: int, sort: bool, pool: str) -> None:
    if workers == 1:
        _worker_init(entry, threads)
        for k, chunk in chunks:
            write(k, *_worker_predict(chunk, batch_size, sort))
        return
    import concurrent.futures as cf
    import multiprocessing as mp

    if pool == "thread":
        # One predictor shared by the threads (predictors are thread-safe); the GIL is released
        # inside onnxruntime and torch, not while tokenizing.
        _worker_init(entry, threads)
        executor: cf.Executor = cf.ThreadPoolExecutor(workers)
    else:
        # spawn, not fork: this process already runs pyarrow's reader threads.
        executor = cf.ProcessPoolExecutor(workers, mp_context=mp.get_context("spawn"),
                                          initializer=_worker_init, initargs=(entry, threads))
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

    def __init__(self, entry: ModelEntry, threads: int, batch_size: int, sort: bool, chunk_rows: int) -> None:
        _worker_init(entry, threads)
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


def _import_ray() -> Any:
    try:
        import ray
        import ray.data  # noqa: F401 - the [data] extra
    except ImportError:
        raise PredictInputError(RAY_INSTALL_HINT) from None
    return ray


def _run_ray(entry: ModelEntry, chunks: Iterator[tuple[int, pa.Table]], write: Callable[[int, pa.Table, float], None],
             work: Path, workers: int, threads: int, batch_size: int, sort: bool, chunk_rows: int,
             address: str | None) -> None:
    ray = _import_ray()

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
    started_here = not ray.is_initialized()
    if started_here:
        # Without an address Ray starts a cluster of this machine alone: keep it on loopback.
        local = {} if address else {"_node_ip_address": "127.0.0.1"}
        ray.init(address=address, include_dashboard=False, log_to_driver=False, logging_level="ERROR", **local)
    try:
        ctx = ray.data.DataContext.get_current()
        ctx.enable_progress_bars = False
        ctx.print_on_execution_start = False
        # One block per staged chunk: left to itself Ray Data merged the small files into one read
        # task, one input for the whole actor pool, so a single actor did all the work.
        # (The folder, not a list of files: with a list, Ray 2.60 resolved each path through
        # fsspec's HTTP filesystem, which failed to import here.)
        ds = ray.data.read_parquet(str(stage), file_extensions=["parquet"], override_num_blocks=len(sizes))
        predicted = ds.map_batches(
            _RayChunkPredictor, batch_size=None, batch_format="pyarrow",
            compute=ray.data.ActorPoolStrategy(size=workers), num_cpus=RAY_ACTOR_CPUS,
            fn_constructor_kwargs={"entry": entry, "threads": threads, "batch_size": batch_size,
                                   "sort": sort, "chunk_rows": chunk_rows})
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
    finally:
        if started_here:
            ray.shutdown()
        shutil.rmtree(stage, ignore_errors=True)


# --------------------------------------------------------------------------- the job


def predict_file(run: str | Path, input: str | Path, output: str | Path, *, model: str = DEFAULT_MODEL,
                 text_column: str = "text", id_column: str | None = None,
                 engine: Literal["local", "ray"] = "local", address: str | None = None,
                 resume: bool = False, overwrite: bool = False, batch_size: int = BATCH_SIZE,
                 workers: int | None = None, sort: bool = True, chunk_rows: int = CHUNK_ROWS,
                 pool: Literal["process", "thread"] = "process", progress: IO[str] | None = None,
                 quiet: bool = False) -> PredictResult:
    """Predict every row of ``input`` with one model of the run ``run`` and write ``output``.

    ``input``: a CSV, Parquet or JSONL file, a folder or a glob (:func:`list_inputs`);
    ``output``: ``.parquet``, ``.csv`` or ``.jsonl`` (:func:`output_schema` columns, input order).
    ``model``: a name the server accepts (``student_distilled@onnx``, ``teacher``, ``teacher@onnx`` ...).
    ``workers``: local processes (or ``pool="thread"`` threads), or Ray actors; default: this
    machine's cores (local) or 2 (ray). Each runs the model on ``cores // workers`` threads (at least 1).
    ``batch_size``: texts per model call; ``sort``: sort a chunk's texts by length first;
    ``chunk_rows``: rows per chunk (streaming, parts, resume). ``progress``: the stream of the
    progress bar (None: the console, or one updatable output in a notebook); ``quiet``: no bar.

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
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    workers = workers if workers is not None else (cores if engine == "local" else 2)
    for name, value in (("--batch-size", batch_size), ("--workers", workers), ("chunk_rows", chunk_rows)):
        if value < 1:
            raise PredictInputError(f"{name} must be at least 1, got {value}")
    threads = max(1, cores // workers) if engine == "local" else 1
    output = Path(output)
    format_of(output, OUTPUT_FORMATS, "output")
    if engine == "ray":
        _import_ray()
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
               chunk_rows, batch_size, sort)
    job_file = work / "job.json"
    if work.exists() and job_file.exists():
        if read_json(job_file) != json.loads(json.dumps(asdict(job))):
            raise PredictInputError(f"the parts in {work} were made from other inputs, model or settings: "
                                    "pass --overwrite to start again")
    work.mkdir(parents=True, exist_ok=True)
    write_json(job_file, asdict(job))

    done = _done_parts(work)
    result.resumed_chunks = len(done)
    id_type = _id_type(files, id_column)
    schema = output_schema(entry.label_names, id_type)
    total = count_rows(files)
    prog = _Progress(total, progress, quiet)

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
        _write_part(work, k, table.cast(schema))
        prog.add(table.num_rows, ready)

    try:
        if engine == "local":
            _run_local(entry, todo(), write, workers, threads, batch_size, sort, pool)
        else:
            _run_ray(entry, todo(), write, work, workers, threads, batch_size, sort, chunk_rows, address)
    except BaseException:
        if not _done_parts(work):
            shutil.rmtree(work, ignore_errors=True)  # nothing to resume: leave no folder in the way
        raise
    finally:
        prog.close()
    missing = set(range(n_chunks)) - _done_parts(work)
    if missing:
        raise RuntimeError(f"chunks {sorted(missing)[:5]} produced no part file")  # an engine bug, not an input
    for k in range(n_chunks):
        meta = pq.read_table(_part_path(work, k), columns=["reason"]).column("reason")
        result.rows += len(meta)
        for reason, count in zip(*np.unique(np.asarray(meta.fill_null("").to_pylist(), dtype=object),
                                            return_counts=True), strict=True):
            if reason:
                bad[reason] = bad.get(reason, 0) + int(count)
    _assemble(work, n_chunks, output, output_schema(entry.label_names, id_type, row=False))
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


# --------------------------------------------------------------------------- benchmark

_SENTENCE_END = re.compile(r"(?<=[.!?])\s+")
_HTML_BREAK = re.compile(r"<br\s*/?>", re.IGNORECASE)


def write_sentence_corpus(texts: Sequence[str], path: str | Path, n_sentences: int = 60_000) -> Path:
    """Cut reviews into sentences (``<br />`` tags dropped, split after ``.``, ``!`` or ``?``) and write
    the first ``n_sentences`` of them, in review order, as Parquet (column ``text``); returns ``path``.

    For the study's benchmark the reviews are the IMDB train reviews
    (``kdutils.data.unlabelled_texts("rotten_tomatoes")``), which no notebook tests on. Raises
    ValueError when the reviews hold fewer sentences.
    """
    out: list[str] = []
    for review in texts:
        for sentence in _SENTENCE_END.split(_HTML_BREAK.sub(" ", review)):
            if sentence.strip():
                out.append(sentence.strip())
        if len(out) >= n_sentences:
            break
    if len(out) < n_sentences:
        raise ValueError(f"the reviews hold {len(out)} sentences, fewer than {n_sentences}")
    path = Path(path)
    with atomic_path(path) as tmp:
        pq.write_table(pa.table({"text": out[:n_sentences]}), tmp)
    return path


def bench_batch_predict(run: str | Path, corpus: str | Path, work_dir: str | Path,
                        configs: Sequence[dict[str, Any]], model: str = DEFAULT_MODEL, rounds: int = 1,
                        ) -> list[dict[str, Any]]:
    """Time :func:`predict_file`, file to file, once per config per round, configs interleaved in each
    round (a machine that gets busier slows every config alike).

    ``configs``: keyword arguments of :func:`predict_file` (``engine``, ``workers``, ``batch_size``,
    ``sort``, ``pool`` ...), each with a ``name``. Ray is started once, before the first Ray config,
    and that start is reported as ``ray_init_s`` on each Ray row; a job's own start-up (worker
    processes or actors, model loading, the first chunk) is ``startup_s``. Returns one dict per run:
    ``name``, ``round``, ``rows``, ``seconds`` (wall, whole job), ``rows_per_s`` (whole job),
    ``steady_rows_per_s`` (start-up excluded), ``startup_s``, ``ray_init_s``.
    """
    work = Path(work_dir)
    work.mkdir(parents=True, exist_ok=True)
    ray_init_s: float | None = None
    started_ray = False
    rows: list[dict[str, Any]] = []
    try:
        for r in range(rounds):
            for cfg in configs:
                kw = dict(cfg)
                name = kw.pop("name")
                if kw.get("engine") == "ray" and ray_init_s is None:
                    ray = _import_ray()
                    t = time.perf_counter()
                    if not ray.is_initialized():
                        ray.init(address=kw.get("address"), include_dashboard=False, log_to_driver=False,
                                 logging_level="ERROR", **({} if kw.get("address") else {"_node_ip_address": "127.0.0.1"}))
                        started_ray = True
                    ray_init_s = time.perf_counter() - t
                res = predict_file(run, corpus, work / f"{name}.parquet", model=model, overwrite=True, quiet=True, **kw)
                rows.append({"name": name, "round": r, "rows": res.rows, "seconds": res.seconds,
                             "rows_per_s": res.rows / res.seconds, "steady_rows_per_s": res.steady_rows_per_s,
                             "startup_s": res.startup_s,
                             "ray_init_s": ray_init_s if kw.get("engine") == "ray" else None})
    finally:
        if started_ray:
            _import_ray().shutdown()
    return rows
