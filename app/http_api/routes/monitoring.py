"""Prediction monitoring over HTTP.

  GET /models/{model}/monitoring[?version=N]   each served version's signatures: the window,
                                               rows seen, every summary's live shares beside
                                               its training (or first-window) shares, PSI,
                                               state; the model's worst state on top
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Query

from app.errors import NotFound
from app.http_api.routes.deps import ManagerDep
from app.monitoring.drift import DriftState, worst
from app.monitoring.report import rate

router = APIRouter(tags=["models"])


@router.get("/models/{model}/monitoring", summary="Prediction monitoring (drift)")
async def monitoring(model: str, manager: ManagerDep,
                     version: int | None = Query(None, ge=1)) -> dict[str, Any]:
    """What the model saw and answered in the latest window against its training data: per
    version and signature, a population stability index per summary and a state (ok, watch,
    drift, too few rows)."""
    manager.get(model, version)  # the same 404 / 503 as every model route
    settings = manager.settings
    if not settings.monitoring:
        raise NotFound("monitoring is off (TFSERVE_MONITORING=false)")
    versions: dict[int, dict[str, Any]] = {}
    for (_, number, signature), (monitor, snapshot) in \
            manager.monitoring.snapshots(model).items():
        if version is None or number == version:
            entry = versions.setdefault(number, {"version": number, "signatures": {}})
            entry["signatures"][signature] = rate(monitor, snapshot, settings)
            entry["sketch_bytes"] = entry.get("sketch_bytes", 0) + monitor.nbytes
    for entry in versions.values():
        entry["state"] = worst([DriftState(s["state"])
                                for s in entry["signatures"].values()]).value
    listed = sorted(versions.values(), key=lambda v: v["version"], reverse=True)
    return {
        "model": model,
        "state": worst([DriftState(v["state"]) for v in listed]).value,
        "window": {"rows": settings.monitoring_window_rows,
                   "seconds": settings.monitoring_window_s,
                   "min_rows": settings.monitoring_min_rows,
                   "sample_rate": settings.monitoring_sample_rate},
        "thresholds": {"watch": settings.drift_watch_psi, "drift": settings.drift_psi},
        "workers": manager.monitoring.workers_sharing,
        "versions": listed,
    }
