"""A circuit breaker per model version: a broken model costs one call, not one per request.

  CLOSED     model calls run; K failed batches in a row open it
  OPEN       requests get 503 with Retry-After at once, and batches already queued fail
             without calling the model, until the cool-down has passed
  HALF_OPEN  one probe batch runs: success closes the breaker, failure opens it again

Only the model's own failures count (`ModelFailed`); input the model rejects is the client's
fault and says nothing about the model's health. K = 0 switches the breaker off.
"""

from __future__ import annotations

import enum
import math
import time
from collections.abc import Callable

from app.errors import ServingError


class BreakerState(enum.StrEnum):
    CLOSED = "CLOSED"
    OPEN = "OPEN"
    HALF_OPEN = "HALF_OPEN"


class ModelUnavailable(ServingError):
    """The version's breaker is open: retry after the cool-down, or on another version."""

    status = 503

    def __init__(self, message: str, retry_after_s: float):
        super().__init__(message)
        self.headers = {"Retry-After": str(max(1, math.ceil(retry_after_s)))}


class CircuitBreaker:
    def __init__(self, name: str, failures_to_open: int, cooldown_s: float,
                 on_trip: Callable[[], None] | None = None):
        self.name = name
        self.failures_to_open = failures_to_open
        self.cooldown_s = cooldown_s
        self.on_trip = on_trip
        self.state = BreakerState.CLOSED
        self.failures = 0  # consecutive failed batches
        self.last_error = ""
        self._reopen_at = 0.0
        self._probing = False

    @property
    def healthy(self) -> bool:
        return self.state is BreakerState.CLOSED

    @property
    def reason(self) -> str:
        if self.healthy:
            return ""
        wait = max(0.0, self._reopen_at - time.monotonic())
        return (f"{self.name}: the model failed {self.failures} batches in a row (last: "
                f"{self.last_error}); next probe in {wait:.0f}s")

    def admit(self) -> None:
        """Before queueing a request: 503 at once while open (or while a probe runs)."""
        if self.state is BreakerState.OPEN and time.monotonic() >= self._reopen_at:
            self.state, self._probing = BreakerState.HALF_OPEN, False
        if self.state is BreakerState.OPEN or (self.state is BreakerState.HALF_OPEN
                                               and self._probing):
            raise self.unavailable()

    def unavailable(self) -> ModelUnavailable:
        wait = max(self._reopen_at - time.monotonic(), 1.0)
        return ModelUnavailable(f"{self.reason or self.name + ': probing'}; retry shortly",
                                wait)

    def may_run(self) -> bool:
        """Before a model call: False while open, or when a probe already runs."""
        if self.state is BreakerState.CLOSED or self.failures_to_open == 0:
            return True
        if self.state is BreakerState.HALF_OPEN and not self._probing:
            self._probing = True
            return True
        return False

    def record(self, failure: ServingError | None) -> None:
        """The outcome of a model call: None for a success, else the model's failure."""
        if self.failures_to_open == 0:
            return
        if failure is None:
            self.state, self.failures, self._probing = BreakerState.CLOSED, 0, False
            return
        self.failures += 1
        self.last_error = failure.message
        if self.state is BreakerState.HALF_OPEN or self.failures >= self.failures_to_open:
            self.state, self._probing = BreakerState.OPEN, False
            self._reopen_at = time.monotonic() + self.cooldown_s
            if self.on_trip is not None:
                self.on_trip()
