"""Dynamic batching: concurrent requests for one signature share one model call.

One `Batcher` per (model, version, signature). `submit()` queues a request's rows and returns
its own rows of the result. A batch runs when it holds `max_batch_size` rows or when its oldest
request has waited `batch_timeout_ms`, whichever comes first; rows are concatenated along axis
0, the model runs once in a worker thread (off the event loop), and outputs are split back by
row counts, in order. While one batch runs, the next one fills, so batches grow with load.

Bounds: a full queue refuses new requests at once (`Overloaded`, 503), and so does a queue
holding more work than the new request's deadline leaves time for (measured rows/s), so
overload is refused in microseconds instead of timing out after the deadline; a request that
still cannot finish in time gets `DeadlineExceeded` (504) and its rows are dropped from the
queue if they have not run yet.

Failures: input the model rejects (`InvalidInput`) can be pinned on a request, so that batch
runs again request by request and only the bad one gets its 400; any other failure is the
model's, and fails its batch once (one call, one logged traceback) and nothing else. The
version's circuit breaker (app.serving.breaker) counts those and, once open, refuses at once.

The timeout ends early when waiting cannot help (app.serving.traffic): when every request in the
server is parked in a batcher, no batch-mate can come but from the network, so a lone request
at low load runs at once instead of waiting. Such a request, when it is the only one in the
server and the model's last call took under INLINE_CALL_S for at least as many rows, is also
run on the event loop itself: the hand-off to a worker thread and back (a wake-up each way)
was a sixth of a lone mnist request's time, and whatever arrives meanwhile waits at most that
long. A call that size needs little memory, so the event loop's thread holds little of the
allocator's memory (docs/RELIABILITY.md). Whether a request fits its deadline is the
admission policy's call (app.serving.admission); metrics hang on the `on_batch` hook.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
import time
from collections.abc import Callable
from concurrent.futures import Executor

import numpy as np

from app.errors import DeadlineExceeded, InvalidInput, ModelFailed, Overloaded, ServingError
from app.serving.admission import DeadlineAdmission
from app.serving.batch_queue import DeadlineTimers, Pending, concatenate, split, take_batch
from app.serving.breaker import CircuitBreaker
from app.serving.traffic import Traffic

log = logging.getLogger(__name__)
INLINE_CALL_S = 0.002  # a lone request's model call this short runs on the event loop

Arrays = dict[str, np.ndarray]
RunFn = Callable[[Arrays], Arrays]


class BoundedRunner:
    """A model function behind a bounded queue: what `Batcher` and `Unbatched` share (the row
    bound, deadlines, the in-flight count, refusing new work once closing)."""

    def __init__(self, run: RunFn, executor: Executor, *, max_queue_rows: int, name: str,
                 on_batch: Callable[[int], None] | None = None,
                 traffic: Traffic | None = None, breaker: CircuitBreaker | None = None):
        if max_queue_rows < 1:
            raise ValueError("max_queue_rows must be >= 1")
        self.name = name
        self.breaker = breaker
        self._traffic = traffic
        self._run = run
        self._executor = executor
        self.max_queue_rows = max_queue_rows
        self._on_batch = on_batch
        self._queued_rows = 0
        self._in_flight = 0  # requests submitted and not yet answered
        self._closing = False
        self._deadlines = DeadlineTimers()

    @property
    def queued_rows(self) -> int:
        return self._queued_rows

    @property
    def in_flight(self) -> int:
        return self._in_flight

    def _admit(self, rows: int) -> None:
        if self.breaker is not None:
            self.breaker.admit()
        if self._closing:
            raise Overloaded(f"{self.name} is shutting down; retry on another instance")
        if self._queued_rows + rows > self.max_queue_rows:
            raise Overloaded(f"{self.name}: queue full ({self._queued_rows} rows waiting, "
                             f"limit {self.max_queue_rows}); retry shortly")

    async def _wait(self, future: asyncio.Future, deadline: float) -> Arrays:
        """The future's result, or `DeadlineExceeded` (and the future cancelled) at `deadline`."""
        self._in_flight += 1
        if self._traffic is not None:
            self._traffic.parked += 1
        # at the deadline the future is cancelled, so a queued request is dropped before it runs
        slot = self._deadlines.add(future, deadline)
        try:
            return await future
        except asyncio.CancelledError:
            task = asyncio.current_task()
            if not future.cancelled() or (task is not None and task.cancelling()):
                raise  # the request itself was cancelled, not its future by the deadline
            raise DeadlineExceeded(f"{self.name}: no result within the request deadline") \
                from None
        finally:
            self._deadlines.discard(future, slot)
            self._in_flight -= 1
            if self._traffic is not None:
                self._traffic.parked -= 1


