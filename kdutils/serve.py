"""The prediction service: the trained models of a run behind one FastAPI app.

    python -m kdutils.serve --run outputs/<profile> [--host 127.0.0.1] [--port 8000]
        [--models student_distilled,student_distilled@onnx | all] [--threads 1] [--no-batching]

Endpoints:

* ``GET /``: where things are (``/docs``, ``/models``, ``POST /predict/{model}``).
* ``GET /docs``: interactive API docs, served from files installed with the package (no CDN).
* ``GET /healthz``: 200 ``{"status": "ok", "models": [...]}`` once every model is
  loaded; 503 while loading (models load in a background thread, so the port
  answers at once) or when loading failed.
* ``GET /models``: name, runtime, kind, parameters, size on disk of each model.
* ``POST /predict/{model}`` with ``{"texts": [...]}``: one prediction per text, in
  order, and the server-side latency. Unknown model: 404. Malformed JSON, missing
  or empty ``texts``, a non-string text, a text empty after stripping or with no
  tokens for the model's own encoder (e.g. only zero-width characters), more than
  ``max_texts`` texts or a text over ``max_chars`` characters: 422. A body that is
  not ``application/json``: 415. A body over ``max_body_bytes`` (checked on
  ``Content-Length`` and on the bytes streamed): 413; the limit always admits
  ``max_texts`` texts of ``max_chars`` characters as ``json.dumps`` escapes them.
  A body not complete within ``body_timeout_s``: 408 and the connection is closed.
  A failure inside a model: 500 with the error; never a made-up prediction.
* ``GET /ping`` and ``POST /noop`` (same request validation as ``/predict``, no
  model; emptiness is judged by the student word tokenizer): the baseline for the
  cost of HTTP itself.

Model calls run in a worker thread, except a call expected to take under
``inline_ms`` (2 ms) when it is the only request in flight, which runs on the
event loop (a thread hand-off would cost more). With ``batching`` on (the default),
requests to one model that arrive while that model is busy are gathered and
run as the next batch (up to ``max_batch`` texts); a request that finds the
model idle runs at once, so batching costs nothing at low load. Runtimes whose
answers depend on batch composition (int8 ONNX) are never batched across
requests. The server binds 127.0.0.1 unless told otherwise, reads weights only
from safetensors or ONNX files, and logs one line per request.
"""

# No `from __future__ import annotations`: FastAPI resolves the endpoint annotations at runtime,
# and the request model is a local of create_app.
import argparse
import asyncio
import json
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
import uvicorn
from fastapi import FastAPI, HTTPException, Request
from fastapi import Path as PathParam
from fastapi.exceptions import RequestValidationError
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import HTMLResponse, JSONResponse
from fastapi.routing import APIRoute
from fastapi.staticfiles import StaticFiles
from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    StrictStr,
    StringConstraints,
    create_model,
)
from starlette.exceptions import HTTPException as StarletteHTTPException

from kdutils import steps
from kdutils.config import DeployConfig
from kdutils.metrics import softmax
from kdutils.predictors import EmptyTextError, ModelEntry, Predictor, discover, make_predictor
from kdutils.runs import RunDir

# torch and kdutils.text (which imports torch) are imported where an eager model or the no-op
# endpoint needs them: a server of ONNX models never loads torch. fastapi_offline only serves /docs.

log = logging.getLogger("kdutils.serve")

_DEFAULTS = DeployConfig()
EXAMPLE_TEXTS = ["a gripping , beautifully acted film .", "the plot is thin and the jokes fall flat ."]
# Served when --models is not given: the distilled student (eager and ONNX) and the ONNX
# teacher, those of them the run has. Every model of a run at once is ~900 MB (default profile).
DEFAULT_MODELS = ("student_distilled", "student_distilled@onnx", "teacher@onnx")
# Seconds a replica waits for a request's body to arrive in full (nginx's client_body_timeout
# is 60 s; a replica reached directly must not wait longer than that).
BODY_TIMEOUT_S = 30.0
# The most bytes one character can take in JSON as json.dumps writes it by default
# (ensure_ascii): a character outside the BMP becomes a surrogate pair, "\ud83d\ude00".
_MAX_ESCAPED_BYTES_PER_CHAR = 12
# A model call expected to take at most this long runs on the event loop when it is the only
# request in flight: the hand-off to a worker thread and back costs ~0.1 ms on a quiet core and
# milliseconds on a busy one, and an idle loop has nothing else to do meanwhile.
INLINE_MS = 2.0


