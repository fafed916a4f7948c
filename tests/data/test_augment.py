"""Transfer-set augmentation on real rotten_tomatoes sentences and real GloVe neighbours."""

from __future__ import annotations

import numpy as np
import pytest

from kdutils.data.augment import (
    MASK_TOKEN,
    augment_corpus,
    augment_sentence,
    cut_sentences,
    perturb_words,
    sample_ngram,
    sentence_key,
    split_sentences,
    teacher_text,
)
from kdutils.data.text import Vocab, tokenize


@pytest.fixture(scope="module")
def sentences(rt_splits) -> list[list[str]]:
    return [tokenize(t) for t in rt_splits.train["text"].head(60)]


@pytest.fixture(scope="module")
def neighbours(rt_splits) -> dict[str, list[str]]:
    from kdutils.data.embeddings import glove_neighbours

    # The candidate pool is the training vocabulary, as in the notebook.
    words = sorted({w for t in rt_splits.train["text"] for w in tokenize(t)})
    return glove_neighbours(words, k=5)


def test_mask_token_is_the_student_unknown_token() -> None:
    assert MASK_TOKEN == Vocab.UNK_TOKEN


def test_masked_copy_differs_only_where_masked(sentences) -> None:
    rng = np.random.default_rng(0)
    n_masked = n_words = 0
    for tokens in sentences:
        copy = perturb_words(tokens, rng, p_mask=0.3, p_replace=0.0, neighbours={})
        assert len(copy) == len(tokens)
        for orig, new in zip(tokens, copy, strict=True):
            assert new == orig or new == MASK_TOKEN
        n_masked += sum(t == MASK_TOKEN for t in copy)
        n_words += len(tokens)
    # About 30% masked: the probability is honoured (loose bounds, ~1200 draws).
    assert 0.24 < n_masked / n_words < 0.36


def test_replacement_only_swaps_words_for_listed_neighbours(sentences, neighbours) -> None:
    rng = np.random.default_rng(1)
    swapped = 0
    for tokens in sentences:
        copy = perturb_words(tokens, rng, p_mask=0.0, p_replace=0.5, neighbours=neighbours)
        assert len(copy) == len(tokens)
        for orig, new in zip(tokens, copy, strict=True):
            if new != orig:
                assert new in neighbours[orig], (orig, new)
                swapped += 1
    assert swapped > 50
    # Neighbours are real GloVe neighbours: semantically close words.
    assert "movie" in neighbours["film"] and "films" in neighbours["film"]


def test_ngram_is_a_contiguous_subsequence(sentences) -> None:
    rng = np.random.default_rng(2)
    for tokens in sentences:
        gram = sample_ngram(tokens, rng)
        assert 1 <= len(gram) <= 5 or gram == tokens
        starts = [i for i in range(len(tokens) - len(gram) + 1) if tokens[i : i + len(gram)] == gram]
        assert starts, (tokens, gram)


def test_same_seed_same_output_and_different_seed_differs(sentences, neighbours) -> None:
    kwargs = {"n_iter": 3, "p_mask": 0.1, "p_replace": 0.1, "p_ngram": 0.25, "neighbours": neighbours}
    a = augment_corpus(sentences, seed=7, **kwargs)
    b = augment_corpus(sentences, seed=7, **kwargs)
    c = augment_corpus(sentences, seed=8, **kwargs)
    assert a == b
    assert a != c


def test_corpus_is_deduplicated_and_excludes_evaluation_sentences(rt_splits, sentences, neighbours) -> None:
    # An exclude set made of copies the unconstrained run produces: they must all vanish.
    kwargs = {"n_iter": 6, "p_mask": 0.1, "p_replace": 0.1, "p_ngram": 0.5, "neighbours": neighbours}
    free = augment_corpus(sentences, seed=3, **kwargs)
    keys = [sentence_key(t) for _, t in free]
    assert len(keys) == len(set(keys))
    originals = {sentence_key(s) for s in sentences}
    assert not originals & set(keys)
    assert all(0 <= i < len(sentences) for i, _ in free)
    assert all(tokens for _, tokens in free)
    banned = [t for _, t in free[::3]]
    evaluation = [tokenize(t) for t in rt_splits.test["text"]] + banned
    constrained = augment_corpus(sentences, seed=3, exclude=evaluation, **kwargs)
    got = {sentence_key(t) for _, t in constrained}
    assert not got & {sentence_key(t) for t in evaluation}
    # With n-grams of one word, many copies collide: fewer than n_iter per sentence survive.
    assert len(free) < 6 * len(sentences)


def test_no_augmentation_when_n_iter_is_zero_and_bad_input_fails(sentences) -> None:
    assert augment_corpus(sentences, 0, p_mask=0.1, p_replace=0.1, p_ngram=0.25, neighbours={}, seed=0) == []
    with pytest.raises(ValueError, match="n_iter"):
        augment_corpus(sentences, -1, p_mask=0.1, p_replace=0.1, p_ngram=0.25, neighbours={}, seed=0)
    with pytest.raises(ValueError, match="p_mask"):
        augment_corpus(sentences, 1, p_mask=1.5, p_replace=0.1, p_ngram=0.25, neighbours={}, seed=0)
    with pytest.raises(ValueError, match="p_mask \\+ p_replace"):
        augment_corpus(sentences, 1, p_mask=0.6, p_replace=0.6, p_ngram=0.25, neighbours={}, seed=0)


def test_augment_sentence_without_any_perturbation_is_identity(sentences) -> None:
    rng = np.random.default_rng(0)
    for tokens in sentences[:10]:
        assert augment_sentence(tokens, rng, p_mask=0, p_replace=0, p_ngram=0, neighbours={}) == tokens


def test_teacher_sees_its_own_unknown_token() -> None:
    assert teacher_text(["a", MASK_TOKEN, "film"], "[UNK]") == "a [UNK] film"


def test_sentences_cut_from_imdb_reviews() -> None:
    from kdutils.data.corpora import DataConfig, load_dataset

    df, _ = load_dataset(DataConfig(dataset="imdb"))
    reviews = df.loc[df["split"] == "train", "text"].head(300).tolist()
    assert any("<br />" in r for r in reviews)
    parts = split_sentences("Great film.<br /><br />Loved it! Really? yes")
    assert parts == ["Great film.", "Loved it!", "Really?", "yes"]
    exclude = [tokenize(split_sentences(reviews[0])[0])]
    cut = cut_sentences(reviews, 200, tokenize=tokenize, min_tokens=5, max_tokens=40, seed=0, exclude=exclude)
    assert len(cut) == 200
    assert all(5 <= len(t) <= 40 for t in cut)
    assert "br" not in {w for t in cut for w in t}  # markup is gone
    keys = [sentence_key(t) for t in cut]
    assert len(set(keys)) == len(keys)
    assert sentence_key(exclude[0]) not in keys
    assert cut == cut_sentences(reviews, 200, tokenize=tokenize, min_tokens=5, max_tokens=40, seed=0,
                                exclude=exclude)
    # per_document caps what one review gives: one each means at most one per review.
    one_each = cut_sentences(reviews, 10_000, tokenize=tokenize, min_tokens=5, max_tokens=40, seed=0,
                             per_document=1)
    assert 200 < len(one_each) <= len(reviews)
