"""Drift scores: the population stability index of a live histogram against its reference.

PSI = sum over bins of (live% - ref%) * ln(live% / ref%), each share floored at PSI_FLOOR so
that an empty bin counts as rare rather than infinite. Common practice reads it as: under 0.1
no real change, 0.1-0.25 a moderate one worth watching, above 0.25 a significant shift; the
thresholds are settings (`TFSERVE_DRIFT_WATCH_PSI`, `TFSERVE_DRIFT_PSI`).
"""

from __future__ import annotations

import enum

import numpy as np

PSI_FLOOR = 1e-4


class DriftState(enum.StrEnum):
    OK = "ok"
    WATCH = "watch"
    DRIFT = "drift"
    TOO_FEW_ROWS = "too few rows"

    @property
    def level(self) -> int:
        """The number Prometheus gets: -1 too few rows, 0 ok, 1 watch, 2 drift."""
        return {"too few rows": -1, "ok": 0, "watch": 1, "drift": 2}[self.value]


def shares(counts: np.ndarray) -> np.ndarray:
    total = counts.sum()
    return counts / total if total else np.zeros(len(counts))


def psi(live: np.ndarray, reference: np.ndarray) -> float:
    """The population stability index of two histograms over the same bins."""
    live_share = np.maximum(shares(np.asarray(live, dtype=np.float64)), PSI_FLOOR)
    ref_share = np.maximum(shares(np.asarray(reference, dtype=np.float64)), PSI_FLOOR)
    return float(np.sum((live_share - ref_share) * np.log(live_share / ref_share)))


def state_of(score: float, watch: float, drift: float) -> DriftState:
    if score >= drift:
        return DriftState.DRIFT
    if score >= watch:
        return DriftState.WATCH
    return DriftState.OK


def worst(states: list[DriftState]) -> DriftState:
    """A signature's (or model's) state: its worst summary's; too few rows when nothing has
    enough."""
    rated = [s for s in states if s is not DriftState.TOO_FEW_ROWS]
    return max(rated, key=lambda s: s.level) if rated else DriftState.TOO_FEW_ROWS