def min_body_bytes(max_texts: int, max_chars: int) -> int:
    """Bytes of the largest valid request, every character escaped as ``json.dumps`` does by default.

    ``{"texts": [`` + per text two quotes, ``", "`` and up to 12 bytes a character + ``]}``,
    with slack for whitespace. A body limit below this would refuse requests that are within
    the advertised ``max_texts`` x ``max_chars``.
    """
    if max_texts < 1 or max_chars < 1:
        raise ValueError(f"max_texts and max_chars must be positive, got {max_texts}, {max_chars}")
    return 64 + max_texts * (_MAX_ESCAPED_BYTES_PER_CHAR * max_chars + 4)


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
                                           description=f"1 to {max_texts} texts of at most {max_chars} "
                                                       "characters each, each with at least one token "
                                                       "(word, number or punctuation mark)")], ...),
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
        self.pending: list[tuple[list[str], asyncio.Future[np.ndarray]]] = []
        self.batch_sizes: list[int] = []  # requests per model call, for tests and diagnostics
        self._drainer: asyncio.Task | None = None

    async def submit(self, texts: list[str]) -> np.ndarray:
        """Logits for ``texts``; raises what the model call raised for them."""
        if not self.busy:
            self.busy = True
            try:
                self.batch_sizes.append(1)
                return await self.runner(self.fn, texts)
            finally:
                self._release()
        future: asyncio.Future[np.ndarray] = asyncio.get_running_loop().create_future()
        self.pending.append((texts, future))
        return await future

    def _release(self) -> None:
        if self.pending:
            self._drainer = asyncio.get_running_loop().create_task(self._drain())
        else:
            self.busy = False

    def _take(self) -> list[tuple[list[str], asyncio.Future[np.ndarray]]]:
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
                    logits = await self.runner(self.fn, texts)
                except Exception as err:  # noqa: BLE001 - handed to the waiting requests
                    if len(items) == 1:
                        _settle(items[0][1], error=err)
                        continue
                    # One bad request must not fail the others batched with it: run each alone.
                    for batch, fut in items:
                        try:
                            _settle(fut, await self.runner(self.fn, batch))
                        except Exception as single_err:  # noqa: BLE001
                            _settle(fut, error=single_err)
                    continue
                start = 0
                for batch, fut in items:
                    _settle(fut, logits[start:start + len(batch)])
                    start += len(batch)
        finally:
            self.busy = False
            self._drainer = None

    def cancel(self) -> None:
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


# --------------------------------------------------------------------------- app


class InFlight:
    """The number of HTTP requests the server is handling right now (kept by RequestLog)."""

    def __init__(self) -> None:
        self.n = 0


# How much of a client's path or model name an answer or a log line repeats.
ECHO_CHARS = 200


class RequestLog:
    """Pure ASGI middleware: one log line per request (client, method, path, status, milliseconds).

    Also counts the requests in flight into ``in_flight``.
    """

    def __init__(self, app: Any, in_flight: InFlight | None = None) -> None:
        self.app = app
        self.in_flight = in_flight or InFlight()

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        t0 = time.perf_counter()
        status = 500
        self.in_flight.n += 1

        async def send_status(message: dict) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_status)
        finally:
            self.in_flight.n -= 1
            client = scope.get("client") or ("-", 0)
            log.info("%s %s %s %d %.2fms", client[0], scope["method"], scope["path"][:ECHO_CHARS], status,
                     (time.perf_counter() - t0) * 1000)


class BodyDeadline:
    """Pure ASGI middleware: a request's body must arrive in full within ``timeout_s``.

    uvicorn bounds the idle time between requests (``timeout_keep_alive``) but not a body that
    stops arriving: a client announcing ``Content-Length: 100`` and sending 8 bytes would hold
    the connection forever. Past the deadline the request gets 408 and the connection closes.
    """

    def __init__(self, app: Any, timeout_s: float) -> None:
        self.app = app
        self.timeout_s = timeout_s

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        deadline = asyncio.get_running_loop().time() + self.timeout_s
        body_done = False

        async def receive_by_deadline() -> dict:
            nonlocal body_done
            if body_done:  # later receives wait for a disconnect, which has no deadline
                return await receive()
            left = deadline - asyncio.get_running_loop().time()
            try:
                message = await asyncio.wait_for(receive(), max(left, 0.0))
            except TimeoutError:
                # An HTTPException: FastAPI's body reader passes it through as the response.
                raise HTTPException(408, f"request body not received in full within {self.timeout_s:g} s",
                                    headers={"Connection": "close"}) from None
            body_done = message["type"] != "http.request" or not message.get("more_body", False)
            return message

        await self.app(scope, receive_by_deadline, send)


