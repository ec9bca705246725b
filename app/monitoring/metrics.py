"""Monitoring's Prometheus metrics, computed at scrape time from the (merged) monitors.

  tfserve_drift_psi{model,version,signature,summary}       the window's PSI (gauge)
  tfserve_drift_state{model,version,signature}             -1 too few rows, 0 ok, 1 watch,
                                                           2 drift (gauge)
  tfserve_monitoring_window_rows{model,version,signature}  rows the window holds (gauge)
  tfserve_low_confidence_share{model,version,signature,output}  window share under the floor
  tfserve_monitored_rows_total{model,version,signature}    rows folded since start
  tfserve_predicted_class_total{model,version,signature,output,class}
  tfserve_prediction_confidence{model,version,signature,output}  top-score histogram since
                                                           start (a bucket's `le` excludes it)
  tfserve_monitoring_dropped_total                         batches not folded: queue full
                                                           (the answering worker's)

With workers the numbers are every live worker's, added (app.monitoring.service).
"""

from __future__ import annotations

from collections.abc import Iterator

from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)

from app.monitoring.drift import DriftState
from app.monitoring.report import rate
from app.monitoring.service import Monitoring

SIGNATURE = ["model", "version", "signature"]


class MonitoringCollector:
    def __init__(self, monitoring: Monitoring) -> None:
        self.monitoring = monitoring

    def collect(self) -> Iterator[Metric]:
        psi = GaugeMetricFamily("tfserve_drift_psi", "Population stability index of a "
                                "summary's live window against its training profile.",
                                labels=[*SIGNATURE, "summary"])
        state = GaugeMetricFamily("tfserve_drift_state", "Drift state of a signature: -1 too "
                                  "few rows, 0 ok, 1 watch, 2 drift.", labels=SIGNATURE)
        window = GaugeMetricFamily("tfserve_monitoring_window_rows",
                                   "Rows in a signature's monitoring window.", labels=SIGNATURE)
        low = GaugeMetricFamily("tfserve_low_confidence_share", "Share of the window's "
                                "answers whose top score is under the confidence floor.",
                                labels=[*SIGNATURE, "output"])
        rows = CounterMetricFamily("tfserve_monitored_rows", "Rows folded into monitoring.",
                                   labels=SIGNATURE)
        classes = CounterMetricFamily("tfserve_predicted_class", "Predicted classes.",
                                      labels=[*SIGNATURE, "output", "class"])
        confidence = HistogramMetricFamily("tfserve_prediction_confidence",
                                           "Top score of each answer.",
                                           labels=[*SIGNATURE, "output"])
        settings = self.monitoring.settings
        for (model, version, signature), (monitor, snapshot) in \
                self.monitoring.snapshots().items():
            labels = [model, str(version), signature]
            report = rate(monitor, snapshot, settings)
            state.add_metric(labels, DriftState(report["state"]).level)
            window.add_metric(labels, snapshot["window_rows"])
            rows.add_metric(labels, snapshot["rows_seen"])
            for summary, rated in zip(monitor.summaries, report["summaries"], strict=True):
                if rated["psi"] is not None:
                    psi.add_metric([*labels, summary.name], rated["psi"])
                totals = snapshot["totals"].get(summary.name)
                if summary.kind == "class" and totals is not None:
                    for label, count in zip(summary.labels, totals, strict=True):
                        classes.add_metric([*labels, summary.tensor, label], count)
                elif summary.kind == "confidence" and totals is not None:
                    cumulative, buckets = 0, []
                    for edge, count in zip([*summary.edges, float("inf")], totals, strict=True):
                        cumulative += count
                        buckets.append((_le(edge), cumulative))
                    confidence.add_metric([*labels, summary.tensor], buckets,
                                          snapshot["sums"].get(summary.name, 0.0))
                elif summary.kind == "low_confidence" and sum(rated["live_counts"]):
                    low.add_metric([*labels, summary.tensor], rated["live"][0])
        yield from (psi, state, window, low, rows, classes, confidence)
        yield CounterMetricFamily("tfserve_monitoring_dropped", "Batches left out of "
                                  "monitoring: its queue was full.", self.monitoring.dropped)


def _le(edge: float) -> str:
    return "+Inf" if edge == float("inf") else f"{edge:g}"
