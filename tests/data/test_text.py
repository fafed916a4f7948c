"""Student tokenizer and vocabulary, on a real rotten_tomatoes slice."""

from __future__ import annotations

import json

import pytest
import torch

from kdutils.data.text import TOKENIZER_VERSION, Vocab, VocabError, tokenize


def test_tokenize_lowercases_and_splits_punctuation() -> None:
    assert tokenize("A GREAT film, really!") == ["a", "great", "film", ",", "really", "!"]
    assert tokenize("") == []
    assert tokenize("   \n\t ") == []


def test_tokenize_same_rules_for_pretokenised_and_raw_text() -> None:
    # rotten_tomatoes arrives split PTB-style; raw text must give the same tokens.
    assert tokenize("it's not bad") == tokenize("it 's not bad") == ["it", "'s", "not", "bad"]
    assert tokenize("It doesn't work.") == ["it", "does", "n't", "work", "."]


def test_tokenize_strips_imdb_markup() -> None:
    tokens = tokenize("Great acting.<br /><br />Terrible plot &amp; pacing")
    assert "<br" not in " ".join(tokens) and "br" not in tokens
    assert tokens == ["great", "acting", ".", "terrible", "plot", "&", "pacing"]


@pytest.mark.parametrize("markup", ["<br />", "<br/>", "<BR>", "<p>", "</p>", "</i>", "<i>", "<b >",
                                    '<a href="https://example.org/x?a=1">', "<span class='x'>", "<hr/>"])
def test_tokenize_drops_real_tags_only(markup: str) -> None:
    assert tokenize(f"good{markup}film") == ["good", "film"]


@pytest.mark.parametrize(("text", "expected"), [
    # issue 12's instance: the old rule deleted everything between "<" and the next ">".
    ("i <3 this movie , but the ending is > boring",
     ["i", "<", "3", "this", "movie", ",", "but", "the", "ending", "is", ">", "boring"]),
    ("5 < 7 and 9 > 2", ["5", "<", "7", "and", "9", ">", "2"]),
    ("<i love this> they said", ["<", "i", "love", "this", ">", "they", "said"]),
    ("a <-- arrow --> b", ["a", "<", "--", "arrow", "--", ">", "b"]),
    ("<<great>> fun", ["<<", "great", ">>", "fun"]),
    ("x &lt;b&gt; y", ["x", "<", "b", ">", "y"]),  # escaped markup is text the author meant to show
    ("rated >9000 <br />wow", ["rated", ">", "9000", "wow"]),
])
def test_tokenize_keeps_angle_brackets_in_prose(text: str, expected: list[str]) -> None:
    assert tokenize(text) == expected


@pytest.mark.parametrize("text", ["\u200b\u200b", "\ufeff", "\u2060", "\u0000", "\u200c\u200d", "\u00ad",
                                  "\u200e\u200f\u202a\u202e", "\x07\x1b", "\u2066\u2069", "\U000e0001",
                                  "\u00a0", "\u3000\u2003", "\u2028\u2029", "\ufeff \u200b\t\n"])
def test_tokenize_invisible_only_text_is_empty(text: str) -> None:
    assert tokenize(text) == []


def test_tokenize_invisible_characters_vanish_and_unicode_spaces_separate() -> None:
    assert tokenize("\ufeffgood\u200b film\u0000") == ["good", "film"]
    assert tokenize("inter\u00adnational") == ["international"]  # a soft hyphen is no word break
    assert tokenize("good\u00a0film\u3000really\u2009great") == ["good", "film", "really", "great"]


@pytest.mark.parametrize(("a", "b"), [
    ("caf\u00e9", "cafe\u0301"),                  # issue 12's instance: NFC vs NFD
    ("NA\u00cfVE r\u00e9sum\u00e9", "NAI\u0308VE re\u0301sume\u0301"),
    ("\uff27\uff2f\uff2f\uff24 film", "good film"),   # full-width letters
    ("\ufb01ne", "fine"),                          # the fi ligature
    ("wait\u2026", "wait..."),
    ("caf&eacute;", "caf\u00e9"),                  # an entity gives the same word as the character
])
def test_tokenize_unicode_forms_give_the_same_tokens(a: str, b: str) -> None:
    assert tokenize(a) == tokenize(b)


def test_tokenize_keeps_the_unknown_token_whole() -> None:
    # Augmented sentences joined back into text keep their masked words as <unk>.
    assert tokenize("a <unk> film<br />") == ["a", "<unk>", "film"]


def test_tokenize_rejects_non_strings() -> None:
    with pytest.raises(TypeError):
        tokenize(None)  # type: ignore[arg-type]