class HeadAsGet:
    """Pure ASGI middleware: a HEAD request is answered as its GET would be, without the body.

    RFC 9110 asks a server that supports GET to support HEAD (uptime checkers send it), while
    FastAPI routes a ``@app.get`` for GET only and answers HEAD with 405. Every GET route, present
    and future, gets HEAD here, with the status and headers (``Content-Length`` included) of its
    GET. The route sees GET; the original method is kept in the scope as ``"kdutils.head"`` for
    error messages, and the server's own scope (uvicorn's) still says HEAD.
    """

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] != "http" or scope["method"] != "HEAD":
            return await self.app(scope, receive, send)
        done = False

        async def send_without_body(message: dict) -> None:
            nonlocal done
            if message["type"] != "http.response.body":
                return await send(message)
            # One empty, final body message however many the GET would have sent.
            if not done and not message.get("more_body", False):
                done = True
                await send({"type": "http.response.body", "body": b"", "more_body": False})

        await self.app({**scope, "method": "GET", "kdutils.head": True}, receive, send_without_body)


class _DuplicateKey(ValueError):
    """A JSON object named one key twice (``args[0]`` is the key)."""


def _reject_duplicate_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in pairs:
        if key in out:
            raise _DuplicateKey(key)
        out[key] = value
    return out


class StrictJSONRequest(Request):
    """A request whose JSON body may name each key of an object once.

    ``json.loads`` keeps the last of two equal keys, so ``{"texts": [A], "texts": [B]}`` would be
    answered for B alone, dropping what the client sent first. A duplicate raises
    ``json.JSONDecodeError`` naming the key, which FastAPI answers as invalid JSON (422).
    """

    async def json(self) -> Any:
        if not hasattr(self, "_json"):
            body = await self.body()
            try:
                self._json = json.loads(body, object_pairs_hook=_reject_duplicate_keys)
            except _DuplicateKey as err:
                key = str(err.args[0])
                text = body.decode("utf-8", "replace")
                raise json.JSONDecodeError(f"duplicate key {key[:ECHO_CHARS]!r}: each key may appear once "
                                           "in an object", text, max(text.rfind(json.dumps(key)), 0)) from None
        return self._json


class StrictJSONRoute(APIRoute):
    """The app's routes: request bodies are read by :class:`StrictJSONRequest`."""

    def get_route_handler(self) -> Callable[[Request], Any]:
        handler = super().get_route_handler()

        async def strict(request: Request) -> Any:
            return await handler(StrictJSONRequest(request.scope, request.receive))

        return strict


def _docs_static_dir() -> Path:
    # Swagger UI's files as shipped in the fastapi-offline wheel (pinned): /docs needs no CDN.
    import fastapi_offline

    return Path(fastapi_offline.__file__).parent / "static"


