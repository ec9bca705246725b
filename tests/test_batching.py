"""The dynamic batcher, without HTTP or TensorFlow: deterministic with events, not sleeps."""

from __future__ import annotations

import asyncio
import collections
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

from app.errors import DeadlineExceeded, InvalidInput, ModelFailed, Overloaded
from app.serving import batching
from app.serving.admission import DeadlineAdmission
from app.serving.batch_queue import DEADLINE_SLOT_S, DeadlineTimers, Pending, take_batch
from app.serving.batching import Batcher
from app.serving.traffic import Traffic


@pytest.fixture
def loop():
    loop = asyncio.new_event_loop()
    yield loop
    loop.close()


@pytest.fixture
def pending(loop):
    def make(rows: int, width: int = 1, done: bool = False) -> Pending:
        future = loop.create_future()
        if done:
            future.cancel()
        return Pending({"x": np.zeros((rows, width))}, rows, future)

    return make


def test_take_batch_fills_up_to_max_rows_in_order(pending):
    queue = collections.deque([pending(2), pending(3), pending(4), pending(1)])
    batch = take_batch(queue, max_rows=6)
    assert [p.rows for p in batch] == [2, 3]
    assert [p.rows for p in queue] == [4, 1]


def test_take_batch_runs_an_oversized_request_alone_and_drops_cancelled_ones(pending):
    queue = collections.deque([pending(1, done=True), pending(9), pending(1)])
    assert [p.rows for p in take_batch(queue, max_rows=4)] == [9]
    assert [p.rows for p in queue] == [1]


def test_take_batch_keeps_requests_of_other_shapes_for_later(pending):
    first, other, same = pending(1, width=3), pending(1, width=5), pending(1, width=3)
    queue = collections.deque([first, other, same])
    assert take_batch(queue, max_rows=8) == [first, same]
    assert list(queue) == [other]


class GatedModel:
    """Doubles its input; each call waits for the test to open the gate."""

    def __init__(self, fail_on: float | None = None):
        self.calls: list[int] = []
        self.gate = threading.Event()
        self.fail_on = fail_on

    def __call__(self, inputs):
        self.gate.wait(10)
        x = inputs["x"]
        self.calls.append(len(x))
        if self.fail_on is not None and (x == self.fail_on).any():
            raise InvalidInput("bad row")
        return {"y": x * 2}


@pytest.fixture
def executor():
    with ThreadPoolExecutor(2) as pool:
        yield pool


def rows(*values: float) -> dict:
    return {"x": np.array(values, dtype=np.float32).reshape(-1, 1)}


async def submit_all(batcher: Batcher, requests: list[dict], deadline_s: float = 10):
    deadline = time.monotonic() + deadline_s
    return await asyncio.gather(*[batcher.submit(r, len(r["x"]), deadline) for r in requests],
                                return_exceptions=True)


def test_concurrent_requests_share_one_call_and_get_their_own_rows(executor):
    async def scenario():
        model = GatedModel()
        model.gate.set()
        batcher = Batcher(model, executor, max_batch_size=8, batch_timeout_ms=1000,
                          max_queue_rows=100, name="t")
        batcher.start()
        results = await submit_all(batcher, [rows(1), rows(2, 3), rows(4), rows(5, 6, 7, 8)])
        await batcher.close()
        return model.calls, results

    calls, results = asyncio.run(scenario())
    assert calls == [8]  # full batch: ran before the 1 s timeout
    assert [r["y"].ravel().tolist() for r in results] == [[2], [4, 6], [8], [10, 12, 14, 16]]


def test_a_lone_request_runs_after_the_timeout(executor):
    async def scenario():
        model = GatedModel()
        model.gate.set()
        batcher = Batcher(model, executor, max_batch_size=64, batch_timeout_ms=30,
                          max_queue_rows=100, name="t")
        batcher.start()
        started = time.monotonic()
        (result,) = await submit_all(batcher, [rows(1)])
        waited = time.monotonic() - started
        await batcher.close()
        return result, waited

    result, waited = asyncio.run(scenario())
    assert result["y"].tolist() == [[2.0]]
    assert 0.025 <= waited < 1.0


