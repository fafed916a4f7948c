"""Progress bars: text tqdm bars that read well in a terminal and in an executed notebook.

Notebooks run through papermill and are exported to HTML. There, tqdm's usual output failed
twice: it goes to stderr, which nbconvert shows in an error box, and each redraw (``\\r`` +
line) is stored as a separate output, so the report showed every intermediate state, the first
one (``0/14``) included, rather than the last. Inside a notebook kernel a bar therefore draws
into one display output that it updates in place (``update_display_data``, which papermill
records): the saved notebook keeps only the bar's last state, as plain output. Elsewhere (a
terminal, a worker process) bars go to stdout. Text bars rather than ``tqdm.auto``: the pinned
environment has no ipywidgets, and ``tqdm.auto`` would warn instead.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterable
from typing import IO, Any

from tqdm import tqdm

# IPython exists only inside a Jupyter kernel: imported where a bar is drawn there.


class DisplayLine:
    """A write-only text stream for tqdm that keeps only the bar's current line.

    tqdm redraws with ``"\\r" + line`` (padded with blanks), clears a finished ``leave=False``
    bar with ``"\\r" + blanks`` and ends a kept one with ``"\\n"``. Each redraw calls ``show``
    with the current line, stripped (``""`` once cleared); ``show`` puts it on screen.
    """

    encoding = "utf-8"  # tqdm draws Unicode blocks only on streams that declare an encoding

    def __init__(self, show: Callable[[str], None]) -> None:
        self._show = show
        self.line = ""

    def write(self, text: str) -> int:
        if "\r" in text:
            current = text.rsplit("\r", 1)[1]
            if current:  # a trailing "\r" only moves the cursor back to the line shown
                self._set(current.rstrip())
        elif text.strip():
            self._set((self.line + text).rstrip())
        return len(text)

    def _set(self, line: str) -> None:
        if line != self.line:
            self.line = line
            self._show(line)

    def flush(self) -> None:
        """Nothing to flush: every line is shown as it is written."""


def _kernel_line() -> DisplayLine | None:
    """A :class:`DisplayLine` drawing into one updatable notebook output, or ``None`` outside a kernel."""
    try:
        from IPython import get_ipython
    except ImportError:
        return None
    shell = get_ipython()
    if shell is None or getattr(shell, "kernel", None) is None:
        return None
    from IPython.display import display

    handle: list[Any] = []

    def show(line: str) -> None:
        data = {"text/plain": line}
        if handle:
            handle[0].update(data, raw=True)
        else:
            handle.append(display(data, raw=True, display_id=True))

    return DisplayLine(show)


def bar(iterable: Iterable[Any] | None = None, *, file: IO[str] | None = None, **kwargs: Any) -> tqdm:
    """A ``tqdm`` bar on ``file``; by default one updatable output in a notebook kernel, else the
    current ``sys.stdout`` (looked up at call time). Other keyword arguments go to ``tqdm``."""
    if file is None:
        file = _kernel_line() or sys.stdout
    return tqdm(iterable, file=file, **kwargs)
