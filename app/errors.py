"""One error type for the HTTP layer, mapped to TensorFlow Serving's statuses.

Handlers raise a `ServingError` subclass; `install(app)` turns it into `{"error": "...",
"request_id": "..."}` with its status. Anything else is logged with its traceback and
answered with a generic 500 that reveals no internals.
"""

from __future__ import annotations

import logging
import re

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import JSONResponse

from app import tracing

log = logging.getLogger(__name__)
_ABSOLUTE_PATH = re.compile(r"(?<![\w.])/(?:[\w.\-]+/)+[\w.\-]*")


def redact_paths(message: str) -> str:
    """Library messages (TensorFlow's) may name files on the server; clients see `<path>`."""
    return _ABSOLUTE_PATH.sub("<path>", message)


class ServingError(Exception):
    status = 500
    headers: dict[str, str] = {}

    def __init__(self, message: str):
        super().__init__(message)
        self.message = message


class InvalidInput(ServingError):
    status = 400


class Unauthorized(ServingError):
    status = 401
    headers = {"WWW-Authenticate": "Bearer"}


class NotFound(ServingError):
    status = 404


class Conflict(ServingError):
    """The request cannot be applied in the server's present setup (gRPC: FAILED_PRECONDITION)."""

    status = 409


class PayloadTooLarge(ServingError):
    status = 413


class BodyTooLarge(PayloadTooLarge):
    """The body passed the limit: closing the connection spares reading the rest of it."""

    headers = {"Connection": "close"}


class UnsupportedMediaType(ServingError):
    status = 415


class Overloaded(ServingError):
    """The queue cannot take the request in time: retry shortly, or on another replica."""

    status = 503
    headers = {"Retry-After": "1"}


class WouldMissDeadline(Overloaded):
    """Admission's estimate: the queue ahead ends past the request's deadline. Over gRPC, when
    the deadline was the client's own, that is DEADLINE_EXCEEDED rather than UNAVAILABLE."""


class NotReady(ServingError):
    """Models are still loading (or none is served yet)."""

    status = 503
    headers = {"Retry-After": "1"}


class DeadlineExceeded(ServingError):
    status = 504


class ModelFailed(ServingError):
    """The model itself raised while running a batch."""

    status = 500


def error_response(status: int, message: str, headers: dict[str, str] | None = None):
    """`{"error": ..., "request_id": ...}`: the id also names the request's log lines."""
    body = {"error": message}
    request_id = tracing.current_id()
    if request_id is not None:
        body["request_id"] = request_id
    return JSONResponse(body, status_code=status, headers=headers)


def serving_error_response(err: ServingError):
    return error_response(err.status, err.message, err.headers or None)


def internal_error(request: Request):
    """Anything unexpected: the traceback goes to the log, the client learns nothing inside."""
    log.exception("unhandled error on %s %s", request.method, request.url.path)
    return error_response(500, "internal error; the server log has the details")


def to_response(request: Request, err: Exception):
    """The one mapping from an exception to its answer, for FastAPI's handlers and the fast
    path alike (call it inside the `except` block, so an internal error logs its traceback)."""
    if isinstance(err, ServingError):
        return serving_error_response(err)
    return internal_error(request)


def install(app: FastAPI) -> None:
    @app.exception_handler(ServingError)
    async def serving_error(request: Request, err: ServingError):
        return to_response(request, err)

    @app.exception_handler(RequestValidationError)
    async def validation_error(_: Request, err: RequestValidationError):
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in err.errors())
        return error_response(400, f"invalid request: {problems}")

    @app.exception_handler(StarletteHTTPException)
    async def http_error(_: Request, err: StarletteHTTPException):
        message = err.detail if isinstance(err.detail, str) else "request failed"
        if err.status_code == 404:
            message = "no such route; see /docs for the API"
        if err.status_code == 405:
            message = "method not allowed on this route; see /docs for the API"
        return error_response(err.status_code, message, getattr(err, "headers", None))

    @app.exception_handler(Exception)
    async def unexpected(request: Request, err: Exception):
        return to_response(request, err)