async def settle() -> None:
    """Let every ready task run (the batcher's loop included): a yield, not a timed wait."""
    for _ in range(20):
        await asyncio.sleep(0)


def test_a_lone_short_call_runs_on_the_event_loop_and_others_in_a_worker(executor,
                                                                       monkeypatch):
    # Short and long far from the line between them, so that a busy machine's scheduling
    # delays (a no-op call measured over 2 ms with a training run beside the suite) cannot
    # move a call across it: the line at 50 ms, a long call 200 ms.
    monkeypatch.setattr(batching, "INLINE_CALL_S", 0.05)
    threads: list[int] = []
    durations = {"short": 0.0, "long": 0.2}  # seconds each call sleeps

    def model(inputs):
        threads.append(threading.get_ident())
        time.sleep(durations["now"])
        return {"y": inputs["x"] * 2}

    async def scenario():
        traffic = Traffic()
        batcher = Batcher(model, executor, max_batch_size=8, batch_timeout_ms=0,
                          max_queue_rows=100, name="inline", traffic=traffic)
        batcher.start()
        deadline = time.monotonic() + 10
        loop_thread = threading.get_ident()
        where = []

        async def one(kind: str, others: int = 0, size: int = 1) -> None:
            durations["now"] = durations[kind]
            for _ in range(1 + others):
                traffic.enter()
            result = await batcher.submit(rows(*[3] * size), size, deadline)
            assert result["y"].tolist() == [[6.0]] * size
            for _ in range(1 + others):
                traffic.leave()
            where.append("loop" if threads[-1] == loop_thread else "worker")

        await one("short")  # the first call is the warm-up: it measures nothing
        await one("short")  # so nothing is measured yet: a worker
        await one("short")  # the last call was short, and this request is alone
        await one("short", others=1)  # another request in the server: not blocked by this
        await one("short", size=2)  # more rows than the last short call: no prediction
        await one("short", size=2)  # the last call was short for 2 rows
        await one("long")  # still short before it ran (the call took 200 ms)
        await one("long")  # the last call took 200 ms: a worker
        await batcher.close()
        return where

    assert asyncio.run(scenario()) == ["worker", "worker", "loop", "worker", "worker", "loop",
                                       "loop", "worker"]


def test_the_wait_for_batch_mates_ends_when_none_can_come(executor):
    """Traffic counts the server's requests: the 1 s timeout is paid by no request here."""

    async def scenario():
        model = GatedModel()
        model.gate.set()
        traffic = Traffic()
        sizes: list[int] = []
        batcher = Batcher(model, executor, max_batch_size=64, batch_timeout_ms=1000,
                          max_queue_rows=100, name="t", traffic=traffic,
                          on_batch=sizes.append)
        batcher.start()
        deadline = time.monotonic() + 10

        # alone in the server: runs at once, long before the 1 s timeout
        traffic.enter()
        started = time.monotonic()
        await batcher.submit(rows(1), 1, deadline)
        alone_s = time.monotonic() - started
        traffic.leave()

        # a second request still being read: the first waits for it, then both run together
        traffic.enter(), traffic.enter()
        first = asyncio.ensure_future(batcher.submit(rows(1), 1, deadline))
        await settle()
        waited_for_second = sizes == [1]
        await asyncio.gather(first, batcher.submit(rows(2), 1, deadline))
        traffic.leave(), traffic.leave()

        # the other request leaves without a prediction (a GET, an error): the wait ends
        traffic.enter(), traffic.enter()
        third = asyncio.ensure_future(batcher.submit(rows(1), 1, deadline))
        await settle()
        waited_for_other = sizes == [1, 2]
        traffic.leave()
        await third
        traffic.leave()
        await batcher.close()
        return sizes, alone_s, waited_for_second, waited_for_other

    sizes, alone_s, waited_for_second, waited_for_other = asyncio.run(scenario())
    assert sizes == [1, 2, 1]
    assert alone_s < 0.5
    assert waited_for_second and waited_for_other


