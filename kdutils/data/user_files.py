"""A user's own data file (``data.dataset: file``): CSV or Parquet read, checked and labelled.

Nothing the user gave is silently changed, merged or dropped: the label column is read as the
text it is (``01`` and ``1`` stay two classes), a Parquet column of the wrong type is refused by
name, and every row that cannot be used is counted by reason (:data:`DROP_REASONS`).
"""

from __future__ import annotations

import re
import unicodedata
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from kdutils.study.config import DataConfig
from kdutils.study.files import sha256_file
from kdutils.study.specs import ConfigError


class DataError(ConfigError):
    """The data source or its parameters are unusable; the message names the parameter."""


def _read_user_file(path: str | Path, text_column: str | None = None,
                    label_column: str | None = None) -> pd.DataFrame:
    """The user's CSV or Parquet file, every cell as written: only an empty CSV field is missing.

    pandas would read ``None``, ``NA``, ``null``, ``n/a``, ``NaN``, ``-`` ... as missing by default,
    silently turning a real label or text into a dropped row, so that list is switched off. The
    text and label columns of a CSV are read as strings (``007`` stays ``007``): parsed as numbers
    or booleans, ``01`` and ``1``, ``1.1`` and ``1.10``, or ``True`` and ``true`` would become one
    class. A Parquet column keeps the type it was written with. Raises :class:`DataError`.
    """
    path = Path(path)
    if not path.exists():
        raise DataError(f"data.path: file not found: {path}")
    if path.stat().st_size == 0:
        raise DataError(f"data.path: {path} is empty; give a .csv or .parquet file with rows")
    try:
        if path.suffix == ".csv":
            as_text = {c: str for c in (text_column, label_column) if c}
            return pd.read_csv(path, keep_default_na=False, na_values=[""], dtype=as_text or None)
        _check_parquet_columns(path, text_column, label_column)
        return pd.read_parquet(path)
    except DataError:
        raise
    except pd.errors.EmptyDataError:
        raise DataError(
            f"data.path: {path} is empty; give a .csv or .parquet file with rows"
        ) from None
    except (ValueError, OSError, pd.errors.ParserError) as err:
        first = str(err).splitlines()[0] if str(err) else type(err).__name__
        raise DataError(f"data.path: cannot read {path} as {path.suffix[1:]}: {first}") from None


def _check_parquet_columns(path: Path, text_column: str | None, label_column: str | None) -> None:
    """Refuse a Parquet text or label column of a type the study cannot read as it was meant.

    pandas accepts any column, so a ``list<string>`` column (pre-tokenised text) would reach the
    student as numpy reprs and an int64 "text" as digits. Text must be a string (or UTF-8 binary)
    column; labels a string, integer, float or boolean one. A column missing from the file is
    left to :func:`_check_user_frame`, which names the columns there are. Raises :class:`DataError`.
    """
    import pyarrow as pa
    import pyarrow.parquet as pq

    def value_type(t: pa.DataType) -> pa.DataType:
        return t.value_type if pa.types.is_dictionary(t) else t

    def textual(t: pa.DataType) -> bool:
        return any(check(t) for check in (
            pa.types.is_string, pa.types.is_large_string, pa.types.is_string_view, pa.types.is_binary,
            pa.types.is_large_binary, pa.types.is_binary_view, pa.types.is_null))

    def label_like(t: pa.DataType) -> bool:
        return textual(t) or pa.types.is_integer(t) or pa.types.is_floating(t) or pa.types.is_boolean(t)

    schema = pq.read_schema(path)
    for param, column, ok, allowed in (
        ("text_column", text_column, textual, "a string column (or UTF-8 binary)"),
        ("label_column", label_column, label_like, "a string, integer, float or boolean column"),
    ):
        if column is None or column not in schema.names:
            continue
        kind = schema.field(column).type
        if not ok(value_type(kind)):
            raise DataError(f"data.{param}: column {column!r} in {path} is of Parquet type {kind}; "
                            f"allowed: {allowed}")


def normalise_labels(labels: pd.Series) -> pd.Series:
    """Labels as the study compares them: text labels NFC-normalised and stripped of surrounding
    whitespace (``"pos "`` is ``"pos"``); numbers unchanged. A label that is empty after
    stripping becomes missing (``NaN``). Same index as ``labels``."""
    if pd.api.types.is_numeric_dtype(labels) or pd.api.types.is_bool_dtype(labels):
        return labels

    def clean(v: Any) -> Any:
        if not isinstance(v, str):
            return v
        v = unicodedata.normalize("NFC", v).strip()
        return v if v else np.nan

    return labels.map(clean)


