"""One signature's monitor: its summaries folded batch by batch into a window and totals.

`fold()` runs in the monitoring thread (app.monitoring.service), never on the event loop;
`snapshot()` is what a report, /metrics or another worker reads. A signature without a
training profile collects its first window as the baseline, then rates what follows.
"""

from __future__ import annotations

import threading
import time
from typing import Any

import numpy as np

from app.monitoring.profile import SignatureProfile
from app.monitoring.summaries import Summary
from app.monitoring.window import Counts, Window

Arrays = dict[str, np.ndarray]


class Monitor:
    def __init__(self, key: tuple[str, int, str], profile: SignatureProfile,
                 window_rows: int, window_s: float) -> None:
        self.key = key
        self.profile = profile
        self.summaries: list[Summary] = profile.summaries
        self.window = Window(window_rows, window_s)
        self.active = False  # off while the version warms up
        self.failed: set[str] = set()  # summaries whose tensor was missing or unreadable
        self.rows_seen = 0
        self.totals: Counts = {s.name: np.zeros(s.bins, np.int64) for s in self.summaries}
        self.sums: dict[str, float] = {s.name: 0.0 for s in self.summaries
                                       if s.kind == "confidence"}
        self.baseline: Counts | None = {} if profile.reference is None else None
        self.baseline_rows = 0
        self._lock = threading.Lock()

    @property
    def from_training(self) -> bool:
        return self.profile.reference is not None

    def fold(self, inputs: Arrays, outputs: Arrays, now: float | None = None) -> None:
        """Add one model call's rows (the monitoring thread), in pieces no larger than a
        window segment and cut where the first-window baseline ends, so that the window
        keeps its length and the baseline its rows exactly."""
        rows = _rows(outputs) or _rows(inputs)
        begin = 0
        while begin < rows:
            end = min(rows, begin + self._next_piece())
            self._fold_rows(_sliced(inputs, rows, begin, end), _sliced(outputs, rows, begin, end),
                            end - begin, time.monotonic() if now is None else now)
            begin = end

    def _next_piece(self) -> int:
        if self.baseline is not None and self.baseline_rows < self.window.rows_limit:
            return self.window.rows_limit - self.baseline_rows
        return self.window.segment_rows

    def _fold_rows(self, inputs: Arrays, outputs: Arrays, rows: int, now: float) -> None:
        memo: dict = {}
        counts: Counts = {}
        sums: dict[str, float] = {}
        for summary in self.summaries:
            tensor = (inputs if summary.source == "input" else outputs).get(summary.tensor)
            if tensor is None or summary.name in self.failed:
                continue
            try:
                counts[summary.name] = summary.counts(tensor, memo)
                if summary.name in self.sums:
                    sums[summary.name] = float(summary.values(tensor, memo).sum())
            except (ValueError, TypeError, IndexError):
                self.failed.add(summary.name)  # e.g. a foreign output that is not 2-D
        with self._lock:
            self._add(counts, sums, rows, now)

    def _add(self, counts: Counts, sums: dict[str, float], rows: int, now: float) -> None:
        self.rows_seen += rows
        for name, added in counts.items():
            self.totals[name] += added
        for name, added in sums.items():
            self.sums[name] += added
        if self.baseline is None:
            self.window.add(counts, rows, now)
            return
        # no training profile: the first window's rows become the baseline
        if self.baseline_rows < self.window.rows_limit:
            for name, added in counts.items():
                held = self.baseline.get(name)
                self.baseline[name] = added.copy() if held is None else held + added
            self.baseline_rows += rows
        else:
            self.window.add(counts, rows, now)

    def snapshot(self, now: float | None = None) -> dict[str, Any]:
        """The monitor's counts in plain JSON types (what a worker shares)."""
        with self._lock:
            rows, window = self.window.totals(time.monotonic() if now is None else now)
            return {"rows_seen": self.rows_seen, "window_rows": rows,
                    "window": {k: v.tolist() for k, v in window.items()},
                    "totals": {k: v.tolist() for k, v in self.totals.items()},
                    "sums": dict(self.sums),
                    "baseline": (None if self.baseline is None else
                                 {k: v.tolist() for k, v in self.baseline.items()}),
                    "baseline_rows": self.baseline_rows}

    @property
    def nbytes(self) -> int:
        """The sketch's memory: window segments, totals and baseline counts."""
        held = self.window.nbytes + sum(v.nbytes for v in self.totals.values())
        return held + sum(v.nbytes for v in (self.baseline or {}).values())


def _sliced(arrays: Arrays, rows: int, begin: int, end: int) -> Arrays:
    if begin == 0 and end == rows:
        return arrays
    return {k: v[begin:end] if np.ndim(v) and len(v) == rows else v for k, v in arrays.items()}


def _rows(arrays: Arrays) -> int:
    for array in arrays.values():
        shape = np.shape(array)
        if shape:
            return int(shape[0])
    return 0