def test_the_next_batch_fills_while_one_runs(executor):
    async def scenario():
        model = GatedModel()
        running = asyncio.Event()

        def on_batch(size: int) -> None:
            sizes.append(size)
            running.set()

        batcher = Batcher(model, executor, max_batch_size=64, batch_timeout_ms=0,
                          max_queue_rows=100, name="t", on_batch=on_batch)
        batcher.start()
        first = asyncio.ensure_future(submit_all(batcher, [rows(1)]))
        await running.wait()  # the first call holds the model at the gate
        later = asyncio.ensure_future(submit_all(batcher, [rows(i) for i in range(2, 7)]))
        await settle()
        queued = batcher.queued_rows  # all five queue up behind the gated call
        model.gate.set()
        await first, await later
        await batcher.close()
        return queued

    sizes: list[int] = []
    assert asyncio.run(scenario()) == 5
    assert sizes == [1, 5]


def test_full_queue_is_refused_at_once_and_deadlines_expire(executor):
    async def scenario():
        model = GatedModel()
        batcher = Batcher(model, executor, max_batch_size=1, batch_timeout_ms=0,
                          max_queue_rows=2, name="t")
        batcher.start()
        results = await submit_all(batcher, [rows(1), rows(2), rows(3), rows(4)], 0.1)
        model.gate.set()
        await batcher.close()
        return results, batcher.queued_rows, batcher.in_flight

    results, queued, in_flight = asyncio.run(scenario())
    kinds = [type(r) for r in results]
    assert kinds == [DeadlineExceeded, DeadlineExceeded, Overloaded, Overloaded]
    assert (queued, in_flight) == (0, 0)  # expired requests leave no rows behind


def test_deadline_timers_cancel_only_the_late_ones_and_not_early():
    async def scenario():
        loop = asyncio.get_running_loop()
        timers = DeadlineTimers()
        deadline = time.monotonic() + 0.05
        answered, late, later = (loop.create_future() for _ in range(3))
        cancelled_at = []
        late.add_done_callback(lambda _: cancelled_at.append(time.monotonic()))
        slot = timers.add(answered, deadline)
        assert timers.add(late, deadline) == slot  # one slot, one timer
        timers.add(later, deadline + 10)
        answered.set_result("in time")
        timers.discard(answered, slot)
        await asyncio.sleep(0.1 + DEADLINE_SLOT_S)
        return answered, late, later, cancelled_at[0] - deadline

    answered, late, later, lateness = asyncio.run(scenario())
    assert answered.result() == "in time" and late.cancelled() and not later.done()
    assert -0.001 <= lateness <= DEADLINE_SLOT_S + 0.05  # at most a slot late (and scheduling)


def test_a_cancelled_request_is_cancelled_not_timed_out(executor):
    async def scenario():
        model = GatedModel()
        batcher = Batcher(model, executor, max_batch_size=1, batch_timeout_ms=0,
                          max_queue_rows=10, name="t")
        batcher.start()
        deadline = time.monotonic() + 10
        running = asyncio.ensure_future(batcher.submit(rows(1), 1, deadline))
        queued = asyncio.ensure_future(batcher.submit(rows(2), 1, deadline))
        await asyncio.sleep(0.05)
        queued.cancel()  # a client gone: its task is cancelled while it waits
        outcome = await asyncio.gather(queued, return_exceptions=True)
        model.gate.set()
        await running
        await batcher.close()
        return outcome, model.calls, batcher.queued_rows, batcher.in_flight

    (outcome,), calls, queued_rows, in_flight = asyncio.run(scenario())
    assert isinstance(outcome, asyncio.CancelledError)
    assert calls == [1] and (queued_rows, in_flight) == (0, 0)  # its row never ran


def test_a_failing_request_fails_alone_and_the_loop_survives(executor):
    async def scenario():
        model = GatedModel(fail_on=3.0)
        model.gate.set()
        batcher = Batcher(model, executor, max_batch_size=8, batch_timeout_ms=50,
                          max_queue_rows=100, name="t")
        batcher.start()
        first = await submit_all(batcher, [rows(1), rows(3), rows(5)])
        second = await submit_all(batcher, [rows(7)])
        await batcher.close()
        return first, second

    first, second = asyncio.run(scenario())
    assert first[0]["y"].tolist() == [[2.0]] and first[2]["y"].tolist() == [[10.0]]
    assert isinstance(first[1], InvalidInput)
    assert second[0]["y"].tolist() == [[14.0]]