# Why a row of a user file is left out, in the order the reasons are checked.
DROP_REASONS = {
    "text_missing": "empty text cell",
    "text_blank": "text is only whitespace",
    "label_missing": "empty label cell (or only whitespace)",
}


def _check_user_frame(raw: pd.DataFrame, cfg: DataConfig) -> tuple[pd.DataFrame, dict[str, int]]:
    """The user file's ``(text, label)`` rows with labels normalised, and how many rows were
    dropped for each of :data:`DROP_REASONS`; or DataError.

    Labels are normalised before they are validated, so ``pos`` and ``pos `` are one class and
    the class-count check sees what the study will train on.
    """
    for param, col in (("text_column", cfg.text_column), ("label_column", cfg.label_column)):
        if col not in raw.columns:
            raise DataError(
                f"data.{param}: column {col!r} not in {cfg.path}; allowed: "
                + ", ".join(map(str, raw.columns))
            )
    if cfg.text_column == cfg.label_column:
        raise DataError(
            f"data.label_column: must differ from data.text_column ({cfg.text_column!r})"
        )
    df = pd.DataFrame({"text": raw[cfg.text_column], "label": normalise_labels(raw[cfg.label_column])})
    text_missing = df["text"].isna()
    text_blank = ~text_missing & (df["text"].astype(str).str.strip() == "")
    label_missing = ~text_missing & ~text_blank & df["label"].isna()
    dropped = {"text_missing": int(text_missing.sum()), "text_blank": int(text_blank.sum()),
               "label_missing": int(label_missing.sum())}
    df = df.loc[~(text_missing | text_blank | label_missing)]
    if df.empty:
        why = ", ".join(f"{n} {DROP_REASONS[k]}" for k, n in dropped.items() if n)
        raise DataError(
            f"data.path: {cfg.path} has no rows with both {cfg.text_column!r} and {cfg.label_column!r}"
            + (f" ({why})" if why else "")
        )
    classes = df["label"].unique()
    if len(classes) < 2:
        raise DataError(
            f"data.label_column: column {cfg.label_column!r} has one class ({classes[0]!r}) after "
            "stripping surrounding whitespace; a classifier needs at least 2"
        )
    return df, dropped


# A label written as an integer with no sign, leading zero or decimal point: "0", "7", "10".
_PLAIN_INTEGER = re.compile(r"0|[1-9][0-9]*")


def _encode_labels(labels: pd.Series) -> tuple[pd.Series, list[str]]:
    """Map labels to ids 0..K-1 in sorted order; integer labels 0..K-1 keep their ids.

    Text labels stay the distinct strings they are (``01`` and ``1`` are two classes); when every
    one is a plain integer (``0`` ... ``10``), they sort as numbers, so a CSV's ``0..K-1`` keep their ids.
    """
    values = labels
    if pd.api.types.is_float_dtype(values) and (values == values.round()).all():
        values = values.astype("int64")
    if pd.api.types.is_integer_dtype(values):
        classes = sorted(int(v) for v in values.unique())
        mapping = {v: i for i, v in enumerate(classes)}
        return values.map(mapping).astype("int64"), [str(v) for v in classes]
    values = values.astype(str)
    distinct = values.unique()
    numeric = all(_PLAIN_INTEGER.fullmatch(v) for v in distinct)
    classes = sorted(distinct, key=int) if numeric else sorted(distinct)
    mapping = {v: i for i, v in enumerate(classes)}
    return values.map(mapping).astype("int64"), classes


def load_user_file(cfg: DataConfig) -> tuple[pd.DataFrame, list[str], dict[str, str]]:
    """A user's own file (``data.dataset: file``): its texts and label ids, the label names in id
    order, and the sha256 of the file by its absolute path. Raises :class:`DataError` naming the
    parameter, the column or the file that is wrong and what is allowed."""
    raw = _read_user_file(cfg.path, cfg.text_column, cfg.label_column)
    df, dropped = _check_user_frame(raw, cfg)
    label, names = _encode_labels(df["label"])
    out = pd.DataFrame({"text": df["text"].astype(str), "label": label})
    out.attrs["missing_dropped"] = int(len(raw) - len(df))
    out.attrs["dropped"] = dropped
    return out, names, {str(Path(cfg.path).resolve()): sha256_file(cfg.path)}


def check_user_file(cfg: DataConfig) -> None:
    """Read and check a user's file as :func:`load_user_file` would, without labelling it (the
    first cell's check). Raises :class:`DataError`."""
    _check_user_frame(_read_user_file(cfg.path, cfg.text_column, cfg.label_column), cfg)
