"""The transfer set: the rows a distilled student learns from, and their teacher scores.

- :func:`in_domain_sentences` cuts unlabelled in-domain sentences (for rotten_tomatoes: from the
  imdb *train* reviews; :func:`unlabelled_source` says where from, in words);
- :func:`build_transfer_set` joins the training split, its augmented copies and those sentences
  into a :class:`TransferSet` (rows by :data:`SOURCES`); evaluation sentences never enter it;
- :func:`score_transfer_set` asks the teacher (``TeacherScorer``, cached) for logits;
- :func:`encode_rows`: the rows as the student's encoded input, teacher logits attached.

:mod:`kdutils.student.distill` trains students on it.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from kdutils.data.augment import augment_corpus, cut_sentences, sentence_key, teacher_text
from kdutils.data.corpora import unlabelled_texts
from kdutils.data.text import tokenize
from kdutils.student.train import EncodedSet
from kdutils.study.files import atomic_path
from kdutils.study.specs import DATASETS

# Where a transfer-set row comes from, in the order the set stores them and data_label joins them.
SOURCES = ("train", "augmented", "unlabelled")


def unlabelled_source(dataset: str, n: int) -> str | None:
    """Where :func:`in_domain_sentences` takes ``n`` unlabelled sentences of ``dataset`` from, in
    words (``kdutils.study.specs``); None when ``n`` is 0 or the data set has no such source."""
    spec = DATASETS.get(dataset)
    return spec.unlabelled if n > 0 and spec is not None and spec.unlabelled else None


@dataclass
class TransferSet:
    """Rows the student is distilled on.

    ``tokens`` is what the student reads (its own tokenisation, ``<unk>`` where a
    word was masked); ``teacher_texts`` is what the teacher scores for the same row
    (the original text for training sentences, tokens joined by spaces with the
    teacher's unknown token elsewhere). ``labels`` is the gold label or -1,
    ``source`` one of :data:`SOURCES`, ``origin`` the training-row index an
    augmented copy came from (-1 otherwise).
    """

    tokens: list[list[str]]
    teacher_texts: list[str]
    labels: np.ndarray
    source: np.ndarray
    origin: np.ndarray
    info: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.labels = np.asarray(self.labels, dtype=np.int64)
        self.source = np.asarray(self.source, dtype=object)
        self.origin = np.asarray(self.origin, dtype=np.int64)
        n = len(self.tokens)
        if not (len(self.teacher_texts) == len(self.labels) == len(self.source) == len(self.origin) == n):
            raise ValueError("TransferSet fields must all have one entry per row")
        bad = set(self.source) - set(SOURCES)
        if bad:
            raise ValueError(f"unknown sources {sorted(bad)}; allowed: {', '.join(SOURCES)}")

    def __len__(self) -> int:
        return len(self.tokens)

    def rows(self, sources: Iterable[str]) -> np.ndarray:
        """Indices of the rows whose source is one of ``sources``."""
        return np.flatnonzero(np.isin(self.source, list(sources)))

    def counts(self) -> dict[str, int]:
        """Rows by source, in :data:`SOURCES` order (zero for a source with none)."""
        return {s: int((self.source == s).sum()) for s in SOURCES}

    def save(self, path: str | Path) -> Path:
        """Write :meth:`to_frame` as Parquet, atomically (the transfer set is a study artefact)."""
        with atomic_path(path) as tmp:
            self.to_frame().to_parquet(tmp, index=False)
        return Path(path)

    def to_frame(self) -> pd.DataFrame:
        """One row per example (tokens joined by spaces), for inspection and saving."""
        return pd.DataFrame({
            "student_text": [" ".join(t) for t in self.tokens],
            "teacher_text": self.teacher_texts,
            "label": self.labels,
            "source": self.source.astype(str),
            "origin": self.origin,
        })


def in_domain_sentences(
    dataset: str,
    n: int,
    *,
    seed: int,
    reference_texts: Sequence[str],
    exclude_texts: Iterable[str],
    length_quantiles: tuple[float, float] = (0.05, 0.95),
) -> list[list[str]]:
    """Up to ``n`` unlabelled in-domain sentences (tokenised) for ``dataset``, or ``[]`` without a source.

    rotten_tomatoes: sentences cut from the imdb TRAIN reviews (never the imdb test
    set), markup stripped, token counts within the ``length_quantiles`` of
    ``reference_texts`` (the training split), deduplicated against ``exclude_texts``
    (pass every split). Other datasets have no unlabelled source here.
    """
    if unlabelled_source(dataset, n) is None:
        return []

    reviews = unlabelled_texts(dataset)
    lengths = np.array([len(tokenize(t)) for t in reference_texts])
    lo, hi = (int(round(float(q))) for q in np.quantile(lengths, length_quantiles))
    exclude = [tokenize(t) for t in exclude_texts]
    return cut_sentences(reviews, n, tokenize=tokenize, min_tokens=max(1, lo), max_tokens=max(lo, hi, 1),
                         seed=seed, exclude=exclude)


def build_transfer_set(
    train_texts: Sequence[str],
    train_labels: Sequence[int],
    *,
    n_iter: int,
    p_mask: float,
    p_replace: float,
    p_ngram: float,
    neighbours: dict[str, Sequence[str]],
    seed: int,
    exclude_texts: Iterable[str],
    teacher_unk: str,
    unlabelled: Sequence[Sequence[str]] = (),
) -> TransferSet:
    """Training split + ``n_iter`` augmented copies per sentence + unlabelled sentences.

    Augmented copies and unlabelled sentences carry label -1 (teacher term only).
    Copies equal to each other, to a training sentence or to a sentence of
    ``exclude_texts`` (validation and test) are dropped; unlabelled sentences that
    collide with any kept row are dropped too.
    """
    if len(train_texts) != len(train_labels):
        raise ValueError(f"{len(train_texts)} texts but {len(train_labels)} labels")
    train_tokens = [tokenize(t) for t in train_texts]
    exclude = [tokenize(t) for t in exclude_texts]
    augmented = augment_corpus(train_tokens, n_iter, p_mask=p_mask, p_replace=p_replace, p_ngram=p_ngram,
                               neighbours=neighbours, seed=seed, exclude=exclude)
    seen = {sentence_key(t) for t in train_tokens} | {sentence_key(t) for _, t in augmented}
    seen |= {sentence_key(t) for t in exclude}
    extra: list[list[str]] = []
    for tokens in unlabelled:
        key = sentence_key(tokens)
        if tokens and key not in seen:
            seen.add(key)
            extra.append(list(tokens))
    tokens = [*train_tokens, *(t for _, t in augmented), *extra]
    texts = [*map(str, train_texts), *(teacher_text(t, teacher_unk) for _, t in augmented),
             *(" ".join(t) for t in extra)]
    n_train, n_aug, n_extra = len(train_tokens), len(augmented), len(extra)
    return TransferSet(
        tokens=tokens,
        teacher_texts=texts,
        labels=np.concatenate([np.asarray(train_labels, dtype=np.int64), np.full(n_aug + n_extra, -1)]),
        source=np.array(["train"] * n_train + ["augmented"] * n_aug + ["unlabelled"] * n_extra, dtype=object),
        origin=np.concatenate([np.full(n_train, -1), np.array([i for i, _ in augmented], dtype=np.int64),
                               np.full(n_extra, -1)]),
        info={"n_iter": n_iter, "p_mask": p_mask, "p_replace": p_replace, "p_ngram": p_ngram, "seed": seed,
              "teacher_unk": teacher_unk, "augmented_dropped": n_iter * n_train - n_aug,
              "unlabelled_requested": len(unlabelled), "unlabelled_dropped": len(unlabelled) - n_extra},
    )


def score_transfer_set(transfer: TransferSet, scorer: Any) -> np.ndarray:
    """Teacher logits ``[N, C]`` for every row (``scorer`` is a ``TeacherScorer``; it caches on disk)."""
    logits = np.asarray(scorer.logits(list(transfer.teacher_texts)), dtype=np.float32)
    if logits.ndim != 2 or logits.shape[0] != len(transfer):
        raise ValueError(f"teacher returned logits of shape {logits.shape} for {len(transfer)} texts")
    return logits


def teacher_unk_token(model_dir: str | Path) -> str:
    """The unknown token of the saved teacher's tokenizer (``[UNK]`` for BERT, ``<unk>`` for MPNet)."""
    from transformers import AutoTokenizer  # seconds to import: only this call needs it

    token = AutoTokenizer.from_pretrained(str(model_dir)).unk_token
    if not token:
        raise ValueError(f"the tokenizer in {model_dir} has no unknown token to stand for masked words")
    return str(token)


def encode_rows(vocab: Any, tokens: Sequence[Sequence[str]], labels: Sequence[int], max_length: int,
                teacher_logits: np.ndarray | None = None) -> Any:
    """An :class:`~kdutils.student.train.EncodedSet` from token lists (never re-tokenised: ``<unk>`` stays UNK)."""
    ids, mask = vocab.encode_batch([list(t) for t in tokens], max_length)
    return EncodedSet(ids, mask, np.asarray(labels, dtype=np.int64), teacher_logits)
