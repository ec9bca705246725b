"""Prometheus metrics, one collector registry per app (so tests can build many apps)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024)
LATENCY_BUCKETS = (.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30)
LABELS = ("model", "version", "signature")


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
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
                                registry=r)
        self.load_seconds = Gauge("tfserve_model_load_seconds",
                                  "Time to load a model version.", ("model", "version"),
                                  registry=r)
        self.warmup_seconds = Gauge("tfserve_model_warmup_seconds",
                                    "Time to warm up a model version (all signatures).",
                                    ("model", "version"), registry=r)
        self.model_failures = Counter("tfserve_model_load_failures",
                                      "Versions that failed to load.", ("model",), registry=r)
