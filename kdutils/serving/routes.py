"""The server's routes, one ``APIRouter`` per concern; :func:`kdutils.serving.app.create_app` includes them.

* :func:`docs_router`: ``GET /`` (the try page for a browser, where things are for any other
  client) and ``GET /docs`` (the API docs, from files installed with the package);
* :func:`health_router`: ``GET /healthz``, ``GET /ping`` and ``GET /models``;
* :func:`predict_router`: ``POST /predict/{model}`` and ``POST /noop``.

The try page's own routes are :func:`kdutils.serving.page.page_router`.
"""

# No `from __future__ import annotations`: FastAPI resolves the endpoint annotations at runtime,
# and the request model is a local of predict_router (built with the server's limits).

import logging
import time
from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Request
from fastapi import Path as PathParam
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import HTMLResponse, JSONResponse, Response
from pydantic import BaseModel

from kdutils.data.text import tokenize
from kdutils.inference.predictors import EmptyTextError
from kdutils.metrics import softmax
from kdutils.serving.middleware import ECHO_CHARS, InFlight, StrictJSONRoute
from kdutils.serving.page import page_response, wants_page
from kdutils.serving.registry import MicroBatcher, ModelRunner, Registry, timed
from kdutils.serving.schemas import Health, ModelInfo, NoopResponse, PredictResponse

log = logging.getLogger("kdutils.serving.app")


def require_ready(registry: Registry) -> None:
    """503 (HTTPException) until every model is loaded, with the registry's status and detail."""
    if registry.status != "ok":
        raise HTTPException(503, f"models not ready: {registry.status}"
                            + (f" ({registry.detail})" if registry.detail else ""))


def docs_router(registry: Registry) -> APIRouter:
    """``GET /`` (the try page in a browser, else a JSON index of the API) and ``GET /docs``."""
    router = APIRouter(route_class=StrictJSONRoute)

    @router.get("/", include_in_schema=False)
    async def root(request: Request) -> Response:
        if wants_page(request.headers.get("accept")):  # a browser: the page to try the models
            return page_response()
        return JSONResponse({"service": request.app.title, "docs": "/docs", "openapi": "/openapi.json",
                             "models": "/models", "health": "/healthz", "page": "GET / from a browser",
                             "predict": "POST /predict/{model} with JSON {\"texts\": [\"...\"]}",
                             "serving": sorted(registry.predictors)})

    @router.get("/docs", include_in_schema=False)
    async def docs(request: Request) -> HTMLResponse:
        return get_swagger_ui_html(openapi_url="/openapi.json", title=request.app.title + " - API docs",
                                   swagger_js_url="/static-docs/swagger-ui-bundle.js",
                                   swagger_css_url="/static-docs/swagger-ui.css",
                                   swagger_favicon_url="/static-docs/favicon.png")

    return router


def health_router(registry: Registry, errors: dict[int | str, dict[str, Any]]) -> APIRouter:
    """``GET /healthz`` (200 once loaded, 503 before or on failure), ``GET /ping`` and ``GET /models``."""
    router = APIRouter(route_class=StrictJSONRoute)

    @router.get("/healthz", response_model=Health, responses={503: {"model": Health}})
    async def healthz() -> Any:
        body = Health(status=registry.status, models=list(registry.predictors), detail=registry.detail)
        return JSONResponse(body.model_dump(), status_code=200 if registry.status == "ok" else 503)

    @router.get("/ping")
    async def ping() -> JSONResponse:
        # async: answered on the event loop, no thread hand-off (the bare cost of a request).
        return JSONResponse({"status": "ok"})

    @router.get("/models", response_model=list[ModelInfo], responses={503: errors[503]})
    async def list_models() -> list[ModelInfo]:
        require_ready(registry)
        return [ModelInfo(**{k: v for k, v in e.describe().items() if k in ModelInfo.model_fields})
                for e in registry.entries.values()]

    return router


def _empty_error(err: EmptyTextError) -> JSONResponse:
    detail = [{"type": "no_tokens", "loc": ["body", "texts", i], "msg": str(err)} for i in err.indices]
    return JSONResponse({"detail": detail}, status_code=422)


def predict_router(registry: Registry, request_cls: type[BaseModel], errors: dict[int | str, dict[str, Any]], *,
                   state: Any, runner: ModelRunner, batchers: dict[str, MicroBatcher], in_flight: InFlight,
                   batching: bool, max_batch: int, inline_s: float) -> APIRouter:
    """``POST /predict/{model}`` and ``POST /noop`` with the request schema ``request_cls``.

    A model call expected to take at most ``inline_s`` runs on the event loop when it is the only
    request in flight (counted in ``state.inline_calls``); with ``batching``, calls of a
    batch-invariant model go through its :class:`MicroBatcher` (kept in ``batchers``, up to
    ``max_batch`` texts); every other call runs on ``runner``'s worker threads.
    """
    router = APIRouter(route_class=StrictJSONRoute)

    @router.post("/noop", response_model=NoopResponse, responses={413: errors[413], 415: errors[415]})
    async def noop(request: request_cls) -> JSONResponse:  # type: ignore[valid-type]
        t0 = time.perf_counter()
        empty = [i for i, t in enumerate(request.texts) if not tokenize(t)]
        if empty:
            return _empty_error(EmptyTextError(empty, "the student word tokenizer"))
        return JSONResponse({"model": "noop", "n": len(request.texts),
                             "latency_ms": (time.perf_counter() - t0) * 1000})

    @router.post("/predict/{model}", response_model=PredictResponse, responses=errors)
    async def predict(request: request_cls,  # type: ignore[valid-type]
                      model: Annotated[str, PathParam(description="a name listed by GET /models")]) -> JSONResponse:
        require_ready(registry)
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
                state.inline_calls += 1
                logits, model_s = timed(predictor.predict_nonempty, texts)
            elif batching and predictor.batch_invariant:
                if model not in batchers:
                    batchers[model] = MicroBatcher(predictor.predict_nonempty, max_batch, runner)
                logits, model_s = await batchers[model].submit_timed(texts)
            else:
                # The model call blocks: run it on a worker thread, never on the event loop.
                logits, model_s = await runner(timed, predictor.predict_nonempty, texts)
        except EmptyTextError as err:
            return _empty_error(err)
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
        return JSONResponse({"model": model, "predictions": preds, "latency_ms": latency_ms,
                             "model_ms": model_s * 1000})

    return router
