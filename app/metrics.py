"""Prometheus metrics, one collector registry per app (so tests can build many apps).

With several workers (app.workers) prometheus-client runs in multiprocess mode: every
worker writes its values to files in the shared folder and /metrics, in whichever worker
answers, reads them all: counters and histograms summed, live gauges summed over the
live workers.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from pathlib import Path

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.registry import Collector

BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024)
LATENCY_BUCKETS = (.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30)
LABELS = ("model", "version", "signature")
GAUGE_REFRESH_S = 1.0  # multiprocess mode: how often sampled gauges are written


class Metrics:
    def __init__(self, shared_dir: Path | None = None) -> None:
        self.registry = CollectorRegistry()
        self.shared_dir = shared_dir
        self._sampled: dict[tuple[str, ...], Callable[[], float]] = {}
        r = self.registry
        self.requests = Counter("tfserve_requests", "Prediction requests by outcome.",
                                (*LABELS, "status"), registry=r)
        self.latency = Histogram("tfserve_request_latency_seconds",
                                 "Prediction request latency, from parsing the body to "
                                 "the encoded answer.", LABELS,
                                 buckets=LATENCY_BUCKETS, registry=r)
        self.batch_size = Histogram("tfserve_batch_size", "Rows per model call.", LABELS,
                                    buckets=BATCH_BUCKETS, registry=r)
        self.queue_rows = Gauge("tfserve_queue_rows", "Rows waiting for a batch.", LABELS,
                                registry=r, multiprocess_mode="livesum")
        self.load_seconds = Gauge("tfserve_model_load_seconds",
                                  "Time to load a model version (the slowest worker).",
                                  ("model", "version"), registry=r, multiprocess_mode="max")
        self.warmup_seconds = Gauge("tfserve_model_warmup_seconds",
                                    "Time to warm up a model version, all signatures (the "
                                    "slowest worker).", ("model", "version"), registry=r,
                                    multiprocess_mode="max")
        self.breaker_trips = Counter("tfserve_breaker_trips",
                                     "Times a version's circuit breaker opened.",
                                     ("model", "version"), registry=r)
        self.request_log_dropped = Counter("tfserve_request_log_dropped",
                                           "Request log lines dropped: its queue was full.",
                                           registry=r)
        self.model_failures = Counter("tfserve_model_load_failures",
                                      "Versions that failed to load.", ("model",), registry=r)
        # prometheus-client's labels() takes a lock and rebuilds its key on every call: a few
        # µs per request, twice; the children of a request's labels are looked up once
        self._counted: dict[tuple[str, ...], Counter] = {}
        self._timed: dict[tuple[str, ...], Histogram] = {}
        self._computed: list[Collector] = []

    def add_collector(self, collector: Collector) -> None:
        """Metrics computed at scrape time (monitoring's): with workers, beside the files."""
        self._computed.append(collector)
        if self.shared_dir is None:
            self.registry.register(collector)

    def observe_request(self, labels: tuple[str, str, str], status: str,
                        latency_s: float) -> None:
        """Count one prediction request of `labels` (model, version, signature) by outcome,
        and its latency."""
        key = (*labels, status)
        counted = self._counted.get(key)
        if counted is None:
            counted = self._counted[key] = self.requests.labels(*key)
        counted.inc()
        timed = self._timed.get(labels)
        if timed is None:
            timed = self._timed[labels] = self.latency.labels(*labels)
        timed.observe(latency_s)

    def watch_queue(self, labels: tuple[str, ...], read: Callable[[], float]) -> None:
        """Make the queue gauge of `labels` show `read()`: at scrape time in one process;
        with workers, written every GAUGE_REFRESH_S (the scrape may reach another worker)."""
        if self.shared_dir is None:
            self.queue_rows.labels(*labels).set_function(read)
        else:
            self.queue_rows.labels(*labels).set(read())
            self._sampled[labels] = read

    def unwatch_queue(self, labels: tuple[str, ...]) -> None:
        """A released version's gauge goes, and with it the reference to its batcher (with
        workers its last value stays in the files: 0)."""
        if self.shared_dir is not None:
            self._sampled.pop(labels, None)
            self.queue_rows.labels(*labels).set(0)
            return
        with contextlib.suppress(KeyError):
            self.queue_rows.remove(*labels)

    async def refresh_forever(self) -> None:
        while True:
            await asyncio.sleep(GAUGE_REFRESH_S)
            for labels, read in list(self._sampled.items()):
                self.queue_rows.labels(*labels).set(read())

    def exposition(self) -> bytes:
        if self.shared_dir is None:
            return generate_latest(self.registry)
        merged = CollectorRegistry()
        MultiProcessCollector(merged, path=str(self.shared_dir))
        for collector in self._computed:
            merged.register(collector)
        return generate_latest(merged)
