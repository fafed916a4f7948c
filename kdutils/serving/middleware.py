"""The server's ASGI middleware: a log line per request (:class:`RequestLog`, which also counts the
requests in flight) and a deadline for a request's body (:class:`BodyDeadline`)."""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Callable
from typing import Any

from fastapi import HTTPException, Request
from fastapi.routing import APIRoute

log = logging.getLogger("kdutils.serving.app")


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
