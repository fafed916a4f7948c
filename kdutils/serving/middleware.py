"""The server's ASGI middleware: a log line per request (:class:`RequestLog`, which also counts the
requests in flight) and a deadline for a request's body (:class:`BodyDeadline`)."""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

from fastapi import HTTPException

log = logging.getLogger("kdutils.serving.app")


class InFlight:
    """The number of HTTP requests the server is handling right now (kept by RequestLog)."""

    def __init__(self) -> None:
        self.n = 0


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
            log.info("%s %s %s %d %.2fms", client[0], scope["method"], scope["path"], status,
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
