"""The page to try the models (issue 24): ``GET /`` in a browser shows every served model side by side.

The page is three static files shipped in the package (``kdutils/serving/static/``: ``index.html``,
``page.css``, ``page.js``): no CDN, no build step, no other process, so it works on an air-gapped
machine. It talks to the server like any client: it polls ``GET /healthz`` until the models are
loaded, reads ``GET /page/info`` (example sentences from the run's test split and the served
models as the paper names them, in the paper's order) and sends ``POST /predict/{model}`` per
model, one after the other, so each model's time is its own and not a share of two cores.

:func:`page_router` holds every route of the page; the server only includes it and sends browsers
(``Accept: text/html``) to :func:`page_response` from its ``GET /``.
"""

from __future__ import annotations

import functools
import logging
import re
from collections.abc import Callable, Mapping
from pathlib import Path

from fastapi import APIRouter, HTTPException
from fastapi.responses import FileResponse
from pydantic import BaseModel, Field

from kdutils import plots
from kdutils.inference.predictors import RUNTIMES, ModelEntry, split_name

log = logging.getLogger("kdutils.serving.app")

STATIC_DIR = Path(__file__).parent / "static"
# The page's files besides index.html, with their media types: nothing else in STATIC_DIR is served.
PAGE_ASSETS = {"page.css": "text/css; charset=utf-8", "page.js": "text/javascript; charset=utf-8"}
# Example sentences offered: a few, each class in turn, short enough to read at a glance.
N_EXAMPLES = 4
EXAMPLE_CHARS = (30, 160)
_TRUNCATION = re.compile(r"^teacher_L(\d+)$")


class Example(BaseModel):
    text: str = Field(description="a sentence of the run's test split")
    label: str = Field(description="its label in the test split")


class PageModel(BaseModel):
    name: str = Field(description="served name, for POST /predict/{model}")
    label: str = Field(description="the model's name as the paper prints it")
    runtime: str = Field(description="the runtime as the paper prints it")
    kind: str = Field(description="teacher or student")
    color: str = Field(description="the model's colour in the paper's figures")
    label_names: list[str] = Field(description="class names, in label-id order")


class PageInfo(BaseModel):
    examples: list[Example] = Field(description="example sentences from the run's test split")
    examples_note: str | None = Field(None, description="why there are no examples, if there are none")
    models: list[PageModel] = Field(description="loaded models: teacher, its truncations, then students")


def display_order(name: str) -> tuple[int, int, str, int]:
    """Sort key of a served name: the teacher, its truncations (deepest first), then the students in
    the paper's order; each model's runtimes as :data:`~kdutils.inference.predictors.RUNTIMES` lists them."""
    base, runtime = split_name(name)
    rt = RUNTIMES.index(runtime) if runtime in RUNTIMES else len(RUNTIMES)
    if base == "teacher":
        return (0, 0, base, rt)
    if m := _TRUNCATION.match(base):
        return (1, -int(m.group(1)), base, rt)
    order = list(plots.MODEL_LABELS)
    return (2, order.index(base) if base in order else len(order), base, rt)


def page_model(entry: ModelEntry) -> PageModel:
    """What a card shows of a served model: the paper's model and runtime names and colour."""
    return PageModel(name=entry.name, label=plots.model_label(entry.base),
                     runtime=plots.RUNTIME_LABELS.get(entry.runtime, entry.runtime), kind=entry.kind,
                     color=plots.model_color(entry.base), label_names=entry.label_names)


def pick_examples(texts: list[str], labels: list[int], label_names: list[str], n: int = N_EXAMPLES,
                  chars: tuple[int, int] = EXAMPLE_CHARS) -> list[Example]:
    """Up to ``n`` sentences, one class after the other, each the first of its class (split order)
    whose length is within ``chars``; the shortest of a class when none is."""
    by_class: dict[int, list[str]] = {}
    for text, label in zip(texts, labels, strict=True):
        by_class.setdefault(int(label), []).append(text)
    queues = {}
    for label, pool in sorted(by_class.items()):
        fitting = [t for t in pool if chars[0] <= len(t.strip()) <= chars[1]]
        queues[label] = fitting or sorted(pool, key=len)
    out: list[Example] = []
    while len(out) < n and any(queues.values()):
        for label, queue in queues.items():
            if queue and len(out) < n:
                out.append(Example(text=queue.pop(0).strip(), label=label_names[label]))
    return out


@functools.lru_cache(maxsize=8)
def run_examples(run_dir: str) -> tuple[list[Example], str | None]:
    """Examples from ``<run>/data/test.parquet`` (checked against its sha256), read once per run;
    ``([], reason)`` when the run has no readable splits."""
    from kdutils.data.assets import AssetError
    from kdutils.data.corpora import (
        load_splits,  # pandas and the data room: only when the page asks
    )

    try:
        splits = load_splits(run_dir)
    except (OSError, ValueError, KeyError, AssetError) as err:  # missing, changed or unreadable splits
        log.warning("no example sentences for the page: %s", err)
        return [], f"this run has no readable test split ({type(err).__name__}); type a sentence instead"
    test = splits.test
    return pick_examples(list(test["text"]), [int(v) for v in test["label"]], splits.label_names), None


def page_response() -> FileResponse:
    """The page itself (``index.html``); the server's ``GET /`` returns it to browsers."""
    return FileResponse(STATIC_DIR / "index.html", media_type="text/html; charset=utf-8")


def wants_page(accept: str | None) -> bool:
    """True for a browser's request (``Accept`` names text/html); API clients keep the JSON index."""
    return "text/html" in (accept or "").lower()


def page_router(run_dir: str | Path, entries: Callable[[], Mapping[str, ModelEntry]]) -> APIRouter:
    """The page's routes: ``GET /page/info`` and its static files under ``/page/``.

    ``entries()`` gives the models loaded so far (the server's registry fills it while loading).
    """
    router = APIRouter(tags=["page"])
    run_key = str(Path(run_dir).resolve())

    @router.get("/page/info", response_model=PageInfo)
    def info() -> PageInfo:
        """Example sentences from the run's test split and the loaded models in the page's order.

        Sync on purpose: the first call reads the splits, which must not hold the event loop."""
        examples, note = run_examples(run_key)
        loaded = dict(entries())
        models = [page_model(loaded[n]) for n in sorted(loaded, key=display_order)]
        return PageInfo(examples=examples, examples_note=note, models=models)

    @router.get("/page/{asset}", include_in_schema=False)
    async def asset(asset: str) -> FileResponse:
        if asset not in PAGE_ASSETS:
            raise HTTPException(404, f"no page file {asset[:100]!r}; the page is GET /")
        return FileResponse(STATIC_DIR / asset, media_type=PAGE_ASSETS[asset])

    return router

