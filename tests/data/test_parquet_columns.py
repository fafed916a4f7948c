"""Issue 23.4: a Parquet text column that is not text (``list<string>``, ``int64`` ...) is refused
with a DataError naming the column, its type and what is allowed; string, large string, UTF-8
binary and dictionary-encoded text keep working. Label columns get the same check."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from kdutils import pipeline
from kdutils.data.corpora import DataError, load_dataset, validate_source
from kdutils.study.config import DataConfig


def _texts(rt_splits, n: int = 120) -> list[str]:
    return pd.concat([rt_splits.train, rt_splits.val])["text"].head(n).tolist()


def _write(path: Path, text: pa.Array, labels: pa.Array | None = None) -> DataConfig:
    labels = labels if labels is not None else pa.array([i % 2 for i in range(len(text))], pa.int64())
    pq.write_table(pa.table({"review": text, "sentiment": labels}), path)
    return DataConfig(dataset="file", path=str(path), text_column="review", label_column="sentiment")


NOT_TEXT = {
    "list<string>": lambda texts: pa.array([t.split() for t in texts], pa.list_(pa.string())),
    "large_list<string>": lambda texts: pa.array([t.split() for t in texts], pa.large_list(pa.string())),
    "int64": lambda texts: pa.array(range(len(texts)), pa.int64()),
    "double": lambda texts: pa.array([float(i) for i in range(len(texts))], pa.float64()),
    "bool": lambda texts: pa.array([i % 2 == 0 for i in range(len(texts))], pa.bool_()),
    "struct": lambda texts: pa.array([{"t": t} for t in texts], pa.struct([("t", pa.string())])),
    "timestamp": lambda texts: pa.array(range(len(texts)), pa.timestamp("s")),
}


@pytest.mark.parametrize("kind", NOT_TEXT)
def test_a_text_column_that_is_not_text_is_refused_by_name_and_type(tmp_path: Path, rt_splits, kind: str) -> None:
    column = NOT_TEXT[kind](_texts(rt_splits))
    cfg = _write(tmp_path / "reviews.parquet", column)
    for call in (validate_source, load_dataset):
        with pytest.raises(DataError) as err:
            call(cfg)
        message = str(err.value)
        stored = pq.read_schema(cfg.path).field("review").type  # as the file holds it (list<element: ...>)
        assert message.startswith("data.text_column: column 'review'") and f"Parquet type {stored};" in message
        assert "allowed: a string column" in message and "\n" not in message


TEXT = {
    "string": lambda texts: pa.array(texts, pa.string()),
    "large_string": lambda texts: pa.array(texts, pa.large_string()),
    "string_view": lambda texts: pa.array(texts, pa.string_view()),
    "binary (UTF-8)": lambda texts: pa.array([t.encode() for t in texts], pa.binary()),
    "large_binary (UTF-8)": lambda texts: pa.array([t.encode() for t in texts], pa.large_binary()),
    "dictionary<string>": lambda texts: pa.array(texts, pa.string()).dictionary_encode(),
}


@pytest.mark.parametrize("kind", TEXT)
def test_text_columns_keep_working(tmp_path: Path, rt_splits, kind: str) -> None:
    texts = _texts(rt_splits)
    texts[0] = "émouvant, 🎬 très bien"  # non-ASCII survives the binary decoding
    cfg = _write(tmp_path / "reviews.parquet", TEXT[kind](texts))
    validate_source(cfg)
    df, _ = load_dataset(cfg)
    assert sorted(df["text"]) == sorted(texts)


@pytest.mark.parametrize("labels", [
    pa.array([[i % 2] for i in range(120)], pa.list_(pa.int64())),
    pa.array([{"y": i % 2} for i in range(120)], pa.struct([("y", pa.int64())])),
], ids=["list<int64>", "struct"])
def test_a_label_column_that_is_not_a_label_is_refused(tmp_path: Path, rt_splits, labels: pa.Array) -> None:
    cfg = _write(tmp_path / "reviews.parquet", pa.array(_texts(rt_splits)), labels)
    with pytest.raises(DataError, match=r"^data.label_column: column 'sentiment' .* of Parquet type (list|struct)"):
        validate_source(cfg)


def test_dictionary_labels_keep_working(tmp_path: Path, rt_splits) -> None:
    labels = pa.array(["neg", "pos"] * 60, pa.string()).dictionary_encode()
    cfg = _write(tmp_path / "reviews.parquet", pa.array(_texts(rt_splits)), labels)
    validate_source(cfg)
    assert load_dataset(cfg)[1] == ["neg", "pos"]


def test_the_pipeline_refuses_in_one_line(tmp_path: Path, rt_splits, capsys: pytest.CaptureFixture) -> None:
    path = tmp_path / "reviews.parquet"
    _write(path, NOT_TEXT["list<string>"](_texts(rt_splits)))
    overrides = json.dumps({"data": {"dataset": "file", "path": str(path), "text_column": "review",
                                     "label_column": "sentiment"}})
    code = pipeline.main(["run", "--profile", "smoke", "--output-root", str(tmp_path / "out"),
                          "--set", overrides, "--no-report"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 1 and len(err) == 1 and "list<element: string>" in err[0] and err[0].startswith("error: ")
    assert not (tmp_path / "out").exists()  # refused before anything was written
