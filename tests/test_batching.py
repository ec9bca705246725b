"""The dynamic batcher, without HTTP or TensorFlow: deterministic with events, not sleeps."""

from __future__ import annotations

import asyncio
import collections
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

from app.batching import Batcher, Pending, Traffic, take_batch
from app.errors import DeadlineExceeded, InvalidInput, ModelFailed, Overloaded


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


def test_the_wait_for_batch_mates_ends_when_none_can_come(executor):
    """Traffic counts the server's requests: the 1 s timeout is paid by no request here."""

    async def scenario():
        model = GatedModel()
        model.gate.set()
        traffic = Traffic()
        batcher = Batcher(model, executor, max_batch_size=64, batch_timeout_ms=1000,
                          max_queue_rows=100, name="t", traffic=traffic)
        batcher.start()
        deadline = time.monotonic() + 10
        waits = []

        async def timed(awaitable):
            started = time.monotonic()
            result = await awaitable
            waits.append(time.monotonic() - started)
            return result

        # alone in the server: runs at once
        traffic.enter()
        await timed(batcher.submit(rows(1), 1, deadline))
        traffic.leave()
        # a second request still being read: the first waits for it, then both run together
        traffic.enter(), traffic.enter()

        async def late_second():
            await asyncio.sleep(0.1)
            return await batcher.submit(rows(2), 1, deadline)

        await asyncio.gather(timed(batcher.submit(rows(1), 1, deadline)), late_second())
        traffic.leave(), traffic.leave()
        # the other request leaves without a prediction (a GET, an error): the wait ends
        traffic.enter(), traffic.enter()
        asyncio.get_running_loop().call_later(0.1, traffic.leave)
        await timed(batcher.submit(rows(1), 1, deadline))
        traffic.leave()
        await batcher.close()
        return model.calls, waits

    calls, waits = asyncio.run(scenario())
    assert calls == [1, 2, 1]
    assert waits[0] < 0.05, waits
    assert 0.09 <= waits[1] < 0.5, waits
    assert 0.09 <= waits[2] < 0.5, waits


def test_the_next_batch_fills_while_one_runs(executor):
    async def scenario():
        model = GatedModel()
        batcher = Batcher(model, executor, max_batch_size=64, batch_timeout_ms=0,
                          max_queue_rows=100, name="t", on_batch=sizes.append)
        batcher.start()
        first = asyncio.ensure_future(submit_all(batcher, [rows(1)]))
        while not sizes:
            await asyncio.sleep(0.001)
        later = asyncio.ensure_future(submit_all(batcher, [rows(i) for i in range(2, 7)]))
        await asyncio.sleep(0.05)  # all five queue up behind the gated call
        model.gate.set()
        await first, await later
        await batcher.close()

    sizes: list[int] = []
    asyncio.run(scenario())
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


def test_work_beyond_the_deadline_is_refused_at_once_and_the_rest_is_served(loop):
    def slow_model(inputs):  # 50 ms per call, whatever the batch: 20 rows/s at 1 row a batch
        time.sleep(0.05)
        return {"y": inputs["x"] * 2}

    async def scenario():
        with ThreadPoolExecutor(1) as executor:
            batcher = Batcher(slow_model, executor, max_batch_size=1, batch_timeout_ms=0,
                              max_queue_rows=1000, name="slow")
            batcher.start()
            for _ in range(3):  # teach it the model's pace
                await batcher.submit({"x": np.ones((1, 1))}, 1, time.monotonic() + 5)
            assert 10 < batcher.rows_per_s < 25

            async def one():
                started = time.monotonic()
                try:
                    await batcher.submit({"x": np.ones((1, 1))}, 1, started + 0.3)
                    return "ok", time.monotonic() - started
                except Overloaded:
                    return "refused", time.monotonic() - started
                except DeadlineExceeded:
                    return "late", time.monotonic() - started

            outcomes = await asyncio.gather(*[one() for _ in range(20)])
            await batcher.close()
            return outcomes

    outcomes = loop.run_until_complete(scenario())
    kinds = [kind for kind, _ in outcomes]
    refused = [t for kind, t in outcomes if kind == "refused"]
    assert 3 <= kinds.count("ok") <= 7  # ~0.3 s of work was admitted
    assert kinds.count("late") <= 1  # at most the one admitted right at the edge
    assert len(refused) >= 12 and max(refused) < 0.01  # the rest, refused without waiting
