"""What a monitor's counts mean: each summary's live shares beside its reference, its PSI and
state, and the signature's state (the JSON of GET /models/{model}/monitoring, and /metrics).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from app.monitoring.drift import DriftState, psi, shares, state_of, worst
from app.monitoring.monitor import Monitor
from app.settings import Settings


def rate(monitor: Monitor, snapshot: dict, settings: Settings) -> dict[str, Any]:
    """One signature's report from its (merged) snapshot."""
    reference = _reference(monitor, snapshot)
    rows = snapshot["window_rows"]
    enough = reference is not None and rows >= settings.monitoring_min_rows
    summaries, states = [], []
    for summary in monitor.summaries:
        live = np.asarray(snapshot["window"].get(summary.name, [0] * summary.bins))
        ref = None if reference is None else reference.get(summary.name)
        score = psi(live, ref) if ref is not None and live.sum() else None
        state = (state_of(score, settings.drift_watch_psi, settings.drift_psi)
                 if enough and score is not None else DriftState.TOO_FEW_ROWS)
        states.append(state)
        summaries.append({
            "name": summary.name, "source": summary.source, "tensor": summary.tensor,
            "kind": summary.kind, "bins": summary.bin_names(),
            "training" if monitor.from_training else "baseline":
                None if ref is None else _rounded(shares(np.asarray(ref))),
            "live": _rounded(shares(live)), "live_counts": live.tolist(),
            "psi": None if score is None else round(score, 4), "state": state.value,
            **({"floor": summary.params["floor"]} if summary.kind == "low_confidence" else {}),
        })
        if summary.name in monitor.failed:
            summaries[-1]["error"] = "its tensor could not be summarised; left out"
    return {
        "state": worst(states).value,
        "reason": _reason(monitor, snapshot, rows, settings.monitoring_min_rows),
        "baseline": _baseline_text(monitor, snapshot),
        "rows_in_window": rows,
        "rows_seen": snapshot["rows_seen"],
        "summaries": summaries,
    }


def _reference(monitor: Monitor, snapshot: dict) -> dict[str, np.ndarray] | None:
    if monitor.from_training:
        return monitor.profile.reference
    if snapshot["baseline_rows"] < monitor.window.rows_limit:
        return None  # the first window is still filling
    return {k: np.asarray(v) for k, v in (snapshot["baseline"] or {}).items()}


def _baseline_text(monitor: Monitor, snapshot: dict) -> dict[str, Any]:
    if monitor.from_training:
        return {"source": "training profile", "data": monitor.profile.data,
                "rows": monitor.profile.rows}
    return {"source": "first window (the export has no training profile): its outputs only",
            "rows": snapshot["baseline_rows"], "complete":
                snapshot["baseline_rows"] >= monitor.window.rows_limit}


def _reason(monitor: Monitor, snapshot: dict, rows: int, min_rows: int) -> str | None:
    if not monitor.summaries:
        return "nothing to monitor: no training profile and no probability-like output"
    if not monitor.from_training and snapshot["baseline_rows"] < monitor.window.rows_limit:
        return (f"collecting the baseline: {snapshot['baseline_rows']} of "
                f"{monitor.window.rows_limit} rows")
    if rows < min_rows:
        return f"{rows} rows in the window, {min_rows} needed to rate it"
    return None


def _rounded(values: np.ndarray) -> list[float]:
    return [round(float(v), 5) for v in values]
