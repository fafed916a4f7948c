"""Transfer-set augmentation after Tang et al. (2019), seeded and word-level.

For each word of a sentence one uniform draw ``x`` decides its fate: ``x < p_mask``
masks it (the student's unknown token), ``p_mask <= x < p_mask + p_replace``
swaps it for one of its GloVe nearest neighbours (a stand-in for Tang et al.'s
part-of-speech-guided replacement, whose tagger no package here ships; TinyBERT
uses GloVe neighbours the same way), otherwise it is kept. Then, with probability
``p_ngram``, only a random n-gram of the result is kept (n uniform in 1..5).
Each sentence yields ``n_iter`` such copies; duplicates are dropped, and so is
any copy equal to a sentence of an excluded set (the validation and test splits),
so no evaluation sentence ever enters the transfer set.

The module works on token lists (the student's tokenisation); the teacher gets the
same tokens joined by spaces, with the mask token mapped to its own unknown token.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Iterable, Mapping, Sequence

import numpy as np

MASK_TOKEN = "<unk>"  # the student's unknown token (kdutils.data.text.Vocab.UNK_TOKEN)
NGRAM_RANGE = (1, 5)


def _check_probs(p_mask: float, p_replace: float, p_ngram: float) -> None:
    for name, p in (("p_mask", p_mask), ("p_replace", p_replace), ("p_ngram", p_ngram)):
        if not 0.0 <= p <= 1.0:
            raise ValueError(f"{name} must lie in [0, 1], got {p}")
    if p_mask + p_replace > 1.0:
        raise ValueError(f"p_mask + p_replace must not exceed 1, got {p_mask} + {p_replace}")


def sentence_key(tokens: Sequence[str]) -> str:
    """The form sentences are deduplicated by: tokens joined by single spaces."""
    return " ".join(tokens)


def perturb_words(
    tokens: Sequence[str],
    rng: np.random.Generator,
    *,
    p_mask: float,
    p_replace: float,
    neighbours: Mapping[str, Sequence[str]],
    mask_token: str = MASK_TOKEN,
) -> list[str]:
    """Mask or replace each word independently (one draw per word, as in Tang et al.).

    A word chosen for replacement that has no listed neighbour is kept.
    """
    draws = rng.random(len(tokens))
    out = list(tokens)
    for i, (tok, x) in enumerate(zip(tokens, draws, strict=True)):
        if x < p_mask:
            out[i] = mask_token
        elif x < p_mask + p_replace:
            options = neighbours.get(tok)
            if options:
                out[i] = options[int(rng.integers(len(options)))]
    return out


def sample_ngram(tokens: Sequence[str], rng: np.random.Generator, n_range: tuple[int, int] = NGRAM_RANGE) -> list[str]:
    """A contiguous n-gram of ``tokens``, n uniform in ``n_range`` (the whole sentence if shorter)."""
    n = int(rng.integers(n_range[0], n_range[1] + 1))
    if n >= len(tokens):
        return list(tokens)
    start = int(rng.integers(0, len(tokens) - n + 1))
    return list(tokens[start : start + n])


def augment_sentence(
    tokens: Sequence[str],
    rng: np.random.Generator,
    *,
    p_mask: float,
    p_replace: float,
    p_ngram: float,
    neighbours: Mapping[str, Sequence[str]],
    mask_token: str = MASK_TOKEN,
) -> list[str]:
    """One augmented copy of a tokenised sentence."""
    out = perturb_words(tokens, rng, p_mask=p_mask, p_replace=p_replace, neighbours=neighbours,
                        mask_token=mask_token)
    if p_ngram > 0 and rng.random() < p_ngram:
        out = sample_ngram(out, rng)
    return out


def augment_corpus(
    sentences: Sequence[Sequence[str]],
    n_iter: int,
    *,
    p_mask: float,
    p_replace: float,
    p_ngram: float,
    neighbours: Mapping[str, Sequence[str]],
    seed: int,
    exclude: Iterable[Sequence[str]] = (),
    mask_token: str = MASK_TOKEN,
) -> list[tuple[int, list[str]]]:
    """``n_iter`` augmented copies of every sentence, deduplicated, as ``(source index, tokens)``.

    A copy is dropped when it is empty, equals an earlier copy or any input sentence,
    or equals a sentence of ``exclude`` (pass the validation and test sentences).
    The same inputs and seed give the same output.
    """
    if n_iter < 0:
        raise ValueError(f"n_iter must be >= 0, got {n_iter}")
    _check_probs(p_mask, p_replace, p_ngram)
    rng = np.random.default_rng(seed)
    seen = {sentence_key(s) for s in sentences}
    seen.update(sentence_key(s) for s in exclude)
    out: list[tuple[int, list[str]]] = []
    for idx, tokens in enumerate(sentences):
        for _ in range(n_iter):
            copy = augment_sentence(tokens, rng, p_mask=p_mask, p_replace=p_replace, p_ngram=p_ngram,
                                    neighbours=neighbours, mask_token=mask_token)
            key = sentence_key(copy)
            if copy and key not in seen:
                seen.add(key)
                out.append((idx, copy))
    return out


def teacher_text(tokens: Sequence[str], teacher_unk: str, mask_token: str = MASK_TOKEN) -> str:
    """The text the teacher scores for a token list: the student's mask becomes the teacher's unk."""
    return " ".join(teacher_unk if t == mask_token else t for t in tokens)


_BREAK = re.compile(r"<br\s*/?>", flags=re.IGNORECASE)
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+")


def split_sentences(document: str) -> list[str]:
    """HTML line breaks removed, then split after ``.``, ``!`` or ``?`` followed by white space."""
    text = _BREAK.sub(" ", document)
    return [s.strip() for s in _SENTENCE_END.split(text) if s.strip()]


def cut_sentences(
    documents: Sequence[str],
    n: int,
    *,
    tokenize: Callable[[str], list[str]],
    min_tokens: int,
    max_tokens: int,
    seed: int,
    exclude: Iterable[Sequence[str]] = (),
    per_document: int | None = None,
) -> list[list[str]]:
    """Up to ``n`` distinct tokenised sentences cut from ``documents`` (e.g. IMDB reviews).

    Documents are visited in a seeded random order and at most ``per_document``
    sentences are taken from each (default: enough to reach ``n`` with room to
    spare), so the sample spreads over many reviews. Sentences whose token count lies
    outside ``[min_tokens, max_tokens]`` are skipped (keep lengths like the target
    data's), and so are duplicates and sentences of ``exclude`` (every split).
    """
    if n < 0:
        raise ValueError(f"n must be >= 0, got {n}")
    if min_tokens < 1 or max_tokens < min_tokens:
        raise ValueError(f"need 1 <= min_tokens <= max_tokens, got {min_tokens}, {max_tokens}")
    if n == 0 or not documents:
        return []
    rng = np.random.default_rng(seed)
    if per_document is None:
        per_document = max(1, math.ceil(2 * n / len(documents)))
    seen = {sentence_key(s) for s in exclude}
    out: list[list[str]] = []
    for doc_idx in rng.permutation(len(documents)):
        candidates = [tokenize(s) for s in split_sentences(documents[int(doc_idx)])]
        candidates = [t for t in candidates if min_tokens <= len(t) <= max_tokens]
        taken = 0
        for j in rng.permutation(len(candidates)):
            tokens = candidates[int(j)]
            key = sentence_key(tokens)
            if key in seen:
                continue
            seen.add(key)
            out.append(tokens)
            taken += 1
            if len(out) == n:
                return out
            if taken == per_document:
                break
    return out