@pytest.fixture(scope="module")
def vocab(rt_splits) -> Vocab:
    return Vocab.build((tokenize(t) for t in rt_splits.train.text), max_size=1000, min_count=1)


def test_vocab_specials_size_and_order(vocab: Vocab, rt_splits) -> None:
    assert vocab.itos[Vocab.PAD_ID] == "<pad>" and vocab.itos[Vocab.UNK_ID] == Vocab.UNK_TOKEN == "<unk>"
    assert len(vocab) == 1000  # the 400-sentence slice has more distinct words than that
    counts = [vocab.counts[t] for t in vocab.itos[2:]]
    assert counts == sorted(counts, reverse=True)
    # Built twice from the same data: the same ids.
    again = Vocab.build((tokenize(t) for t in rt_splits.train.text), max_size=1000, min_count=1)
    assert again.itos == vocab.itos


def test_vocab_min_count(rt_splits) -> None:
    token_lists = [tokenize(t) for t in rt_splits.train.text]
    v = Vocab.build(token_lists, max_size=100_000, min_count=3)
    assert all(c >= 3 for c in v.counts.values())
    singletons = Vocab.build(token_lists, max_size=100_000, min_count=1)
    assert len(v) < len(singletons)
    with pytest.raises(ValueError, match="max_size"):
        Vocab.build(token_lists, max_size=2)


def test_round_trip_in_vocab_tokens(vocab: Vocab, rt_splits) -> None:
    text = rt_splits.train.text.iloc[0]
    tokens = [t for t in tokenize(text) if t in vocab]
    ids, mask = vocab.encode_batch([tokens], max_length=200)
    assert vocab.decode(ids[0].tolist()) == tokens
    assert int(mask.sum()) == len(tokens)


def test_unknown_words_map_to_unk(vocab: Vocab) -> None:
    ids, mask = vocab.encode_batch(["zzqxv blorptastic the"], max_length=10)
    assert ids[0, :2].tolist() == [Vocab.UNK_ID, Vocab.UNK_ID]
    assert ids[0, 2].item() == vocab.stoi["the"]
    assert mask[0].tolist() == [True, True, True]


def test_encode_batch_pads_right_truncates_and_never_empty(vocab: Vocab, rt_splits) -> None:
    long_text = " ".join(rt_splits.train.text.iloc[:5])
    ids, mask = vocab.encode_batch(["", "good", long_text, "zzqxv qqqzr"], max_length=12)
    assert ids.dtype == torch.long and mask.dtype == torch.bool and ids.shape == (4, 12)
    # Empty text: one UNK position, so pooling over the mask is defined.
    assert ids[0, 0].item() == Vocab.UNK_ID and mask[0].tolist() == [True] + [False] * 11
    assert mask[1].sum().item() == 1 and (ids[1, 1:] == Vocab.PAD_ID).all()
    # Long text: truncated to max_length, keeping its head.
    assert mask[2].all() and vocab.decode(ids[2].tolist()) == [
        t if t in vocab else "<unk>" for t in tokenize(long_text)[:12]]
    # Only unknown words: encoded as UNKs, not as an empty row.
    assert ids[3, :2].tolist() == [Vocab.UNK_ID, Vocab.UNK_ID]
    with pytest.raises(ValueError):
        vocab.encode_batch(["good"], max_length=0)


def test_save_load_round_trip_and_bad_files(vocab: Vocab, tmp_path) -> None:
    path = vocab.save(tmp_path / "vocab.json")
    assert Vocab.load(path) == vocab
    data = json.loads(path.read_text())
    data["tokenizer"] = "other-rules"
    (tmp_path / "other.json").write_text(json.dumps(data))
    with pytest.raises(VocabError, match="tokenizer"):
        Vocab.load(tmp_path / "other.json")
    # A vocabulary saved under the previous rules (before NFKC and the tag fix) is refused, not misread.
    assert TOKENIZER_VERSION != "ptb-lower-1" and data["itos"][:2] == ["<pad>", "<unk>"]
    data["tokenizer"] = "ptb-lower-1"
    (tmp_path / "v1.json").write_text(json.dumps(data))
    with pytest.raises(VocabError, match=r"'ptb-lower-1'.*'ptb-lower-2'.*notebooks/03_student"):
        Vocab.load(tmp_path / "v1.json")
    (tmp_path / "broken.json").write_text("{not json")
    with pytest.raises(VocabError, match="not valid JSON"):
        Vocab.load(tmp_path / "broken.json")
    with pytest.raises(VocabError, match="not found"):
        Vocab.load(tmp_path / "missing.json")
