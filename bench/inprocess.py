"""The physical limit: the signature called in this process, no HTTP, no JSON."""

from __future__ import annotations

import statistics
import time
from dataclasses import dataclass

from bench.references import load, rows, run_model

# Calls per batch size at least, however long they take: inception's batch of 16 takes ~1.1 s,
# so 1.5 s alone was two calls, and the best of five such rates read a few % high.
MIN_CALLS = 8


@dataclass
class InProcess:
    p50_ms_one_row: float
    best_rows_per_s: float
    best_batch: int
    rows_per_s_by_batch: dict[int, float]


def measure(models_dir, target: str, instance, batches: list[int],
            seconds_per_batch: float = 1.5) -> InProcess:
    function, name, dtype = load(models_dir, target)
    one = rows([instance], dtype, name)
    for _ in range(10):
        run_model(function, name, one)
    times = []
    for _ in range(200):
        started = time.perf_counter()
        run_model(function, name, one)
        times.append(time.perf_counter() - started)
    by_batch = {}
    for size in batches:
        array = rows([instance] * size, dtype, name)
        run_model(function, name, array)
        calls, started = 0, time.perf_counter()
        while time.perf_counter() - started < seconds_per_batch or calls < MIN_CALLS:
            run_model(function, name, array)
            calls += 1
        by_batch[size] = round(calls * size / (time.perf_counter() - started), 1)
    best = max(by_batch, key=by_batch.get)
    return InProcess(round(statistics.median(times) * 1000, 3), by_batch[best], best, by_batch)


