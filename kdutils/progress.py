"""Progress bars: text tqdm bars written to stdout.

Notebooks run through papermill and are exported to HTML, where nbconvert shows every stderr
stream in an error box; tqdm writes to stderr by default, so a healthy bar looked like a failure.
On stdout it reads as ordinary output, in a terminal as in a report. Text bars rather than
``tqdm.auto``: the pinned environment has no ipywidgets, and ``tqdm.auto`` would warn instead.
"""

from __future__ import annotations

import sys
from collections.abc import Iterable
from typing import IO, Any

from tqdm import tqdm


def bar(iterable: Iterable[Any] | None = None, *, file: IO[str] | None = None, **kwargs: Any) -> tqdm:
    """A ``tqdm`` bar on ``file`` (default: the current ``sys.stdout``, looked up at call time so a
    notebook kernel's stream is used); other keyword arguments go to ``tqdm`` unchanged."""
    return tqdm(iterable, file=file if file is not None else sys.stdout, **kwargs)