def create_app(run_dir: str | Path, *, models: list[str] | None = None, threads: int | None = None,
               max_texts: int = _DEFAULTS.max_texts, max_chars: int = _DEFAULTS.max_chars,
               max_body_bytes: int | None = None, batching: bool = True, max_batch: int = 64,
               body_timeout_s: float = BODY_TIMEOUT_S, inline_ms: float = INLINE_MS) -> FastAPI:
    """The FastAPI app serving ``models`` of the run in ``run_dir``.

    ``models``: served names, ``["all"]`` for every model found, None for :data:`DEFAULT_MODELS`.
    ``max_body_bytes`` defaults to :func:`min_body_bytes` of the text limits; a smaller value
    raises ValueError (clients could not send what the schema allows). ``batching``: gather
    requests that arrive while a model is busy (see :class:`MicroBatcher`). A model call expected
    to take at most ``inline_ms`` (from that model's recent calls) runs on the event loop when it
    is the only request in flight; every other call runs on a worker thread (0: never inline).
    """
    needed = min_body_bytes(max_texts, max_chars)
    if max_body_bytes is None:
        max_body_bytes = needed
    elif max_body_bytes < needed:
        raise ValueError(f"max_body_bytes={max_body_bytes} is below the {needed} bytes that {max_texts} texts "
                         f"of {max_chars} characters can take as escaped JSON; raise it or lower max_texts/max_chars")
    inline_s = inline_ms / 1000
    if body_timeout_s <= 0:
        raise ValueError(f"body_timeout_s must be positive, got {body_timeout_s}")
    registry = Registry(Path(run_dir), models, threads)
    batchers: dict[str, MicroBatcher] = {}
    runner = ModelRunner()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        runner.start()
        threading.Thread(target=registry.load, name="model-loader", daemon=True).start()
        yield
        for b in batchers.values():
            b.cancel()
        runner.stop()

    app = FastAPI(
        title="kdutils sentiment models",
        description="Teacher and BiLSTM student models of one knowledge-distillation run, "
                    "in eager PyTorch and ONNX Runtime (fp32 and int8). "
                    f"Limits: {max_texts} texts per request, {max_chars} characters per text, "
                    f"request bodies up to {max_body_bytes} bytes (enough for the largest valid request "
                    f"however its JSON is escaped), sent within {body_timeout_s:g} s.",
        version="1.0",
        lifespan=lifespan,
        max_body_size=max_body_bytes,  # FastAPI's limiter: checks Content-Length and the streamed bytes
        docs_url=None,
        redoc_url=None,
    )
    # Set before any route is added: every route reads its JSON body strictly.
    app.router.route_class = StrictJSONRoute
    app.state.registry = registry
    app.state.batchers = batchers
    app.state.max_body_bytes = max_body_bytes
    app.state.inline_calls = 0
    # Innermost (added first): the request log still records HEAD as HEAD.
    app.add_middleware(HeadAsGet)
    app.add_middleware(BodyDeadline, timeout_s=body_timeout_s)
    in_flight = InFlight()
    app.state.in_flight = in_flight
    app.add_middleware(RequestLog, in_flight=in_flight)
    app.mount("/static-docs", StaticFiles(directory=_docs_static_dir()), name="static-docs")

    @app.exception_handler(RequestValidationError)
    async def invalid_request(request: Request, exc: RequestValidationError) -> JSONResponse:
        content_type = request.headers.get("content-type")
        # FastAPI reads a body as JSON only when its Content-Type says so; otherwise every field
        # "should be a valid dictionary", which names neither the cause nor the fix.
        if request.method == "POST" and "json" not in (content_type or "").split(";")[0].lower():
            got = f"got Content-Type: {content_type[:100]}" if content_type else "no Content-Type was sent"
            return JSONResponse({"detail": f"the request body must be JSON sent with Content-Type: "
                                           f"application/json; {got}"}, status_code=415)
        # FastAPI's default echoes each bad input back; a 1 MB text would come back in full.
        # Except the parser's own message for invalid JSON (what is wrong, such as a duplicate key).
        detail = [{"type": e["type"], "loc": list(e["loc"]),
                   "msg": f"{e['msg']}: {e['ctx']['error']}" if e["type"] == "json_invalid" and e.get("ctx")
                   else e["msg"]} for e in exc.errors()]
        return JSONResponse({"detail": detail}, status_code=422)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        detail = exc.detail
        if exc.detail in ("Not Found", "Method Not Allowed"):  # no route: say where the routes are
            method = "HEAD" if request.scope.get("kdutils.head") else request.method
            detail = (f"{exc.detail}: {method} {request.url.path[:ECHO_CHARS]}. The API: GET /docs; served models: "
                      "GET /models; predictions: POST /predict/{model} with {\"texts\": [...]}")
        return JSONResponse({"detail": detail}, status_code=exc.status_code, headers=exc.headers)

    request_cls = request_model(max_texts, max_chars)
    errors: dict[int | str, dict[str, Any]] = {
        404: {"model": ErrorBody, "description": "unknown model"},
        408: {"model": ErrorBody, "description": f"body not received within {body_timeout_s:g} s"},
        413: {"description": f"request body over {max_body_bytes} bytes"},
        415: {"model": ErrorBody, "description": "body not sent as application/json"},
        500: {"model": ErrorBody, "description": "the model failed; no prediction is returned"},
        503: {"model": ErrorBody, "description": "models are still loading"},
    }

    def ready() -> None:
        if registry.status != "ok":
            raise HTTPException(503, f"models not ready: {registry.status}"
                                + (f" ({registry.detail})" if registry.detail else ""))

    @app.get("/", include_in_schema=False)
    async def root() -> JSONResponse:
        return JSONResponse({"service": app.title, "docs": "/docs", "openapi": "/openapi.json",
                             "models": "/models", "health": "/healthz",
                             "predict": "POST /predict/{model} with JSON {\"texts\": [\"...\"]}",
                             "serving": sorted(registry.predictors)})

    @app.get("/docs", include_in_schema=False)
    async def docs() -> HTMLResponse:
        return get_swagger_ui_html(openapi_url="/openapi.json", title=app.title + " - API docs",
                                   swagger_js_url="/static-docs/swagger-ui-bundle.js",
                                   swagger_css_url="/static-docs/swagger-ui.css",
                                   swagger_favicon_url="/static-docs/favicon.png")

    @app.get("/healthz", response_model=Health, responses={503: {"model": Health}})
    async def healthz() -> Any:
        body = Health(status=registry.status, models=list(registry.predictors), detail=registry.detail)
        return JSONResponse(body.model_dump(), status_code=200 if registry.status == "ok" else 503)

    @app.get("/ping")
    async def ping() -> JSONResponse:
        # async: answered on the event loop, no thread hand-off (the bare cost of a request).
        return JSONResponse({"status": "ok"})

    @app.get("/models", response_model=list[ModelInfo], responses={503: errors[503]})
    async def list_models() -> list[ModelInfo]:
        ready()
        return [ModelInfo(**{k: v for k, v in e.describe().items() if k in ModelInfo.model_fields})
                for e in registry.entries.values()]

    def empty_error(err: EmptyTextError) -> JSONResponse:
        detail = [{"type": "no_tokens", "loc": ["body", "texts", i], "msg": str(err)} for i in err.indices]
        return JSONResponse({"detail": detail}, status_code=422)

    @app.post("/noop", response_model=NoopResponse, responses={413: errors[413], 415: errors[415]})
    async def noop(request: request_cls) -> JSONResponse:  # type: ignore[valid-type]
        from kdutils.text import tokenize

        t0 = time.perf_counter()
        empty = [i for i, t in enumerate(request.texts) if not tokenize(t)]
        if empty:
            return empty_error(EmptyTextError(empty, "the student word tokenizer"))
        return JSONResponse({"model": "noop", "n": len(request.texts),
                             "latency_ms": (time.perf_counter() - t0) * 1000})

    @app.post("/predict/{model}", response_model=PredictResponse, responses=errors)
    async def predict(request: request_cls,  # type: ignore[valid-type]
                      model: Annotated[str, PathParam(description="a name listed by GET /models")]) -> JSONResponse:
        ready()
        predictor = registry.predictors.get(model)
        if predictor is None:
            # Cut like the no-route 404: a 60,000-character name is not echoed whole.
            raise HTTPException(404, f"unknown model {model[:ECHO_CHARS]!r}"
                                + (f" (cut, {len(model):,} characters)" if len(model) > ECHO_CHARS else "")
                                + f"; available: {', '.join(registry.predictors)}")
        texts = request.texts
        t0 = time.perf_counter()
        cost = predictor.seconds_per_text
        try:
            if in_flight.n == 1 and cost is not None and cost * len(texts) <= inline_s:
                # Nothing else in flight and a call this cheap: the two thread hand-offs would cost
                # more than the call, and there is no other request for it to hold up.
                app.state.inline_calls += 1
                logits = predictor.predict_nonempty(texts)
            elif batching and predictor.batch_invariant:
                if model not in batchers:
                    batchers[model] = MicroBatcher(predictor.predict_nonempty, max_batch, runner)
                logits = await batchers[model].submit(texts)
            else:
                # The model call blocks: run it on a worker thread, never on the event loop.
                logits = await runner(predictor.predict_nonempty, texts)
        except EmptyTextError as err:
            return empty_error(err)
        except Exception as err:  # noqa: BLE001 - reported as a 500 with the cause
            log.exception("model %s failed", model)
            raise HTTPException(500, f"model {model} failed: {type(err).__name__}: {err}") from None
        latency_ms = (time.perf_counter() - t0) * 1000
        probs = softmax(logits).tolist()
        names = predictor.label_names
        # Plain dicts, no response objects: the schema above documents them; the numbers are
        # already checked (shape, finite) by the predictor.
        preds = []
        for row in probs:
            i = max(range(len(row)), key=row.__getitem__)
            preds.append({"label": names[i], "label_id": i, "probabilities": dict(zip(names, row, strict=True))})
        return JSONResponse({"model": model, "predictions": preds, "latency_ms": latency_ms})

    return app


