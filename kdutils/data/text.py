"""Word tokenizer and vocabulary of the BiLSTM student.

One set of rules serves every dataset. The rotten_tomatoes sentences arrive
lowercased and already split PTB-style (``it 's``, ``" conan "``), imdb reviews
arrive raw with ``<br />`` tags, tweets arrive raw: the tokenizer maps all three
to the same token stream, so ``it's`` and ``it 's`` give the same tokens. The
rules follow the Penn Treebank conventions that GloVe 6B was trained on
(clitics ``'s``/``n't`` split off, hyphenated compounds kept whole), which keeps
GloVe coverage high.
"""

from __future__ import annotations

import functools
import html
import json
import re
import sys
import unicodedata
from collections import Counter
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from kdutils.study import steps
from kdutils.study.files import atomic_path

if TYPE_CHECKING:
    import torch

# Bumped whenever the rules below change: a saved vocab records it, and loading
# a vocab made under other rules fails instead of silently mis-encoding.
# ptb-lower-2: NFKC normalisation, invisible characters dropped, only real HTML tags are markup.
TOKENIZER_VERSION = "ptb-lower-2"

# Markup is a known HTML element name right after "<" (or "</"), with name=value attributes
# only: "<br />", "<p>", "</i>", '<a href="x">'. Anything else with angle brackets is prose
# ("i <3 this", "a > b", "<i love this>") and its "<" / ">" are punctuation tokens. "<unk>",
# the vocabulary's unknown token, is not an HTML element, so it survives as one token.
_HTML_ELEMENTS = (
    "a|abbr|b|big|blockquote|br|center|cite|code|dd|del|div|dl|dt|em|font|h[1-6]|hr|i|img|ins|"
    "kbd|li|ol|p|pre|q|s|small|span|strike|strong|sub|sup|table|tbody|td|th|thead|tr|tt|u|ul"
)
_TAG = re.compile(
    rf"</?(?:{_HTML_ELEMENTS})"
    r"""(?:\s+[\w:-]+\s*=\s*(?:"[^"<>]*"|'[^'<>]*'|[^\s"'<>]+))*"""
    r"\s*/?>",
    re.IGNORECASE,
)
_NT = re.compile(r"(?<=\w)n't\b")  # doesn't -> does n't ; can't -> ca n't (as in PTB / GloVe)
_CLITIC = re.compile(r"(?<=\w)'(s|re|ve|ll|d|m)\b")  # it's -> it 's
_TOKEN = re.compile(
    r"<unk>"
    r"|n't\b"  # split-off negation
    r"|'(?:s|re|ve|ll|d|m)\b"  # split-off clitics, also when the text arrives as "it 's"
    r"|\d+(?:[.,:]\d+)*(?!\w)"  # numbers keep their separators (7.5, 1,000, 2:30); "21st" is a word
    r"|\w+(?:[-']\w+)*"  # words; hyphenated compounds stay one token (GloVe has them)
    r"|([^\w\s])\1*"  # punctuation; a run of one mark ("--", "...", "!!!") is one token
)


@functools.cache
def _invisible() -> re.Pattern[str]:
    """Format (Cf) and control (Cc) characters that are not whitespace: zero-width spaces and
    joiners, BOM, word joiner, soft hyphen, NUL, bidi marks. Built on first use (a scan of
    every code point takes ~0.25 s, not worth paying at import)."""
    chars = [chr(c) for c in range(sys.maxunicode + 1)
             if unicodedata.category(chr(c)) in ("Cf", "Cc") and not chr(c).isspace()]
    return re.compile("[" + "".join(re.escape(c) for c in chars) + "]")


def tokenize(text: str) -> list[str]:
    """Word tokens of ``text``: lowercased, NFKC-normalised, markup and invisible characters removed.

    HTML tags (``<br />``, ``<p>``, ``</i>``) are dropped and entities unescaped; ``<`` and ``>``
    in prose are tokens. Composed and decomposed forms (``café`` NFC / NFD) and compatibility
    forms (full-width letters, ligatures, ``…``) give the same tokens. Format and control
    characters (``\\u200b``, ``\\ufeff``, ``\\u2060``, ``\\x00``) are deleted, and every Unicode
    whitespace (``\\u00a0``, ``\\u3000``) separates words, so text made only of them gives ``[]``.
    Punctuation and the clitics ``'s``/``n't`` are split off PTB-style. Raises ``TypeError`` for
    a non-string.
    """
    if not isinstance(text, str):
        raise TypeError(f"tokenize expects a str, got {type(text).__name__}")
    # Unescape after the tag pass, so "&lt;b&gt;" written in prose stays prose; normalise after
    # unescaping, so "&#769;" (a combining accent) composes like a literal one; lowercasing can
    # decompose (İ -> i + U+0307), hence the second NFC.
    text = unicodedata.normalize("NFKC", html.unescape(_TAG.sub(" ", text)))
    text = unicodedata.normalize("NFC", _invisible().sub("", text).lower())
    # Curly quotes and backticks act as plain apostrophes/quotes so clitic rules still apply.
    text = text.replace("\u2019", "'").replace("\u2018", "'").replace("`", "'")
    text = _CLITIC.sub(r" '\1", _NT.sub(" n't", text))
    return [m.group(0) for m in _TOKEN.finditer(text)]


class VocabError(ValueError):
    """A vocabulary file is malformed or was made under other tokenizer rules."""


