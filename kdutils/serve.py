"""The prediction service: every trained model of a run behind one FastAPI app.

    python -m kdutils.serve --run outputs/<profile> [--host 127.0.0.1] [--port 8000]
        [--models teacher,student_distilled@onnx] [--threads 2] [--micro-batching-ms 5]

Endpoints:

* ``GET /healthz``: 200 ``{"status": "ok", "models": [...]}`` once every model is
  loaded; 503 while loading (models load in a background thread, so the port
  answers at once) or when loading failed.
* ``GET /models``: name, runtime, kind, parameters, size on disk of each model.
* ``POST /predict/{model}`` with ``{"texts": [...]}``: one prediction per text, in
  order, and the server-side latency. Unknown model: 404. Malformed JSON, missing
  or empty ``texts``, a non-string text, a text empty after stripping, more than
  ``max_texts`` texts or a text over ``max_chars`` characters: 422. A body over
  ``max_body_bytes`` (checked on ``Content-Length`` and on the bytes streamed):
  413. A failure inside a model: 500 with the error; never a made-up prediction.
* ``GET /ping`` and ``POST /noop`` (same request validation as ``/predict``, no
  model): the baseline for the cost of HTTP itself.

Model calls run in a worker thread, never on the event loop. With
``micro_batching_ms > 0`` concurrent requests to one model are gathered for up
to that many milliseconds and run as one batch. The server binds 127.0.0.1
unless told otherwise, reads weights only from safetensors or ONNX files, and
logs one line per request.
"""

# No `from __future__ import annotations`: FastAPI resolves the endpoint annotations at runtime,
# and the request model is a local of create_app.
import argparse
import asyncio
import logging
import os
import threading
import time
from collections.abc import AsyncIterator, Callable
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Annotated, Any

import numpy as np
from fastapi import FastAPI, HTTPException, Request
from fastapi import Path as PathParam
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    StrictStr,
    StringConstraints,
    create_model,
)

from kdutils.config import DeployConfig
from kdutils.metrics import softmax
from kdutils.predictors import ModelEntry, Predictor, discover, make_predictor

log = logging.getLogger("kdutils.serve")

_DEFAULTS = DeployConfig()
EXAMPLE_TEXTS = ["a gripping , beautifully acted film .", "the plot is thin and the jokes fall flat ."]


# --------------------------------------------------------------------------- schemas


def _not_blank(text: str) -> str:
    if not text.strip():
        raise ValueError("text is empty after stripping whitespace")
    return text


def request_model(max_texts: int, max_chars: int) -> type[BaseModel]:
    """The request schema with this server's limits (they appear in the OpenAPI docs)."""
    text = Annotated[StrictStr, StringConstraints(max_length=max_chars), AfterValidator(_not_blank)]
    return create_model(
        "PredictRequest",
        __config__=ConfigDict(extra="forbid", json_schema_extra={"examples": [{"texts": EXAMPLE_TEXTS}]}),
        texts=(Annotated[list[text], Field(min_length=1, max_length=max_texts,
                                           description=f"1 to {max_texts} non-blank texts of at most "
                                                       f"{max_chars} characters each")], ...),
    )


class Prediction(BaseModel):
    label: str = Field(description="predicted label name")
    label_id: int = Field(description="index of the predicted label")
    probabilities: dict[str, float] = Field(description="softmax probability of every label")


class PredictResponse(BaseModel):
    model_config = ConfigDict(json_schema_extra={"examples": [{
        "model": "student_distilled",
        "predictions": [{"label": "positive", "label_id": 1, "probabilities": {"negative": 0.08, "positive": 0.92}}],
        "latency_ms": 0.9}]})
    model: str
    predictions: list[Prediction] = Field(description="one prediction per input text, in input order")
    latency_ms: float = Field(description="time spent in the server on tokenizing and the model call(s)")


class NoopResponse(BaseModel):
    model: str = "noop"
    n: int = Field(description="number of texts received (validated, not processed)")
    latency_ms: float


class ModelInfo(BaseModel):
    name: str = Field(description="served name: <model> (eager PyTorch) or <model>@onnx / @onnx-int8")
    model: str
    runtime: str
    kind: str
    params: int
    size_mb: float = Field(description="size on disk of the weight file, MiB")
    label_names: list[str]
    max_length: int


class Health(BaseModel):
    status: str = Field(description="ok, loading or error")
    models: list[str]
    detail: str | None = None


class ErrorBody(BaseModel):
    detail: str


# --------------------------------------------------------------------------- model registry


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
        try:
            if self.threads:
                import torch

                torch.set_num_threads(self.threads)
            available = discover(self.run_dir)
            names = self.names if self.names is not None else list(available)
            missing = [n for n in names if n not in available]
            if missing:
                raise LookupError(f"models {missing} not found in {self.run_dir}; available: {list(available)}")
            if not names:
                raise LookupError(f"no trained models in {self.run_dir}/models")
            for name in names:
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
        self._pool = ThreadPoolExecutor(self.workers, thread_name_prefix="model")

    def stop(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=False, cancel_futures=True)
            self._pool = None

    async def __call__(self, fn: Callable[..., Any], *args: Any) -> Any:
        if self._pool is None:
            raise RuntimeError("ModelRunner is not started (the app's lifespan starts it)")
        return await asyncio.get_running_loop().run_in_executor(self._pool, fn, *args)


