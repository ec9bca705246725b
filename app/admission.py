"""Admission by deadline: refuse at once the work a queue cannot finish in time.

Under overload a queue grows until requests time out after their whole deadline: every
client waits, then fails. Instead each batcher measures the rows per second its model
sustains and asks this policy, before queueing, whether the rows ahead of a new request and
its own rows can run within the time its deadline leaves. A refusal costs microseconds and
carries Retry-After, so a client or proxy retries elsewhere.
"""

from __future__ import annotations

import collections
import time

from app.errors import Overloaded

DEADLINE_MARGIN = 0.8  # admit work estimated to end within this share of the time left


class DeadlineAdmission:
    """The measured model rate, and the admission check built on it."""

    def __init__(self, name: str, margin: float = DEADLINE_MARGIN, window: int = 16):
        self.name = name
        self.margin = margin
        self._rates: collections.deque[float] = collections.deque(maxlen=window)
        self._batches_seen = 0

    def record(self, rows: int, seconds: float) -> None:
        """One finished model call; the first (the warm-up) pays one-time graph costs."""
        self._batches_seen += 1
        if self._batches_seen > 1:
            self._rates.append(rows / max(seconds, 1e-6))

    @property
    def rows_per_s(self) -> float | None:
        """The best rate of the recent batches: small batches and slow outliers understate
        what the model sustains, and refusing on an understatement would refuse servable work."""
        return max(self._rates) if self._rates else None

    def check(self, rows_ahead: int, rows: int, deadline: float) -> None:
        """Raise `Overloaded` when `rows_ahead` queued or running rows plus `rows` new ones
        are estimated to end past `deadline` (monotonic), less the margin."""
        rate = self.rows_per_s
        if rate is None:
            return
        # under sustained overload every admitted request sits at this bound, so the estimate
        # keeps a margin for its own error (rates vary from batch to batch)
        wait = (rows_ahead + rows) / rate
        if wait > self.margin * (deadline - time.monotonic()):
            raise Overloaded(f"{self.name}: the queue holds ~{wait:.1f}s of work, more than "
                             "the request deadline; retry shortly")
