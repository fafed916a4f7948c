"""Issue 23.3: labels are read as the strings they are. Labels that look like numbers or
booleans (``01``/``1``, ``1.1``/``1.10``, ``True``/``true``) stay distinct classes in a CSV;
a Parquet column keeps its own type (``0.0``/``1.0`` floats are the integer classes 0 and 1)."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from kdutils.data.corpora import load_dataset, make_splits, validate_source
from kdutils.study.config import DataConfig


def _texts(rt_splits, n: int) -> list[str]:
    return pd.concat([rt_splits.train, rt_splits.val, rt_splits.test])["text"].head(n).tolist()


def _load(path: Path) -> tuple[pd.DataFrame, list[str]]:
    cfg = DataConfig(dataset="file", path=str(path), text_column="review", label_column="sentiment")
    validate_source(cfg)
    df, names = load_dataset(cfg)
    make_splits(df, cfg)  # the classes are usable for the study's stratified split
    return df, names


# Each group of labels looks alike as a number or a boolean, but is written differently.
LOOK_ALIKES = [
    ["01", "1", "02"],
    ["1.1", "1.10", "2"],
    ["True", "true", "False"],
    ["1", "1.0", "one"],
    ["1e3", "1000", "0"],
    ["-0", "0", "+1"],
    ["nan", "NaN", "null"],
    ["pos", "Pos", "neg"],
]


@pytest.mark.parametrize("labels", LOOK_ALIKES, ids=lambda ls: "/".join(ls))
@pytest.mark.parametrize("suffix", [".csv", ".parquet"])
def test_labels_that_look_alike_are_not_merged(tmp_path: Path, rt_splits, labels: list[str], suffix: str) -> None:
    texts = _texts(rt_splits, 60 * len(labels))
    column = [labels[i % len(labels)] for i in range(len(texts))]
    frame = pd.DataFrame({"review": texts, "sentiment": column})
    path = tmp_path / f"reviews{suffix}"
    frame.to_csv(path, index=False) if suffix == ".csv" else frame.to_parquet(path, index=False)
    df, names = _load(path)
    assert names == sorted(labels), names
    # Every row keeps the label it was written with.
    assert [names[i] for i in df["label"]] == column


def test_csv_integer_labels_keep_their_ids_and_sort_as_numbers(tmp_path: Path, rt_splits) -> None:
    texts = _texts(rt_splits, 24 * 11)
    column = [i % 11 for i in range(len(texts))]
    path = tmp_path / "reviews.csv"
    pd.DataFrame({"review": texts, "sentiment": column}).to_csv(path, index=False)
    df, names = _load(path)
    assert names == [str(i) for i in range(11)]
    assert df["label"].tolist() == column


@pytest.mark.parametrize("dtype", ["float64", "int64", "bool"])
def test_parquet_number_and_boolean_labels_stay_working(tmp_path: Path, rt_splits, dtype: str) -> None:
    texts = _texts(rt_splits, 120)
    column = pd.Series([i % 2 for i in range(len(texts))]).astype(dtype)
    path = tmp_path / "reviews.parquet"
    pd.DataFrame({"review": texts, "sentiment": column}).to_parquet(path, index=False)
    df, names = _load(path)
    assert names == (["False", "True"] if dtype == "bool" else ["0", "1"])
    assert df["label"].tolist() == [i % 2 for i in range(len(texts))]


def test_csv_labels_are_still_stripped_of_surrounding_whitespace(tmp_path: Path, rt_splits) -> None:
    # README: labels are compared after stripping surrounding whitespace (" 1" and "1" are one class).
    texts = _texts(rt_splits, 120)
    path = tmp_path / "reviews.csv"
    column = ["1" if i % 4 == 0 else " 1" if i % 4 == 1 else "0" for i in range(len(texts))]
    pd.DataFrame({"review": texts, "sentiment": column}).to_csv(path, index=False)
    df, names = _load(path)
    assert names == ["0", "1"]