class Batcher(BoundedRunner):
    """Size-or-timeout batching in front of one model signature."""

    def __init__(self, run: RunFn, executor: Executor, *, max_batch_size: int,
                 batch_timeout_ms: float, max_queue_rows: int, name: str = "",
                 on_batch: Callable[[int], None] | None = None, traffic: Traffic | None = None,
                 breaker: CircuitBreaker | None = None, max_queue_delay_ms: float = 0):
        if max_batch_size < 1 or batch_timeout_ms < 0:
            raise ValueError("max_batch_size must be >= 1 and batch_timeout_ms >= 0")
        super().__init__(run, executor, max_queue_rows=max_queue_rows, name=name,
                         on_batch=on_batch, traffic=traffic, breaker=breaker)
        self.max_batch_size = max_batch_size
        self._timeout = batch_timeout_ms / 1000.0
        self._queue: collections.deque[Pending] = collections.deque()
        self._arrived = asyncio.Event()
        self._task: asyncio.Task | None = None
        self.admission = DeadlineAdmission(
            name, batch_rows=max_batch_size,
            max_queue_delay_s=max_queue_delay_ms / 1000 if max_queue_delay_ms else None)

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._loop(),
                                                                name=f"batcher {self.name}")

    async def submit(self, inputs: Arrays, rows: int, deadline: float) -> Arrays:
        """Queue `rows` rows and wait for their outputs, until `deadline` (monotonic)."""
        self._admit(rows)
        self.admission.check(self._queued_rows, rows, deadline)
        pending = Pending(inputs, rows, asyncio.get_running_loop().create_future())
        if self._idle_and_alone(rows):
            # requests read in the same turn of the event loop enter the server first: a
            # request alone only as long as its task ran would serve them one at a time
            await asyncio.sleep(0)
            if self._idle_and_alone(rows):  # no hand-off at all
                await self._execute([pending])
                return pending.future.result()
        self._queue.append(pending)
        self._queued_rows += rows
        self._arrived.set()
        return await self._wait(pending.future, deadline)

    async def _loop(self) -> None:
        while True:
            while not self._queue:
                if self._closing:
                    return
                self._arrived.clear()
                await self._arrived.wait()
            limit = self.admission.batch_limit()
            await self._wait_for_batch(limit)
            batch = take_batch(self._queue, limit)
            self._queued_rows = sum(p.rows for p in self._queue)  # also forgets dropped ones
            if batch:
                await self._execute(batch)

    async def _wait_for_batch(self, limit: int) -> None:
        """Until the queue holds `limit` rows (a full batch), its oldest request's timeout
        has passed, or no other request in the server could still join."""
        deadline = self._queue[0].enqueued_at + self._timeout
        watching = (self._traffic.watching(self._arrived) if self._traffic is not None
                    else contextlib.nullcontext())
        with watching, contextlib.suppress(TimeoutError):
            async with asyncio.timeout_at(deadline):
                while self._queued_rows < limit and not self._closing:
                    if self._traffic is not None and not self._traffic.others_busy:
                        return
                    self._arrived.clear()
                    await self._arrived.wait()

    async def _execute(self, batch: list[Pending]) -> None:
        if self.breaker is not None and not self.breaker.may_run():
            self._fail(batch, self.breaker.unavailable())  # no call to a model known broken
            return
        rows = sum(p.rows for p in batch)
        if self._on_batch is not None:
            self._on_batch(rows)
        started = time.monotonic()
        self.admission.started(rows)
        try:
            results = await self._run_batch(batch)
            self.admission.record(rows, time.monotonic() - started)
        except InvalidInput as err:
            self._record(None)  # the model works; an input is bad
            if len(batch) == 1:
                self._fail(batch, err)
                return
            # pinned on an input: run each alone, so batch-mates still get their answers
            for pending in batch:
                await self._execute_alone(pending)
            return
        except ServingError as err:  # the model's own failure: the batch fails, once
            self._record(err)
            self._fail(batch, err)
            return
        finally:
            self.admission.ended()
        self._record(None)
        for pending, result in zip(batch, results, strict=True):
            if not pending.future.done():
                pending.future.set_result(result)

    def _record(self, failure: ServingError | None) -> None:
        if self.breaker is not None:
            self.breaker.record(failure)

    async def _execute_alone(self, pending: Pending) -> None:
        if pending.future.done():
            return
        try:
            (result,) = await self._run_batch([pending])
        except ServingError as err:
            self._record(None if isinstance(err, InvalidInput) else err)
            self._fail([pending], err)
        else:
            if not pending.future.done():
                pending.future.set_result(result)

    def _idle_and_alone(self, rows: int) -> bool:
        """Nothing queued, no call running, and a call of `rows` would run inline."""
        return not self._queue and not self.admission.calling and self._runs_inline(rows)

    def _runs_inline(self, rows: int) -> bool:
        """Whether a call of `rows` rows may run on the event loop: the server holds no
        request but this one, and the model's last call was short and at least as large."""
        if self._traffic is None or self._traffic.active > 1:
            return False
        last = self.admission.last_call
        return last is not None and rows <= last[0] and last[1] < INLINE_CALL_S

    async def _run_batch(self, batch: list[Pending]) -> list[Arrays]:
        loop = asyncio.get_running_loop()
        try:
            inputs = concatenate(batch)
            if len(batch) == 1 and self._runs_inline(batch[0].rows):
                outputs = self._run(inputs)
            else:
                outputs = await loop.run_in_executor(self._executor, self._run, inputs)
            return split(outputs, batch)
        except ServingError:
            raise
        except Exception as err:  # the model raised
            log.exception("%s: batch of %d requests failed", self.name, len(batch))
            raise ModelFailed(f"{self.name}: the model failed: {type(err).__name__}") from None

    @staticmethod
    def _fail(batch: list[Pending], error: ServingError) -> None:
        for pending in batch:
            if not pending.future.done():
                pending.future.set_exception(error)

    async def close(self) -> None:
        """Stop taking requests, finish the queued ones, end the loop."""
        self._closing = True
        self._arrived.set()
        if self._task is not None:
            await self._task
            self._task = None


class Unbatched(BoundedRunner):
    """Batching switched off: each request is its own model call (for comparison).

    `queued_rows` counts the rows submitted and not answered yet.
    """

    def start(self) -> None:
        pass

    async def submit(self, inputs: Arrays, rows: int, deadline: float) -> Arrays:
        self._admit(rows)
        if self.breaker is not None and not self.breaker.may_run():
            raise self.breaker.unavailable()
        self._queued_rows += rows
        loop = asyncio.get_running_loop()
        try:
            future = loop.run_in_executor(self._executor, self._call, inputs, rows)
            result = await self._wait(future, deadline)
        except ModelFailed as err:
            if self.breaker is not None:
                self.breaker.record(err)
            raise
        finally:
            self._queued_rows -= rows
        if self.breaker is not None:
            self.breaker.record(None)
        return result

    def _call(self, inputs: Arrays, rows: int) -> Arrays:
        if self._on_batch is not None:
            self._on_batch(rows)
        try:
            return self._run(inputs)
        except ServingError:
            raise
        except Exception as err:
            log.exception("%s: request of %d rows failed", self.name, rows)
            raise ModelFailed(f"{self.name}: the model failed: {type(err).__name__}") from None

    async def close(self) -> None:
        self._closing = True