def test_an_unexpected_model_error_becomes_a_500_without_internals(executor):
    def broken(inputs):
        raise RuntimeError("/secret/path exploded")

    async def scenario():
        batcher = Batcher(broken, executor, max_batch_size=4, batch_timeout_ms=0,
                          max_queue_rows=10, name="m/1/s")
        batcher.start()
        (result,) = await submit_all(batcher, [rows(1)])
        await batcher.close()
        return result

    error = asyncio.run(scenario())
    assert isinstance(error, ModelFailed) and error.status == 500
    assert "/secret/path" not in error.message and "RuntimeError" in error.message


def test_bad_configuration_fails_in_the_constructor(executor):
    with pytest.raises(ValueError, match="max_batch_size"):
        Batcher(lambda x: x, executor, max_batch_size=0, batch_timeout_ms=1, max_queue_rows=1)


def test_admission_refuses_what_the_measured_rate_cannot_finish_in_time():
    # one-row batches and a target of 10 s: the deadline decides here
    admission = DeadlineAdmission("m/1/s", batch_rows=1, max_queue_delay_s=10)
    now = time.monotonic()
    admission.check(10_000, 1, now + 0.01)  # no rate measured yet: everything is admitted
    admission.record(1, 10.0)  # the first call (warm-up) does not count
    assert admission.rows_per_s is None
    admission.record(10, 1.0)
    admission.record(5, 1.0)  # a small batch understates the rate: the best one counts
    assert admission.rows_per_s == 10
    admission.check(6, 1, now + 1.0)  # 0.7 s of work within 80% of 1 s
    with pytest.raises(Overloaded, match="~0.9s of work"):
        admission.check(8, 1, now + 1.0)  # 0.9 s: past the margin


def test_the_batcher_asks_admission_with_the_rows_ahead_of_a_request(executor):
    async def scenario():
        model = GatedModel()  # holds every call: the queue only grows
        batcher = Batcher(model, executor, max_batch_size=1, batch_timeout_ms=0,
                          max_queue_rows=1000, name="gated",
                          max_queue_delay_ms=10_000)  # the deadline decides here
        batcher.admission.record(1, 1.0)  # warm-up
        batcher.admission.record(10, 1.0)  # the model is known to run 10 rows/s
        batcher.start()
        deadline = time.monotonic() + 1.05  # room for 8 rows (0.84 s at 80%), not 9
        waiting = [asyncio.ensure_future(batcher.submit(rows(i), 1, deadline))
                   for i in range(12)]
        await settle()
        refused = [w for w in waiting if w.done() and isinstance(w.exception(), Overloaded)]
        model.gate.set()
        results = await asyncio.gather(*waiting, return_exceptions=True)
        await batcher.close()
        return len(refused), results

    refused, results = asyncio.run(scenario())
    assert refused == 12 - 8  # each request decides before the batcher takes any
    served = [r for r in results if isinstance(r, dict)]
    assert [r["y"].item() for r in served] == [2.0 * i for i in range(8)]


def test_admission_counts_only_what_is_left_of_the_running_call():
    far = time.monotonic() + 60
    admission = DeadlineAdmission("m/1/s", batch_rows=4, max_queue_delay_s=0.45)
    admission.record(1, 10.0)  # warm-up
    admission.record(10, 1.0)  # 10 rows/s, in two calls of 10 rows: trusted for 40
    admission.record(10, 1.0)
    admission.started(5)  # a call of 0.5 s begins
    # its 0.5 s (less the moments since it began: ~599 on a busy machine), then 0.1 s
    with pytest.raises(Overloaded, match=r"~(59\d|600) ms of work"):
        admission.check(0, 1, far)
    time.sleep(0.3)
    admission.check(0, 1, far)  # ~0.2 s of it left: ~0.3 s in all
    admission.ended()
    admission.check(2, 1, far)  # nothing running: three queued rows, 0.3 s


