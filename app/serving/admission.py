"""Admission by deadline and queue delay: refuse at once the work that would wait too long.

Under overload a queue grows until requests time out after their whole deadline: every
client waits, then fails. Instead each batcher measures the rows per second its model
sustains and asks this policy, before queueing, when a new request would have its answer:
after what is left of the call the model is running now, the queued rows, and the batch the
request lands in, counted as large as the call before it (under overload the requests that
arrive after it fill that batch before it runs, and the call before it was full; counting
only its own rows made accepted requests wait twice the target; counting it full whatever
the load refused a few clients after an overload). It is admitted when that time fits in
what its deadline leaves, and within the queue-delay target. A refusal costs microseconds
and carries Retry-After, so a client or proxy retries elsewhere. A model with nothing
running and nothing queued always takes the request (within its deadline): refusing it
could not shorten any wait.

The deadline alone lets the queue fill up to 80% of it, so under overload every accepted
request waits nearly its whole deadline. The target (TFSERVE_MAX_QUEUE_DELAY_MS, per model
in TFSERVE_MODEL_OVERRIDES) caps the estimated wait. By default it is the time of
QUEUE_DELAY_BATCHES full batches at the measured rate (the running call, one batch queued
behind it so the model never idles for want of work, the request's own), and at least
QUEUE_DELAY_FLOOR_S. A configured target shorter than that also caps the rows per call, to
a third of the target (less the margin) at the measured rate: a request must wait for the
call ahead of it and run in its own, and no queue policy makes a wait shorter than those.
A tighter default would refuse closed-loop clients at ordinary concurrency (16 clients of
inception_v3 or of 32-row mnist requests got 503 storms in the benchmark with 8x the
fastest call): a tight target is a deployment's choice, behind a proxy that retries
elsewhere.

A rate measured on small calls holds a call's fixed cost spread over a few rows, and the first
call of a larger size pays one-time costs (mnist's first 64-row call: 36 ms, the next ~1 ms).
A freshly started mnist measured ~2,400 rows/s on a lone row (~80,000 in 64-row calls), and
wrk's first burst of 16 clients with 32 rows each got 503s for "~240 ms of work" the model
runs in ~7 ms; in the soak's two-minute run, a version loaded under traffic refused mnist
requests for "~33.7s of work, more than the request deadline", its rate from its first small
calls and each request's own batch counted full (64 rows). So a request's own batch counts
full, and the queue-delay target refuses, only once the rate is trusted: two recent calls
reached at least 1/RATE_REACH of a batch (`batch_limit()`). A rate holds
within a few times the size it was measured at (inception_v3: 15.7 images/s in calls of 4,
17.1 in calls of 16; mnist: ~27,000 rows/s in calls of 16, ~80,000 in calls of 64), not
across 64x. Under real overload the queue fills batches at once, and the rate is trusted
after two calls; until then the deadline refuses what the queued rows and the request's own
cannot finish in time at the best rate measured.
"""

from __future__ import annotations

import collections
import time

from app.errors import Overloaded, WouldMissDeadline

DEADLINE_MARGIN = 0.8  # admit work estimated to end within this share of the time left
QUEUE_DELAY_BATCHES = 3
QUEUE_DELAY_FLOOR_S = 0.25
RATE_REACH = 4  # a rate measured in calls of r rows is trusted for calls of up to 4r


class DeadlineAdmission:
    """The measured model rate, and the admission check built on it."""

    def __init__(self, name: str, margin: float = DEADLINE_MARGIN, window: int = 16,
                 batch_rows: int = 64, max_queue_delay_s: float | None = None):
        self.name = name
        self.margin = margin
        self.batch_rows = batch_rows  # a full batch
        self.max_queue_delay_s = max_queue_delay_s  # None: derived from the measured rate
        # (rows, rows per second) of the recent calls
        self._calls: collections.deque[tuple[int, float]] = collections.deque(maxlen=window)
        self._batches_seen = 0
        # the best rate of the recent calls: small batches and slow outliers understate what
        # the model sustains, and refusing on an understatement would refuse servable work
        self.rows_per_s: float | None = None
        # rows that two recent calls reached: how far that rate is known to hold
        self.trusted_rows = 0
        self._running: tuple[int, float] | None = None  # (rows, monotonic start) of the call
        # the latest call's rows and duration, warm-up excluded
        self.last_call: tuple[int, float] | None = None

    def started(self, rows: int) -> None:
        """The model began a call of `rows` rows."""
        self._running = (rows, time.monotonic())

    def ended(self) -> None:
        """The model's call returned (or failed)."""
        self._running = None

    @property
    def calling(self) -> bool:
        """Whether a call of the model is under way."""
        return self._running is not None

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
            self._calls.append((rows, rows / max(seconds, 1e-6)))
            self.last_call = (rows, seconds)
            self.rows_per_s = max(rate for _, rate in self._calls)
            sizes = sorted(rows for rows, _ in self._calls)
            self.trusted_rows = sizes[-2] if len(sizes) > 1 else 0

    def batch_limit(self) -> int:
        """Rows per model call: a full batch, or what a configured target leaves room for."""
        rate = self.rows_per_s
        if rate is None or self.max_queue_delay_s is None:
            return self.batch_rows
        fits = int(rate * self.margin * self.max_queue_delay_s / QUEUE_DELAY_BATCHES)
        return max(1, min(self.batch_rows, fits))

    def check(self, rows_ahead: int, rows: int, deadline: float) -> None:
        """Raise `Overloaded` when a request of `rows` rows, behind the running call and
        `rows_ahead` queued rows, is estimated to end past `deadline` (monotonic), less the
        margin, or past the queue-delay target."""
        rate = self.rows_per_s
        if rate is None:
            return
        idle = self._running is None and rows_ahead == 0
        limit = self.batch_limit()
        trusted = self.trusted_rows * RATE_REACH >= limit
        own_batch = max(rows, min(limit, self.expected_batch())) if trusted and not idle \
            else rows
        wait = self.running_left_s(rate) + (rows_ahead + own_batch) / rate
        # under sustained overload every admitted request sits at these bounds, so the
        # estimate keeps a margin for its own error (rates vary from call to call) and for
        # the time a request spends outside the model (HTTP, decoding, encoding)
        if wait > self.margin * (deadline - time.monotonic()):
            raise WouldMissDeadline(f"{self.name}: the queue holds ~{wait:.1f}s of work, more "
                                    "than the request deadline; retry shortly")
        target = self.queue_delay_target_s(rate)
        if trusted and not idle and wait > self.margin * target:
            raise Overloaded(f"{self.name}: the queue holds ~{wait * 1000:.0f} ms of work, "
                             f"over its {target * 1000:.0f} ms target; retry shortly")

    def expected_batch(self) -> int:
        """The rows the batch a request lands in is likely to hold: as many as the call
        before it. Under overload the running call is full and so will the next one be; once
        the overload ends a few clients make small calls again, and counting every batch full
        kept refusing them (a 16-image inception_v3 batch on a slow machine outlasts a 3 s
        deadline, so after an overload 4 closed-loop clients got 130 refusals to 3 answers)."""
        if self._running is not None:
            return self._running[0]
        return self.last_call[0] if self.last_call is not None else self.batch_rows

    def queue_delay_target_s(self, rate: float) -> float:
        if self.max_queue_delay_s is not None:
            return self.max_queue_delay_s
        return max(QUEUE_DELAY_FLOOR_S, QUEUE_DELAY_BATCHES * self.batch_rows / rate)