class Vocab:
    """Token <-> id mapping built on the training split only.

    Id 0 is padding, id 1 the unknown word; every other id is a training token,
    most frequent first (ties broken alphabetically, so the build is deterministic).
    """

    PAD_ID = 0
    UNK_ID = 1
    PAD_TOKEN = "<pad>"
    UNK_TOKEN = "<unk>"

    def __init__(self, itos: Sequence[str], counts: dict[str, int] | None = None,
                 min_count: int = 1, max_size: int | None = None) -> None:
        itos = list(itos)
        if itos[:2] != [self.PAD_TOKEN, self.UNK_TOKEN]:
            raise VocabError(f"vocab must start with {self.PAD_TOKEN!r}, {self.UNK_TOKEN!r}; got {itos[:2]}")
        if len(set(itos)) != len(itos):
            dup = [t for t, c in Counter(itos).items() if c > 1][:5]
            raise VocabError(f"vocab has duplicate tokens, e.g. {dup}")
        self.itos: list[str] = itos
        self.stoi: dict[str, int] = {t: i for i, t in enumerate(itos)}
        self.counts: dict[str, int] = dict(counts or {})
        self.min_count = min_count
        self.max_size = max_size

    @classmethod
    def build(cls, token_lists: Iterable[Sequence[str]], max_size: int, min_count: int = 1) -> Vocab:
        """Vocabulary of at most ``max_size`` ids (PAD and UNK included) from tokens seen ``min_count``+ times."""
        if max_size < 3:
            raise ValueError(f"max_size must be at least 3 (PAD, UNK and one word), got {max_size}")
        if min_count < 1:
            raise ValueError(f"min_count must be at least 1, got {min_count}")
        counter: Counter[str] = Counter()
        for tokens in token_lists:
            if isinstance(tokens, str):
                raise TypeError("Vocab.build expects token lists; call tokenize() on each text first")
            counter.update(tokens)
        counter.pop(cls.PAD_TOKEN, None)
        counter.pop(cls.UNK_TOKEN, None)
        kept = sorted((t for t, c in counter.items() if c >= min_count), key=lambda t: (-counter[t], t))
        kept = kept[: max_size - 2]
        return cls([cls.PAD_TOKEN, cls.UNK_TOKEN, *kept], {t: counter[t] for t in kept}, min_count, max_size)

    def __len__(self) -> int:
        return len(self.itos)

    def __contains__(self, token: str) -> bool:
        return token in self.stoi

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Vocab) and self.itos == other.itos

    def __repr__(self) -> str:
        return f"Vocab(size={len(self)}, min_count={self.min_count})"

    def encode(self, tokens: Sequence[str]) -> list[int]:
        return [self.stoi.get(t, self.UNK_ID) for t in tokens]

    def decode(self, ids: Iterable[int]) -> list[str]:
        """Tokens of ``ids``, padding dropped."""
        return [self.itos[i] for i in ids if i != self.PAD_ID]

    def encode_batch(self, texts_or_token_lists: Sequence[str | Sequence[str]],
                     max_length: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Right-padded ids ``[N, T]`` and mask ``[N, T]`` (True = real token).

        Strings are tokenized, lists are taken as tokens. Texts longer than
        ``max_length`` are truncated (the head is kept). An empty text becomes a
        single UNK so every row has at least one real position and pooling is
        defined. ``T`` is the longest row after truncation (at least 1).
        """
        import torch  # here: the server tokenizes with this module and never loads torch for ONNX models

        if max_length < 1:
            raise ValueError(f"max_length must be at least 1, got {max_length}")
        rows = []
        for item in texts_or_token_lists:
            tokens = tokenize(item) if isinstance(item, str) else item
            ids = self.encode(tokens[:max_length]) or [self.UNK_ID]
            rows.append(ids)
        width = max((len(r) for r in rows), default=1)
        ids_t = torch.full((len(rows), width), self.PAD_ID, dtype=torch.long)
        mask = torch.zeros((len(rows), width), dtype=torch.bool)
        for i, r in enumerate(rows):
            ids_t[i, : len(r)] = torch.tensor(r, dtype=torch.long)
            mask[i, : len(r)] = True
        return ids_t, mask

    def coverage(self, token_lists: Iterable[Sequence[str]]) -> float:
        """Fraction of tokens that are in the vocabulary (not UNK)."""
        total = known = 0
        for tokens in token_lists:
            total += len(tokens)
            known += sum(t in self.stoi for t in tokens)
        return known / total if total else 0.0

    def to_dict(self) -> dict:
        return {"tokenizer": TOKENIZER_VERSION, "pad_id": self.PAD_ID, "unk_id": self.UNK_ID,
                "min_count": self.min_count, "max_size": self.max_size, "size": len(self),
                "itos": self.itos}

    def save(self, path: str | Path) -> Path:
        path = Path(path)
        with atomic_path(path) as tmp:
            tmp.write_text(json.dumps(self.to_dict(), ensure_ascii=False) + "\n", encoding="utf-8")
        return path

    @classmethod
    def load(cls, path: str | Path) -> Vocab:
        path = Path(path)
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise VocabError(f"vocab file not found: {path}") from None
        except json.JSONDecodeError as err:
            raise VocabError(f"vocab file {path} is not valid JSON: {err}") from None
        if not isinstance(data, dict) or "itos" not in data:
            raise VocabError(f"vocab file {path} has no 'itos' list")
        if data.get("tokenizer") != TOKENIZER_VERSION:
            raise VocabError(f"vocab file {path} was made with tokenizer {data.get('tokenizer')!r}, "
                             f"this code uses {TOKENIZER_VERSION!r}: retrain the student "
                             f"({steps.run_first('models.student_baseline', rerun=True)} and the notebooks after it)")
        if data.get("size", len(data["itos"])) != len(data["itos"]):
            raise VocabError(f"vocab file {path} says size {data['size']} but lists {len(data['itos'])} tokens")
        return cls(data["itos"], min_count=data.get("min_count", 1), max_size=data.get("max_size"))
