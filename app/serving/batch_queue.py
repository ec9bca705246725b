"""The batcher's queue: waiting requests, how the next batch is taken from them, how its
rows are joined and its outputs split back, and the deadline timers (app.serving.batching).
"""

from __future__ import annotations

import asyncio
import collections
import math
import time
from dataclasses import dataclass, field

import numpy as np

from app.errors import ModelFailed

DEADLINE_SLOT_S = 0.01  # deadlines are kept this precisely (DeadlineTimers)

Arrays = dict[str, np.ndarray]


@dataclass(eq=False)
class Pending:
    """One waiting request: its rows, and the future its caller awaits."""

    inputs: Arrays
    rows: int
    future: asyncio.Future
    enqueued_at: float = field(default_factory=time.monotonic)

    def shape_key(self) -> tuple:
        """Requests can share a batch only if their non-batch dimensions agree."""
        return tuple((k, v.shape[1:]) for k, v in sorted(self.inputs.items()))


def take_batch(queue: collections.deque[Pending], max_rows: int) -> list[Pending]:
    """Pop the requests of the next batch from the front of `queue`.

    Always returns at least one request when the queue holds a live one (a request larger than
    `max_rows` runs alone). Cancelled requests are dropped; requests whose shapes differ from
    the first one's stay queued, in order, for a later batch.
    """
    batch: list[Pending] = []
    skipped: list[Pending] = []
    rows = 0
    shape_key = None
    while queue:
        item = queue.popleft()
        if item.future.done():
            continue
        if not batch:
            batch.append(item)
            rows, shape_key = item.rows, item.shape_key()
            continue
        if item.shape_key() != shape_key:
            skipped.append(item)
            continue
        if rows + item.rows > max_rows:
            queue.appendleft(item)
            break
        batch.append(item)
        rows += item.rows
    queue.extendleft(reversed(skipped))
    return batch


def concatenate(batch: list[Pending]) -> Arrays:
    if len(batch) == 1:
        return batch[0].inputs
    return {name: np.concatenate([p.inputs[name] for p in batch])
            for name in batch[0].inputs}


def split(outputs: Arrays, batch: list[Pending]) -> list[Arrays]:
    """Each request's rows of the outputs, in batch order."""
    total = sum(p.rows for p in batch)
    for name, array in outputs.items():
        if array.ndim == 0 or array.shape[0] != total:
            raise ModelFailed(f"output {name!r} has {array.shape[0] if array.ndim else 0} rows "
                              f"for a batch of {total} input rows")
    results, start = [], 0
    for pending in batch:
        end = start + pending.rows
        results.append({name: array[start:end] for name, array in outputs.items()})
        start = end
    return results


class DeadlineTimers:
    """Futures cancelled once their deadlines pass, by one timer per DEADLINE_SLOT_S.

    A timer per request (asyncio.timeout_at, or a bare call_at: a libuv timer each on uvloop)
    was the largest single cost of waiting for a batch. Deadlines are grouped in slots instead:
    the first future of a slot starts its timer, the others join a set, and a future answered
    in time leaves it. A deadline fires up to one slot late, never early. Deadlines use
    time.monotonic, which is asyncio's clock.
    """

    def __init__(self) -> None:
        self._slots: dict[int, set[asyncio.Future]] = {}

    def add(self, future: asyncio.Future, deadline: float) -> int:
        slot = math.ceil(deadline / DEADLINE_SLOT_S)
        members = self._slots.get(slot)
        if members is None:
            members = self._slots[slot] = set()
            future.get_loop().call_at(slot * DEADLINE_SLOT_S, self._expire, slot)
        members.add(future)
        return slot

    def discard(self, future: asyncio.Future, slot: int) -> None:
        members = self._slots.get(slot)
        if members is not None:
            members.discard(future)

    def _expire(self, slot: int) -> None:
        for future in self._slots.pop(slot, ()):
            future.cancel()
