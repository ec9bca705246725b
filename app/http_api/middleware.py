"""ASGI middleware: the request body limit, enforced before a body is read whole, and the
count of requests in progress that lets a batcher stop waiting early (app.serving.traffic)."""

from __future__ import annotations

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.errors import BodyTooLarge, error_response
from app.serving.traffic import Traffic


class CountRequests:
    """Counts HTTP requests from their first byte until their response is sent."""

    def __init__(self, app: ASGIApp, traffic: Traffic):
        self.app = app
        self.traffic = traffic

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        self.traffic.enter()
        try:
            await self.app(scope, receive, send)
        finally:
            self.traffic.leave()


class BodyLimit:
    """413 for bodies over `limit` bytes: at once when Content-Length says so, else as soon
    as the streamed bytes pass the limit (the route's read raises `PayloadTooLarge`)."""

    def __init__(self, app: ASGIApp, limit: int):
        self.app = app
        self.limit = limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = next((v for k, v in scope["headers"] if k == b"content-length"), b"")
        if declared.isdigit() and int(declared) > self.limit:
            response = error_response(413, f"request body of {int(declared)} bytes exceeds "
                                           f"the limit of {self.limit} bytes",
                                      BodyTooLarge.headers)
            await response(scope, receive, send)
            return
        seen = 0

        async def limited_receive() -> Message:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.limit:
                    raise BodyTooLarge(f"request body exceeds the limit of {self.limit} "
                                          "bytes")
            return message

        await self.app(scope, limited_receive, send)
