"""The served models: which ones (:func:`resolve_models`), loading them (:class:`Registry`), and
running their calls off the event loop (:class:`ModelRunner`), batched while a model is busy
(:class:`MicroBatcher`).
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np

from kdutils.inference.predictors import ModelEntry, Predictor, discover, make_predictor

# torch is imported where an eager model needs it: a server of ONNX models never loads torch.

log = logging.getLogger("kdutils.serving.app")

# Served when --models is not given: the distilled student (eager and ONNX) and the ONNX
# teacher, those of them the run has. Every model of a run at once is ~900 MB (default profile).
DEFAULT_MODELS = ("student_distilled", "student_distilled@onnx", "teacher@onnx")


def resolve_models(available: dict[str, ModelEntry], names: list[str] | None) -> list[str]:
    """The served names: ``names`` as given, ``["all"]`` for every model, None for the defaults.

    Raises LookupError naming the missing models and what the run has.
    """
    if names == ["all"]:
        chosen = list(available)
    elif names is None:
        chosen = [n for n in DEFAULT_MODELS if n in available]
        if not chosen:
            raise LookupError(f"none of the default models {list(DEFAULT_MODELS)} is in this run; "
                              f"pass --models (available: {list(available)})")
    else:
        missing = [n for n in names if n not in available]
        if missing:
            raise LookupError(f"models {missing} not found; available: {list(available)} (or 'all')")
        chosen = list(names)
    if not chosen:
        raise LookupError("no trained models in this run")
    return chosen


class Registry:
    """The loaded predictors; filled by a background thread so the port answers while loading."""

    def __init__(self, run_dir: Path, names: list[str] | None, threads: int | None) -> None:
        self.run_dir = run_dir
        self.names = names
        self.threads = threads
        self.status = "loading"
        self.detail: str | None = None
        self.entries: dict[str, ModelEntry] = {}
        self.predictors: dict[str, Predictor] = {}

    def load(self) -> None:
        """Load every served model (status ``ok``), or record why loading failed (status ``error``)."""
        try:
            if self.threads:
                import torch

                torch.set_num_threads(self.threads)
            available = discover(self.run_dir)
            if not available:
                raise LookupError(f"no trained models in {self.run_dir}/models")
            for name in resolve_models(available, self.names):
                t0 = time.perf_counter()
                self.predictors[name] = make_predictor(available[name], self.threads)
                self.entries[name] = available[name]
                log.info("loaded %s (%s) in %.1fs", name, available[name].runtime, time.perf_counter() - t0)
            self.status = "ok"
        except Exception as err:  # noqa: BLE001 - any load failure is reported by /healthz
            log.exception("loading models failed")
            self.status, self.detail = "error", f"{type(err).__name__}: {err}"


class ModelRunner:
    """Runs blocking model calls on a small pool of worker threads, off the event loop.

    A dedicated executor rather than Starlette's ``run_in_threadpool``: measured on the BiLSTM
    student (2-core EPYC, one torch thread), anyio's hand-off added ~0.8 ms to a 1.4 ms model
    call, ``loop.run_in_executor`` ~0.1 ms; at batch 1 that hand-off is most of the HTTP cost.
    """

    def __init__(self, workers: int | None = None) -> None:
        self.workers = workers or max(2, os.cpu_count() or 1)
        self._pool: ThreadPoolExecutor | None = None

    def start(self) -> None:
        """Start the worker threads (the app's lifespan does, on start-up)."""
        self._pool = ThreadPoolExecutor(self.workers, thread_name_prefix="model")

    def stop(self) -> None:
        """Stop the worker threads without waiting; calls not yet started are cancelled."""
        if self._pool is not None:
            self._pool.shutdown(wait=False, cancel_futures=True)
            self._pool = None

    async def __call__(self, fn: Callable[..., Any], *args: Any) -> Any:
        if self._pool is None:
            raise RuntimeError("ModelRunner is not started (the app's lifespan starts it)")
        return await asyncio.get_running_loop().run_in_executor(self._pool, fn, *args)


def timed(fn: Callable[[list[str]], np.ndarray], texts: list[str]) -> tuple[np.ndarray, float]:
    """``fn(texts)`` and the seconds it took, measured in the thread that runs it (no hand-off counted)."""
    t0 = time.perf_counter()
    out = fn(texts)
    return out, time.perf_counter() - t0


class MicroBatcher:
    """Batches requests to one model only while it is busy.

    A request that finds the model idle runs at once, alone: batching adds nothing at low load.
    Requests arriving during a model call wait for it to end and then run together as the next
    batch (up to ``max_batch`` texts; a single larger request runs alone). One batch runs at a
    time per model, so under load the model runs back to back on ever larger batches.
    ``fn(texts) -> logits [N, C]`` is the model call; it must give a text the same answer
    whatever its batch-mates (see ``Predictor.batch_invariant``).
    """

    def __init__(self, fn: Callable[[list[str]], np.ndarray], max_batch: int, runner: ModelRunner) -> None:
        if max_batch < 1:
            raise ValueError(f"max_batch must be at least 1, got {max_batch}")
        self.fn = fn
        self.runner = runner
        self.max_batch = max_batch
        self.busy = False
        self.pending: list[tuple[list[str], asyncio.Future[tuple[np.ndarray, float]]]] = []
        self.batch_sizes: list[int] = []  # requests per model call, for tests and diagnostics
        self._drainer: asyncio.Task | None = None

    async def submit(self, texts: list[str]) -> np.ndarray:
        """Logits for ``texts``; raises what the model call raised for them."""
        return (await self.submit_timed(texts))[0]

    async def submit_timed(self, texts: list[str]) -> tuple[np.ndarray, float]:
        """Logits for ``texts`` and the seconds of the model call that gave them (of the whole
        batch when they ran with others); raises what the model call raised for them."""
        if not self.busy:
            self.busy = True
            try:
                self.batch_sizes.append(1)
                return await self.runner(timed, self.fn, texts)
            finally:
                self._release()
        future: asyncio.Future[tuple[np.ndarray, float]] = asyncio.get_running_loop().create_future()
        self.pending.append((texts, future))
        return await future

    def _release(self) -> None:
        if self.pending:
            self._drainer = asyncio.get_running_loop().create_task(self._drain())
        else:
            self.busy = False

    def _take(self) -> list[tuple[list[str], asyncio.Future[tuple[np.ndarray, float]]]]:
        items, size = [], 0
        while self.pending and (not items or size + len(self.pending[0][0]) <= self.max_batch):
            item = self.pending.pop(0)
            if item[1].done():  # its client went away
                continue
            items.append(item)
            size += len(item[0])
        return items

    async def _drain(self) -> None:
        try:
            while self.pending:
                items = self._take()
                if not items:
                    continue
                self.batch_sizes.append(len(items))
                texts = [t for batch, _ in items for t in batch]
                try:
                    logits, seconds = await self.runner(timed, self.fn, texts)
                except Exception as err:  # noqa: BLE001 - handed to the waiting requests
                    if len(items) == 1:
                        _settle(items[0][1], error=err)
                        continue
                    # One bad request must not fail the others batched with it: run each alone.
                    for batch, fut in items:
                        try:
                            _settle(fut, await self.runner(timed, self.fn, batch))
                        except Exception as single_err:  # noqa: BLE001
                            _settle(fut, error=single_err)
                    continue
                start = 0
                for batch, fut in items:
                    _settle(fut, (logits[start:start + len(batch)], seconds))
                    start += len(batch)
        finally:
            self.busy = False
            self._drainer = None

    def cancel(self) -> None:
        """Cancel the batch drain in progress, if any (on shutdown)."""
        if self._drainer is not None:
            self._drainer.cancel()


def _settle(fut: asyncio.Future, result: Any = None, error: BaseException | None = None) -> None:
    # A request whose client went away has a cancelled future: leave it alone.
    if fut.done():
        return
    if error is not None:
        fut.set_exception(error)
    else:
        fut.set_result(result)