def test_admission_keeps_the_estimated_queue_delay_under_its_target():
    now = time.monotonic()
    far = now + 60  # the deadline is not what refuses here
    derived = DeadlineAdmission("m/1/s", batch_rows=4)
    derived.record(1, 10.0)  # warm-up: not a measure of the model
    derived.record(10, 1.0)  # 10 rows/s: a full batch of 4 in 0.4 s, three in 1.2 s
    derived.record(10, 1.0)  # twice: trusted
    assert derived.batch_limit() == 4
    # admitted up to 80% of the target (the margin of the estimate's error)
    derived.check(5, 1, far)  # 5 rows ahead, then its own batch (filled to 4): ~0.9 s
    with pytest.raises(Overloaded, match="~1000 ms of work, over its 1200 ms target"):
        derived.check(6, 1, far)
    configured = DeadlineAdmission("m/1/s", batch_rows=4, max_queue_delay_s=0.3)
    configured.record(1, 10.0)
    configured.record(10, 1.0)
    configured.record(10, 1.0)
    assert configured.batch_limit() == 1  # a third of 80% of 0.3 s at 10 rows/s, at least 1
    configured.check(1, 1, far)
    with pytest.raises(Overloaded, match="300 ms target"):
        configured.check(2, 1, far)
    fast = DeadlineAdmission("m/1/s", batch_rows=64)
    fast.record(1, 10.0)
    fast.record(64, 0.001)  # 64k rows/s: three batches in 3 ms, so the 250 ms floor holds
    fast.record(64, 0.001)
    fast.check(12_000, 1, far)
    with pytest.raises(Overloaded, match="250 ms target"):
        fast.check(13_000, 1, far)


def test_a_rate_measured_on_small_calls_does_not_refuse_by_the_target():
    far = time.monotonic() + 60
    admission = DeadlineAdmission("m/1/s", batch_rows=64)
    admission.record(1, 10.0)  # warm-up
    admission.record(1, 0.01)  # lone rows: 100 rows/s, a call's fixed cost in it
    admission.record(1, 0.01)
    admission.started(1)
    # 2,000 rows ahead would be 20 s at that rate, far past the 1.92 s target (three full
    # batches): an extrapolation from one row to 64, so only the deadline refuses, and counts
    # the request's own rows, not a full batch
    admission.check(2_000, 32, far)
    admission.check(200, 32, time.monotonic() + 3)  # 2.3 s of work within 80% of 3 s
    with pytest.raises(Overloaded, match="request deadline"):
        admission.check(2_000, 32, time.monotonic() + 10)
    admission.record(16, 0.5)  # one call of a quarter of a batch: its first, one-time costs
    admission.check(2_000, 32, far)  # still not trusted
    admission.record(16, 0.01)  # two: 1,600 rows/s, trusted for calls of up to 64 rows
    with pytest.raises(Overloaded, match="250 ms target"):
        admission.check(2_000, 32, far)  # ~1.3 s
    admission.check(200, 32, time.monotonic() + 0.2)  # its batch as the running call's: 145 ms
    admission.started(64)  # a full call runs (40 ms): the request's batch counts full too
    with pytest.raises(Overloaded, match="request deadline"):
        admission.check(200, 32, time.monotonic() + 0.2)  # 40 ms + 264 rows: 205 ms, past 80%
    admission.record(64, 0.01)
    admission.record(64, 0.01)  # 6,400 rows/s
    admission.check(300, 32, far)  # ~57 ms
    with pytest.raises(Overloaded, match="250 ms target"):
        admission.check(1_300, 32, far)  # ~213 ms, past 80% of the 250 ms floor