# --------------------------------------------------------------------------- command line


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m kdutils.serve", description=__doc__.split("\n\n")[0])
    p.add_argument("--run", required=True, type=Path, help="run directory, e.g. outputs/default")
    p.add_argument("--host", default="127.0.0.1", help="bind address (default loopback only)")
    p.add_argument("--port", type=int, default=8000)
    p.add_argument("--models", default=None,
                   help=f"comma-separated served names, or 'all' (default: {','.join(DEFAULT_MODELS)}, "
                        "those the run has); GET /models lists what is served")
    p.add_argument("--threads", type=int, default=_DEFAULTS.server_threads,
                   help="torch and onnxruntime intra-op threads")
    p.add_argument("--max-texts", type=int, default=_DEFAULTS.max_texts)
    p.add_argument("--max-chars", type=int, default=_DEFAULTS.max_chars)
    p.add_argument("--max-body-bytes", type=int, default=None,
                   help="default and minimum: what --max-texts texts of --max-chars characters take as escaped JSON")
    p.add_argument("--body-timeout", type=float, default=BODY_TIMEOUT_S,
                   help="seconds to wait for a request body to arrive in full (408 after)")
    p.add_argument("--batching", action=argparse.BooleanOptionalAction, default=True,
                   help="gather requests that arrive while a model is busy into its next batch (default on; "
                        "measured never slower than off)")
    p.add_argument("--inline-ms", type=float, default=INLINE_MS,
                   help="run a model call expected to take at most this long on the event loop when it is the "
                        "only request in flight (0: never)")
    p.add_argument("--max-batch", type=int, default=64, help="largest batch, in texts")
    p.add_argument("--cpus", default=None, help="pin the server to these CPU numbers, e.g. 0 or 0,1 (Linux)")
    p.add_argument("--log-level", default="info")
    args = p.parse_args(argv)
    if not RunDir(args.run).models.is_dir():
        p.error(f"--run {args.run}: no models/ directory (run notebooks {steps.span(steps.trainers())} first)")
    if min(args.threads, args.max_texts, args.max_chars, args.max_batch) < 1 or args.body_timeout <= 0:
        p.error("--threads, --max-texts, --max-chars, --max-batch and --body-timeout must be positive")
    needed = min_body_bytes(args.max_texts, args.max_chars)
    if args.max_body_bytes is not None and args.max_body_bytes < needed:
        p.error(f"--max-body-bytes {args.max_body_bytes} is below the {needed} bytes that --max-texts "
                f"{args.max_texts} texts of --max-chars {args.max_chars} characters take as escaped JSON")
    if args.inline_ms < 0:
        p.error(f"--inline-ms must be 0 or more, got {args.inline_ms}")
    if args.cpus is not None:
        try:
            args.cpus = {int(c) for c in args.cpus.split(",")}
        except ValueError:
            p.error(f"--cpus {args.cpus!r}: expected comma-separated CPU numbers such as 0 or 0,1")
    return args


