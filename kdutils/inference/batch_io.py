"""Batch prediction's files: reading inputs in chunks, judging bad rows, part files and the output.

The reading and writing half of :mod:`kdutils.inference.batch` (the engines are
:mod:`kdutils.inference.batch_engines`):

* **Input**: CSV, Parquet or JSONL (``.jsonl``, ``.ndjson``, ``.json`` read as one object per line),
  given as a file, a glob or a folder (every such file under it, in sorted path order). Rows are
  numbered from 0 across the files in that order. :func:`iter_chunks` streams them in chunks of
  ``chunk_rows`` rows (Parquet through ``pyarrow.dataset`` batches, CSV through
  ``pyarrow.csv.open_csv``, JSONL line by line), so memory stays bounded whatever the input's size.
* **Bad rows** (missing, not text, empty, whitespace only) get a reason in :data:`REASONS`.
* **Parts and output**: each finished chunk is a numbered part file in a hidden folder beside the
  output (:func:`parts_dir`); :func:`assemble` concatenates them into the output atomically
  (:func:`output_schema` columns).
"""

from __future__ import annotations

import glob as globlib
import json
import re
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from kdutils.study.files import atomic_path

# pyarrow.csv and pyarrow.dataset are imported where a file of that kind is read.

# Rows per chunk: the unit of streaming, of a part file and of resuming. Large enough that sorting
# by length inside it leaves little padding; small enough that a killed job loses seconds.
CHUNK_ROWS = 4096
INPUT_FORMATS = {".csv": "csv", ".parquet": "parquet", ".pq": "parquet",
                 ".jsonl": "jsonl", ".ndjson": "jsonl", ".json": "jsonl"}
OUTPUT_FORMATS = INPUT_FORMATS
REASONS = ("missing", "not text", "empty", "whitespace only", "no tokens")
ROW = "_row"  # the row number, kept in part files for joining and dropped from the output
_PART = re.compile(r"^part-(\d{6})\.parquet$")


class PredictInputError(ValueError):
    """A bad input, model name, output path or flag combination; the message is one line."""


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


def id_column_type(files: Sequence[Path], id_col: str | None) -> pa.DataType:
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
    id_type = id_column_type(files, id_column)
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


# --------------------------------------------------------------------------- output


def output_schema(label_names: Sequence[str], id_type: pa.DataType | None = None, row: bool = True) -> pa.Schema:
    """The output columns (with ``_row`` first in part files): id (``id_type``, default int64: the row
    number), label, one prob_<label> per class, model, reason."""
    id_type = pa.int64() if id_type is None else id_type
    fields = [pa.field(ROW, pa.int64())] if row else []
    fields += [pa.field("id", id_type), pa.field("label", pa.string())]
    fields += [pa.field(f"prob_{n}", pa.float64()) for n in label_names]
    fields += [pa.field("model", pa.string()), pa.field("reason", pa.string())]
    return pa.schema(fields)



# --------------------------------------------------------------------------- parts and output


def parts_dir(output: Path) -> Path:
    """The hidden folder of a job's part files: ``.<output name>.parts`` beside the output."""
    return output.with_name(f".{output.name}.parts")


def part_path(work: Path, k: int) -> Path:
    """The part file of chunk ``k`` in the job folder ``work``."""
    return work / f"part-{k:06d}.parquet"


def done_parts(work: Path) -> set[int]:
    """The chunks of ``work`` with a finished part file (none when the folder is missing)."""
    if not work.is_dir():
        return set()
    return {int(m.group(1)) for p in work.iterdir() if (m := _PART.match(p.name))}


def write_part(work: Path, k: int, table: pa.Table) -> None:
    """Write chunk ``k``'s predictions as its part file, atomically."""
    with atomic_path(part_path(work, k)) as tmp:
        pq.write_table(table, tmp)


def assemble(work: Path, n_chunks: int, output: Path, schema: pa.Schema) -> None:
    """Concatenate the parts, in chunk order and without ``_row``, into ``output`` atomically."""
    kind = format_of(output, OUTPUT_FORMATS, "output")
    with atomic_path(output) as tmp:
        if kind == "parquet":
            with pq.ParquetWriter(tmp, schema) as writer:
                for k in range(n_chunks):
                    writer.write_table(pq.read_table(part_path(work, k)).drop_columns([ROW]))
        elif kind == "csv":
            import pyarrow.csv as pcsv

            with pcsv.CSVWriter(str(tmp), schema) as writer:
                for k in range(n_chunks):
                    writer.write_table(pq.read_table(part_path(work, k)).drop_columns([ROW]))
        else:
            with open(tmp, "w", encoding="utf-8") as f:
                for k in range(n_chunks):
                    for rec in pq.read_table(part_path(work, k)).drop_columns([ROW]).to_pylist():
                        f.write(json.dumps(rec, ensure_ascii=False) + "\n")
