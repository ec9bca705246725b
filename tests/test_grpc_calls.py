"""The one mapping from tfserve's errors to gRPC status codes (app.grpc_api.calls), without a
server: the codes TF Serving's and Triton's clients act on. The real server's answers are in
tests/test_grpc_server.py and tests/test_grpc_*.py."""

from __future__ import annotations

import grpc
import pytest

from app import errors
from app.grpc_api.calls import code_of


@pytest.mark.parametrize("error,code", [
    (errors.InvalidInput("x"), grpc.StatusCode.INVALID_ARGUMENT),
    (errors.UnsupportedMediaType("x"), grpc.StatusCode.INVALID_ARGUMENT),
    (errors.Unauthorized("x"), grpc.StatusCode.UNAUTHENTICATED),
    (errors.NotFound("x"), grpc.StatusCode.NOT_FOUND),
    (errors.Conflict("x"), grpc.StatusCode.FAILED_PRECONDITION),
    (errors.PayloadTooLarge("x"), grpc.StatusCode.RESOURCE_EXHAUSTED),
    (errors.Overloaded("x"), grpc.StatusCode.UNAVAILABLE),
    (errors.NotReady("x"), grpc.StatusCode.UNAVAILABLE),
    (errors.DeadlineExceeded("x"), grpc.StatusCode.DEADLINE_EXCEEDED),
    (errors.ModelFailed("x"), grpc.StatusCode.INTERNAL),
])
def test_each_error_has_tf_servings_code(error, code):
    assert code_of(error, client_deadline=False) == code
    assert code_of(error, client_deadline=True) == code


def test_a_refusal_by_the_clients_deadline_is_deadline_exceeded_not_unavailable():
    """Without a client deadline it was the server's queue-delay target: retry elsewhere."""
    refusal = errors.WouldMissDeadline("the queue holds ~3s of work")
    assert code_of(refusal, client_deadline=True) == grpc.StatusCode.DEADLINE_EXCEEDED
    assert code_of(refusal, client_deadline=False) == grpc.StatusCode.UNAVAILABLE