class MicroBatcher:
    """Gathers concurrent requests to one model for up to ``max_wait_s`` and runs them as one batch."""

    def __init__(self, predictor: Predictor, max_wait_s: float, max_batch: int, runner: ModelRunner) -> None:
        self.predictor = predictor
        self.runner = runner
        self.max_wait_s = max_wait_s
        self.max_batch = max_batch
        self.queue: asyncio.Queue[tuple[list[str], asyncio.Future[np.ndarray]]] = asyncio.Queue()
        self.task = asyncio.get_running_loop().create_task(self._worker())

    async def submit(self, texts: list[str]) -> np.ndarray:
        future: asyncio.Future[np.ndarray] = asyncio.get_running_loop().create_future()
        await self.queue.put((texts, future))
        return await future

    async def _worker(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            items = [await self.queue.get()]
            size = len(items[0][0])
            deadline = loop.time() + self.max_wait_s
            while size < self.max_batch and (left := deadline - loop.time()) > 0:
                try:
                    item = await asyncio.wait_for(self.queue.get(), left)
                except TimeoutError:
                    break
                items.append(item)
                size += len(item[0])
            texts = [t for batch, _ in items for t in batch]
            try:
                logits = await self.runner(self.predictor.predict_logits, texts)
            except Exception as err:  # noqa: BLE001 - handed to the waiting requests
                if len(items) == 1:
                    _settle(items[0][1], error=err)
                    continue
                # One bad request must not fail the others batched with it: run each alone.
                for batch, fut in items:
                    try:
                        _settle(fut, await self.runner(self.predictor.predict_logits, batch))
                    except Exception as single_err:  # noqa: BLE001
                        _settle(fut, error=single_err)
                continue
            start = 0
            for batch, fut in items:
                _settle(fut, logits[start:start + len(batch)])
                start += len(batch)


def _settle(fut: asyncio.Future, result: Any = None, error: BaseException | None = None) -> None:
    # A request whose client went away has a cancelled future: leave it alone.
    if fut.done():
        return
    if error is not None:
        fut.set_exception(error)
    else:
        fut.set_result(result)


# --------------------------------------------------------------------------- app


class RequestLog:
    """Pure ASGI middleware: one log line per request (client, method, path, status, milliseconds)."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        t0 = time.perf_counter()
        status = 500

        async def send_status(message: dict) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_status)
        finally:
            client = scope.get("client") or ("-", 0)
            log.info("%s %s %s %d %.2fms", client[0], scope["method"], scope["path"], status,
                     (time.perf_counter() - t0) * 1000)


def create_app(run_dir: str | Path, *, models: list[str] | None = None, threads: int | None = None,
               max_texts: int = _DEFAULTS.max_texts, max_chars: int = _DEFAULTS.max_chars,
               max_body_bytes: int = _DEFAULTS.max_body_bytes, micro_batching_ms: float = 0.0,
               max_batch: int = 64) -> FastAPI:
    """The FastAPI app serving ``models`` (default: every model found) of the run in ``run_dir``."""
    registry = Registry(Path(run_dir), models, threads)
    batchers: dict[str, MicroBatcher] = {}
    runner = ModelRunner()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        runner.start()
        threading.Thread(target=registry.load, name="model-loader", daemon=True).start()
        yield
        for b in batchers.values():
            b.task.cancel()
        runner.stop()

    app = FastAPI(
        title="kdutils sentiment models",
        description="Teacher and BiLSTM student models of one knowledge-distillation run, "
                    "in eager PyTorch and ONNX Runtime (fp32 and int8).",
        version="1.0",
        lifespan=lifespan,
        max_body_size=max_body_bytes,  # FastAPI's limiter: checks Content-Length and the streamed bytes
    )
    app.state.registry = registry
    app.add_middleware(RequestLog)

    @app.exception_handler(RequestValidationError)
    async def invalid_request(request: Request, exc: RequestValidationError) -> JSONResponse:
        # FastAPI's default echoes each bad input back; a 1 MB text would come back in full.
        detail = [{"type": e["type"], "loc": list(e["loc"]), "msg": e["msg"]} for e in exc.errors()]
        return JSONResponse({"detail": detail}, status_code=422)

    request_cls = request_model(max_texts, max_chars)
    errors: dict[int | str, dict[str, Any]] = {
        404: {"model": ErrorBody, "description": "unknown model"},
        413: {"description": f"request body over {max_body_bytes} bytes"},
        500: {"model": ErrorBody, "description": "the model failed; no prediction is returned"},
        503: {"model": ErrorBody, "description": "models are still loading"},
    }

    def ready() -> None:
        if registry.status != "ok":
            raise HTTPException(503, f"models not ready: {registry.status}"
                                + (f" ({registry.detail})" if registry.detail else ""))

    @app.get("/healthz", response_model=Health, responses={503: {"model": Health}})
    def healthz() -> Any:
        body = Health(status=registry.status, models=list(registry.predictors), detail=registry.detail)
        return JSONResponse(body.model_dump(), status_code=200 if registry.status == "ok" else 503)

    @app.get("/ping")
    def ping() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/models", response_model=list[ModelInfo], responses={503: errors[503]})
    def list_models() -> list[ModelInfo]:
        ready()
        return [ModelInfo(**{k: v for k, v in e.describe().items() if k in ModelInfo.model_fields})
                for e in registry.entries.values()]

    @app.post("/noop", response_model=NoopResponse, responses={413: errors[413]})
    async def noop(request: request_cls) -> NoopResponse:  # type: ignore[valid-type]
        t0 = time.perf_counter()
        return NoopResponse(n=len(request.texts), latency_ms=(time.perf_counter() - t0) * 1000)

    @app.post("/predict/{model}", response_model=PredictResponse, responses=errors)
    async def predict(request: request_cls,  # type: ignore[valid-type]
                      model: Annotated[str, PathParam(description="a name listed by GET /models")]) -> PredictResponse:
        ready()
        predictor = registry.predictors.get(model)
        if predictor is None:
            raise HTTPException(404, f"unknown model {model!r}; available: {', '.join(registry.predictors)}")
        texts = list(request.texts)
        t0 = time.perf_counter()
        try:
            if micro_batching_ms > 0:
                if model not in batchers:
                    batchers[model] = MicroBatcher(predictor, micro_batching_ms / 1000, max_batch, runner)
                logits = await batchers[model].submit(texts)
            else:
                # The model call blocks: run it on a worker thread, never on the event loop.
                logits = await runner(predictor.predict_logits, texts)
        except Exception as err:  # noqa: BLE001 - reported as a 500 with the cause
            log.exception("model %s failed", model)
            raise HTTPException(500, f"model {model} failed: {type(err).__name__}: {err}") from None
        latency_ms = (time.perf_counter() - t0) * 1000
        probs = softmax(logits)
        names = predictor.label_names
        preds = [Prediction(label=names[int(i)], label_id=int(i),
                            probabilities={n: float(p) for n, p in zip(names, row, strict=True)})
                 for i, row in zip(probs.argmax(axis=1), probs, strict=True)]
        return PredictResponse(model=model, predictions=preds, latency_ms=latency_ms)

    return app


# --------------------------------------------------------------------------- command line


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m kdutils.serve", description=__doc__.split("\n\n")[0])
    p.add_argument("--run", required=True, type=Path, help="run directory, e.g. outputs/default")
    p.add_argument("--host", default="127.0.0.1", help="bind address (default loopback only)")
    p.add_argument("--port", type=int, default=8000)
    p.add_argument("--models", default=None, help="comma-separated served names (default: all found)")
    p.add_argument("--threads", type=int, default=_DEFAULTS.server_threads,
                   help="torch and onnxruntime intra-op threads")
    p.add_argument("--max-texts", type=int, default=_DEFAULTS.max_texts)
    p.add_argument("--max-chars", type=int, default=_DEFAULTS.max_chars)
    p.add_argument("--max-body-bytes", type=int, default=_DEFAULTS.max_body_bytes)
    p.add_argument("--micro-batching-ms", type=float, default=0.0, help="0 = off")
    p.add_argument("--max-batch", type=int, default=64, help="largest micro-batch, in texts")
    p.add_argument("--log-level", default="info")
    args = p.parse_args(argv)
    if not (args.run / "models").is_dir():
        p.error(f"--run {args.run}: no models/ directory (run notebooks 02-04 first)")
    if args.threads < 1 or args.max_texts < 1 or args.max_chars < 1 or args.max_body_bytes < 1:
        p.error("--threads, --max-texts, --max-chars and --max-body-bytes must be positive")
    return args


def main(argv: list[str] | None = None) -> None:
    import uvicorn

    args = parse_args(argv)
    # Set before torch/onnxruntime create their pools, so every library uses the stated threads.
    for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
        os.environ[var] = str(args.threads)
    logging.basicConfig(level=args.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s %(message)s")
    models = [m.strip() for m in args.models.split(",") if m.strip()] if args.models else None
    app = create_app(args.run, models=models, threads=args.threads, max_texts=args.max_texts,
                     max_chars=args.max_chars, max_body_bytes=args.max_body_bytes,
                     micro_batching_ms=args.micro_batching_ms, max_batch=args.max_batch)
    # access_log off: RequestLog above already writes one line per request.
    uvicorn.run(app, host=args.host, port=args.port, log_level=args.log_level, access_log=False)


if __name__ == "__main__":
    main()