def test_after_an_overload_a_few_clients_are_served_not_refused():
    # inception_v3 on a slow machine: 4 images/s in full calls of 16, a 3 s deadline
    admission = DeadlineAdmission("m/1/s", batch_rows=16)
    admission.record(1, 10.0)  # warm-up
    admission.record(16, 4.0)
    admission.record(16, 4.0)  # trusted
    admission.started(16)  # under overload: a full call runs and 16 rows wait
    with pytest.raises(Overloaded, match="request deadline"):
        admission.check(16, 1, time.monotonic() + 3)
    admission.ended()
    admission.record(16, 4.0)
    admission.started(1)  # the overload is over: 4 closed-loop clients, calls of a few rows
    admission.check(2, 1, time.monotonic() + 3)  # 0.25 s running, then ~0.75 s: served
    admission.ended()
    admission.record(1, 0.25)
    admission.check(2, 1, time.monotonic() + 3)  # queued behind nothing running: served


def test_a_fresh_batcher_serves_a_burst_its_first_small_call_would_refuse(executor):
    calls: list[int] = []

    def fixed_cost(inputs):  # 20 ms a call, whatever its rows: 50 rows/s after a lone row
        calls.append(len(inputs["x"]))
        time.sleep(0.02)
        return {"y": inputs["x"] * 2}

    async def scenario():
        batcher = Batcher(fixed_cost, executor, max_batch_size=64, batch_timeout_ms=5,
                          max_queue_rows=10_000, name="fixed")
        batcher.start()
        await submit_all(batcher, [rows(0.0)])  # warm-up
        await submit_all(batcher, [rows(1.0)])  # measures: one row in 20 ms, twice
        await submit_all(batcher, [rows(1.0)])
        burst = [{"x": np.full((32, 1), i, dtype=np.float32)} for i in range(16)]
        results = await submit_all(batcher, burst, deadline_s=15)
        await batcher.close()
        return results

    results = asyncio.run(scenario())
    # 512 rows at 50 rows/s read ~10 s, past the 3.84 s target, and each request's own batch
    # counted full would put the last at ~11 s, past 80% of 15 s: the model runs them in 8
    # calls of 20 ms
    assert all(isinstance(r, dict) for r in results), results
    assert [r["y"][0, 0].item() for r in results] == [2.0 * i for i in range(16)]
    assert max(calls) == 64


def test_an_idle_model_takes_a_request_its_target_is_too_short_for():
    far = time.monotonic() + 60
    admission = DeadlineAdmission("m/1/s", batch_rows=4, max_queue_delay_s=0.05)
    admission.record(1, 10.0)
    admission.record(10, 1.0)  # one row takes 0.1 s, twice the target
    admission.record(10, 1.0)
    admission.check(0, 1, far)  # nothing running or queued: refusing would shorten nothing
    admission.started(1)
    with pytest.raises(Overloaded, match="50 ms target"):
        admission.check(0, 1, far)
    admission.ended()
    with pytest.raises(Overloaded, match="request deadline"):  # the deadline still holds
        admission.check(0, 20, time.monotonic() + 1)  # 2 s of work, idle or not


def test_a_configured_target_caps_the_rows_of_each_call(executor):
    calls: list[int] = []

    def ten_rows_per_s(inputs):
        calls.append(len(inputs["x"]))
        time.sleep(0.1 * len(inputs["x"]))
        return {"y": inputs["x"] * 2}

    async def scenario():
        batcher = Batcher(ten_rows_per_s, executor, max_batch_size=8, batch_timeout_ms=50,
                          max_queue_rows=1000, name="capped", max_queue_delay_ms=800)
        batcher.admission.record(1, 1.0)  # warm-up
        batcher.admission.record(10, 1.0)  # 10 rows/s: a third of 80% of 0.8 s holds 2 rows
        batcher.admission.record(10, 1.0)
        batcher.start()
        results = await submit_all(batcher, [rows(i) for i in range(6)])
        await batcher.close()
        return results

    results = asyncio.run(scenario())
    # the sixth would end after 0.1 s per row ahead and 0.2 s for its own call: 0.7 s,
    # past 80% of the target
    assert [r["y"].item() for r in results[:5]] == [0.0, 2.0, 4.0, 6.0, 8.0]
    assert isinstance(results[5], Overloaded)
    assert calls == [2, 2, 1]  # 8 rows allowed, 2 per call