def pin_cpus(cpus: set[int] | None) -> None:
    """Pin this process (and the threads it starts later) to ``cpus``; no-op where unsupported."""
    if cpus and hasattr(os, "sched_setaffinity"):
        usable = cpus & os.sched_getaffinity(0)
        if usable:
            os.sched_setaffinity(0, usable)


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    pin_cpus(args.cpus)
    # Set before torch/onnxruntime create their pools, so every library uses the stated threads.
    for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
        os.environ[var] = str(args.threads)
    logging.basicConfig(level=args.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s %(message)s")
    models = [m.strip() for m in args.models.split(",") if m.strip()] if args.models else None
    app = create_app(args.run, models=models, threads=args.threads, max_texts=args.max_texts,
                     max_chars=args.max_chars, max_body_bytes=args.max_body_bytes, batching=args.batching,
                     max_batch=args.max_batch, body_timeout_s=args.body_timeout, inline_ms=args.inline_ms)
    # httptools + uvloop: uvicorn's C parser and event loop (measured 0.85x the p50 of h11 +
    # asyncio at one request in flight). access_log off: RequestLog writes one line per request.
    uvicorn.run(app, host=args.host, port=args.port, log_level=args.log_level, access_log=False,
                http="httptools", loop="uvloop")


if __name__ == "__main__":
    main()
