"""A sliding window of bin counts, kept as a few segments instead of per batch.

The window is the latest `rows` rows no older than `seconds`, to the granularity of one
segment (1/SEGMENTS of either; a monitor adds at most a segment's rows at a time): memory is
(SEGMENTS + 1) x the summaries' bins, whatever the traffic, and adding a batch costs one
vector add per summary.
"""

from __future__ import annotations

import collections
from dataclasses import dataclass, field

import numpy as np

SEGMENTS = 20

Counts = dict[str, np.ndarray]


@dataclass
class Segment:
    started: float
    last: float
    rows: int = 0
    counts: Counts = field(default_factory=dict)


class Window:
    def __init__(self, rows: int, seconds: float) -> None:
        self.rows_limit = rows
        self.seconds = seconds
        self.segment_rows = max(1, rows // SEGMENTS)
        self._segment_s = seconds / SEGMENTS if seconds else 0.0
        self._segments: collections.deque[Segment] = collections.deque()

    def add(self, counts: Counts, rows: int, now: float) -> None:
        current = self._segments[-1] if self._segments else None
        if (current is None or current.rows >= self.segment_rows
                or (self._segment_s and now - current.started >= self._segment_s)):
            current = Segment(now, now)
            self._segments.append(current)
        for name, added in counts.items():
            held = current.counts.get(name)
            current.counts[name] = added.copy() if held is None else held + added
        current.rows += rows
        current.last = now
        self._evict(now)

    def _evict(self, now: float) -> None:
        segments = self._segments
        while len(segments) > 1 and self.rows - segments[0].rows >= self.rows_limit:
            segments.popleft()
        while segments and self.seconds and now - segments[0].last > self.seconds:
            segments.popleft()

    @property
    def rows(self) -> int:
        return sum(s.rows for s in self._segments)

    def totals(self, now: float) -> tuple[int, Counts]:
        """Rows in the window and the summed counts per summary."""
        self._evict(now)
        summed: Counts = {}
        for segment in self._segments:
            for name, counts in segment.counts.items():
                held = summed.get(name)
                summed[name] = counts.copy() if held is None else held + counts
        return self.rows, summed

    @property
    def nbytes(self) -> int:
        return sum(c.nbytes for s in self._segments for c in s.counts.values())
