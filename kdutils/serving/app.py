"""The prediction service: the trained models of a run behind one FastAPI app.

    python -m kdutils.serving.app --run outputs/<profile> [--host 127.0.0.1] [--port 8000]
        [--models student_distilled,student_distilled@onnx | all] [--threads 1] [--no-batching]

Endpoints:

* ``GET /``: in a browser (``Accept: text/html``), a page to try the served models side by side
  (:mod:`kdutils.serving.page`, which also serves ``GET /page/info`` and the page's files); for any other
  client, where things are (``/docs``, ``/models``, ``POST /predict/{model}``).
* ``GET /docs``: interactive API docs, served from files installed with the package (no CDN).
* ``GET /healthz``: 200 ``{"status": "ok", "models": [...]}`` once every model is
  loaded; 503 while loading (models load in a background thread, so the port
  answers at once) or when loading failed.
* ``GET /models``: name, runtime, kind, parameters, size on disk of each model.
* ``POST /predict/{model}`` with ``{"texts": [...]}``: one prediction per text, in
  order, the server-side latency and the model call's own time. Unknown model: 404.
  Malformed JSON, missing or empty ``texts``, a non-string text, a text empty after stripping or with no
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

This module builds the app (:func:`create_app`: limits, middleware, error handlers) and runs it
(:func:`main`). The routes are :mod:`kdutils.serving.routes` (one router per concern) and
:mod:`kdutils.serving.page`; the schemas :mod:`kdutils.serving.schemas`; loading and running the
models :mod:`kdutils.serving.registry`; the middleware :mod:`kdutils.serving.middleware`.
"""

# No `from __future__ import annotations`: FastAPI resolves the endpoint annotations at runtime,
# and the request model is a local of create_app.

# No `from __future__ import annotations`: FastAPI resolves the endpoint annotations at runtime.

import argparse
import logging
import os
import threading
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import uvicorn
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.staticfiles import StaticFiles
from starlette.exceptions import HTTPException as StarletteHTTPException

from kdutils.serving.middleware import (
    ECHO_CHARS,
    BodyDeadline,
    HeadAsGet,
    InFlight,
    RequestLog,
    StrictJSONRoute,
)
from kdutils.serving.page import page_router
from kdutils.serving.registry import DEFAULT_MODELS, MicroBatcher, ModelRunner, Registry
from kdutils.serving.routes import docs_router, health_router, predict_router
from kdutils.serving.schemas import error_responses, request_model
from kdutils.study import steps
from kdutils.study.config import DeployConfig
from kdutils.study.runs import RunDir

# torch is imported where an eager model needs it: a server of ONNX models never loads torch.
# fastapi_offline only serves /docs.

log = logging.getLogger("kdutils.serving.app")

_DEFAULTS = DeployConfig()
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



def _docs_static_dir() -> Path:
    # Swagger UI's files as shipped in the fastapi-offline wheel (pinned): /docs needs no CDN.
    import fastapi_offline

    return Path(fastapi_offline.__file__).parent / "static"


def create_app(run_dir: str | Path, *, models: list[str] | None = None, threads: int | None = None,
               max_texts: int = _DEFAULTS.max_texts, max_chars: int = _DEFAULTS.max_chars,
               max_body_bytes: int | None = None, batching: bool = True, max_batch: int = 64,
               body_timeout_s: float = BODY_TIMEOUT_S, inline_ms: float = INLINE_MS) -> FastAPI:
    """The FastAPI app serving ``models`` of the run in ``run_dir``.

    ``models``: served names, ``["all"]`` for every model found, None for :data:`~kdutils.serving.registry.DEFAULT_MODELS`.
    ``max_body_bytes`` defaults to :func:`min_body_bytes` of the text limits; a smaller value
    raises ValueError (clients could not send what the schema allows). ``batching``: gather
    requests that arrive while a model is busy (see :class:`~kdutils.serving.registry.MicroBatcher`). A model call expected
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
    app.state.registry = registry
    app.state.batchers = batchers
    app.state.max_body_bytes = max_body_bytes
    app.state.inline_calls = 0
    # Set before any route is added: every route of the app itself reads its JSON body strictly
    # (the routers of kdutils.serving.routes are made with the same route class).
    app.router.route_class = StrictJSONRoute
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
    errors = error_responses(body_timeout_s, max_body_bytes)
    app.include_router(page_router(registry.run_dir, lambda: registry.entries))
    app.include_router(docs_router(registry))
    app.include_router(health_router(registry, errors))
    app.include_router(predict_router(registry, request_cls, errors, state=app.state, runner=runner,
                                      batchers=batchers, in_flight=in_flight, batching=batching,
                                      max_batch=max_batch, inline_s=inline_s))
    return app


# --------------------------------------------------------------------------- command line


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """The command line of ``python -m kdutils.serving.app``, checked (``--cpus`` parsed to a set)."""
    p = argparse.ArgumentParser(prog="python -m kdutils.serving.app", description=__doc__.split("\n\n")[0])
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
    """``python -m kdutils.serving.app``: serve a run's models with uvicorn until stopped."""
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
