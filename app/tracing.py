"""Every request traceable: its id, from the client or made here, on the response, in the logs.

`X-Request-ID` is taken from the request when it is printable ASCII of at most 128
characters, generated otherwise, and returned on every response, errors included. The id
and the request's path live in a context variable for the request's task, where error
bodies, the log lines (uvicorn's access line included) and the request log find them.
"""

from __future__ import annotations

import contextvars
import logging
import random
from dataclasses import dataclass

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.http_api.access_log import AccessLog

HEADER = "x-request-id"
MAX_LENGTH = 128


@dataclass(frozen=True, slots=True)
class RequestContext:
    id: str
    path: str


CURRENT: contextvars.ContextVar[RequestContext | None] = contextvars.ContextVar(
    "request", default=None)


def current_id() -> str | None:
    context = CURRENT.get()
    return context.id if context else None


def valid(given: bytes) -> bool:
    return 0 < len(given) <= MAX_LENGTH and all(0x20 < c < 0x7F for c in given)


class RequestID:
    """ASGI middleware (outermost but CORS): the id in, the id out, and the access line
    (app.http_api.access_log) written as the response starts, with the same id."""

    def __init__(self, app: ASGIApp, access_log: AccessLog | None = None):
        self.app = app
        self.access_log = access_log

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        given = next((v for k, v in scope["headers"] if k == b"x-request-id"), b"")
        # 128 random bits in hex, as OpenTelemetry makes trace ids: an id to find, not a
        # secret, so no system call for the kernel's randomness per request
        request_id = given.decode() if valid(given) else random.getrandbits(128).to_bytes(16).hex()
        CURRENT.set(RequestContext(request_id, scope["path"]))
        header = (b"x-request-id", request_id.encode())
        access_log = self.access_log

        async def send_with_id(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", []), header]
                if access_log is not None:
                    access_log.add(scope, message["status"], request_id)
            await send(message)

        await self.app(scope, receive, send_with_id)


class RequestIDFilter(logging.Filter):
    """Gives every log record a `request_id` ("-" outside requests)."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.request_id = current_id() or "-"
        return True
