"""What every gRPC call passes on its way to the predict core, as HTTP requests pass the
middleware: the request id, the request count (app.serving.traffic), the API key, the client's
deadline, and one mapping from tfserve's errors to gRPC status codes with the same text as the
REST error bodies.

`x-request-id` in the call's metadata is kept when valid (made otherwise) and returned in the
trailing metadata, errors included; log lines and the request log carry it, and the method
path (`/tensorflow.serving.PredictionService/Predict`) stands where HTTP has the URL path.
"""

from __future__ import annotations

import functools
import logging
import random
import time
from collections.abc import Awaitable, Callable
from typing import Any

import grpc

from app import errors, tracing
from app.serving import api_key
from app.serving.predict import PredictCore

log = logging.getLogger(__name__)

# ServingError.status -> the gRPC code TF Serving and Triton answer for the same trouble
CODES = {
    400: grpc.StatusCode.INVALID_ARGUMENT,
    401: grpc.StatusCode.UNAUTHENTICATED,
    404: grpc.StatusCode.NOT_FOUND,
    409: grpc.StatusCode.FAILED_PRECONDITION,
    413: grpc.StatusCode.RESOURCE_EXHAUSTED,
    415: grpc.StatusCode.INVALID_ARGUMENT,
    503: grpc.StatusCode.UNAVAILABLE,
    504: grpc.StatusCode.DEADLINE_EXCEEDED,
}
INTERNAL_MESSAGE = "internal error; the server log has the details"

Handler = Callable[..., Awaitable[Any]]


def code_of(err: errors.ServingError, client_deadline: bool) -> grpc.StatusCode:
    if client_deadline and isinstance(err, errors.WouldMissDeadline):
        return grpc.StatusCode.DEADLINE_EXCEEDED  # the client's deadline cannot be kept
    return CODES.get(err.status, grpc.StatusCode.INTERNAL)


class Call:
    """One gRPC call as a handler sees it: its deadline (monotonic; None: the server's own)."""

    __slots__ = ("context", "deadline", "started")

    def __init__(self, context: grpc.aio.ServicerContext, started: float):
        self.context = context
        self.started = started
        remaining = context.time_remaining()
        self.deadline = None if remaining is None else time.monotonic() + remaining


def _request_id(metadata: dict[str, Any]) -> str:
    given = metadata.get(tracing.HEADER)
    if isinstance(given, str) and tracing.valid(given.encode()):
        return given
    return random.getrandbits(128).to_bytes(16).hex()


def check_key(core: PredictCore, metadata: dict[str, Any]) -> None:
    expected = core.settings.api_key
    if expected is not None:
        given = api_key.bearer_token(metadata.get("authorization")) or metadata.get("x-api-key")
        api_key.verify(given, expected)


def rpc(method: str, protected: bool = True) -> Callable[[Handler], Handler]:
    """A unary servicer method (`method` is its path) wrapped in the call's common steps;
    `protected`: the API key is needed (model calls), as on the HTTP model routes."""

    def wrap(handler: Handler) -> Handler:
        @functools.wraps(handler)
        async def serve(self, request, context: grpc.aio.ServicerContext):
            core: PredictCore = self.core
            metadata = dict(context.invocation_metadata() or ())
            request_id = _request_id(metadata)
            tracing.CURRENT.set(tracing.RequestContext(request_id, method))
            context.set_trailing_metadata(((tracing.HEADER, request_id),))
            call = Call(context, time.perf_counter())
            traffic = core.manager.traffic
            if traffic is not None:
                traffic.enter()
            try:
                if protected:
                    check_key(core, metadata)
                return await handler(self, request, call)
            except errors.ServingError as err:
                code = code_of(err, call.deadline is not None)
                await context.abort(code, err.message)
            except (grpc.aio.AbortError, KeyboardInterrupt):
                raise
            except Exception:
                log.exception("unhandled error in %s", method)
                await context.abort(grpc.StatusCode.INTERNAL, INTERNAL_MESSAGE)
            finally:
                if traffic is not None:
                    traffic.leave()

        return serve

    return wrap
