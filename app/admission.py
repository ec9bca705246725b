"""Admission by deadline and queue delay: refuse at once the work that would wait too long.

Under overload a queue grows until requests time out after their whole deadline: every
client waits, then fails. Instead each batcher measures the rows per second its model
sustains and asks this policy, before queueing, when a new request would have its answer:
what is left of the batch the model is running now, then the queued rows and its own at the
measured rate. It is admitted when that time fits in what its deadline leaves, and within
the queue-delay target. A refusal costs microseconds and carries Retry-After, so a client or
proxy retries elsewhere.

The deadline alone lets the queue fill up to 80% of it, so under overload every accepted
request waits nearly its whole deadline. The target (TFSERVE_MAX_QUEUE_DELAY_MS, per model
in TFSERVE_MODEL_OVERRIDES) caps the estimated wait. By default it is the time of
QUEUE_DELAY_BATCHES full batches at the measured rate (the running batch and the next one:
the model never idles for want of queued work), and at least QUEUE_DELAY_FLOOR_S. A tighter
default (8x the fastest call) cut the accepted p99 at 4x overload sixfold, but it also refused
closed-loop clients at ordinary concurrency (16 clients of inception_v3 or of 32-row mnist
requests got 503 storms in the benchmark): a tight target is a deployment's choice, behind
a proxy that retries elsewhere.
"""

from __future__ import annotations

import collections
import time

from app.errors import Overloaded

DEADLINE_MARGIN = 0.8  # admit work estimated to end within this share of the time left
QUEUE_DELAY_BATCHES = 2.0
QUEUE_DELAY_FLOOR_S = 0.25


class DeadlineAdmission:
    """The measured model rate, and the admission check built on it."""

    def __init__(self, name: str, margin: float = DEADLINE_MARGIN, window: int = 16,
                 batch_rows: int = 64, max_queue_delay_s: float | None = None):
        self.name = name
        self.margin = margin
        self.batch_rows = batch_rows  # a full batch
        self.max_queue_delay_s = max_queue_delay_s  # None: derived from the measured rate
        self._rates: collections.deque[float] = collections.deque(maxlen=window)
        self._batches_seen = 0
        self._running: tuple[int, float] | None = None  # (rows, monotonic start) of the call

    def started(self, rows: int) -> None:
        """The model began a call of `rows` rows."""
        self._running = (rows, time.monotonic())

    def ended(self) -> None:
        """The model's call returned (or failed)."""
        self._running = None

    def running_left_s(self, rate: float) -> float:
        """What remains of the running call at `rate`. Counting the whole call, as if it
        had just begun, refused by half a batch too early on average: goodput lost under
        overload for no latency gained."""
        if self._running is None:
            return 0.0
        rows, since = self._running
        return max(0.0, since + rows / rate - time.monotonic())

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
        """Raise `Overloaded` when the running call's remainder, `rows_ahead` queued rows
        and `rows` new ones are estimated to end past `deadline` (monotonic), less the
        margin, or past the queue-delay target."""
        rate = self.rows_per_s
        if rate is None:
            return
        # under sustained overload every admitted request sits at this bound, so the estimate
        # keeps a margin for its own error (rates vary from batch to batch)
        wait = self.running_left_s(rate) + (rows_ahead + rows) / rate
        if wait > self.margin * (deadline - time.monotonic()):
            raise Overloaded(f"{self.name}: the queue holds ~{wait:.1f}s of work, more than "
                             "the request deadline; retry shortly")
        target = self.queue_delay_target_s(rate)
        if wait > target:
            raise Overloaded(f"{self.name}: the queue holds ~{wait * 1000:.0f} ms of work, "
                             f"over its {target * 1000:.0f} ms target; retry shortly")

    def queue_delay_target_s(self, rate: float) -> float:
        if self.max_queue_delay_s is not None:
            return self.max_queue_delay_s
        return max(QUEUE_DELAY_FLOOR_S, QUEUE_DELAY_BATCHES * self.batch_rows / rate)
