"""Operations routes.

  GET /healthz, /v2/health/live     the process is alive
  GET /readyz,  /v2/health/ready    every model loaded and warmed up (503 with the reason)
  GET /metrics                      Prometheus metrics
  GET /models                       every model: versions, signatures, labels, training metrics

`router` stays open (orchestrators and scrapers); `catalog` is a model route, behind the API
key when one is set. No predict routes.
"""

from __future__ import annotations

from fastapi import APIRouter, Request
from prometheus_client import CONTENT_TYPE_LATEST
from starlette.responses import JSONResponse, Response

from app.routes.deps import ManagerDep

router = APIRouter(tags=["operations"])
catalog = APIRouter(tags=["models"])


@router.get("/healthz", summary="Liveness")
@router.get("/v2/health/live", include_in_schema=False)
async def healthz() -> dict:
    return {"status": "alive"}


@router.get("/readyz", summary="Readiness", responses={503: {
    "description": "not ready: models loading, or none served",
    "content": {"application/json": {"schema": {"type": "object", "properties": {
        "status": {"type": "string"}, "error": {"type": "string"}}}}}}})
@router.get("/v2/health/ready", include_in_schema=False)
async def readyz(manager: ManagerDep, request: Request) -> Response:
    """Ready when this worker's models are; with several workers, when all of them are."""
    if not manager.ready:
        return JSONResponse({"status": "not ready", "error": manager.not_ready_reason},
                            status_code=503)
    body = {"status": "ready", "models": {m: sorted(v) for m, v in manager.servables.items()}}
    board = request.app.state.worker_board
    if board is not None:
        ready, reason, body["workers"] = board.readiness()
        if not ready:
            body.update(status="not ready", error=reason)
            return JSONResponse(body, status_code=503)
    return JSONResponse(body)


@router.get("/metrics", summary="Prometheus metrics", response_class=Response,
            responses={200: {"description": "Prometheus text format",
                             "content": {CONTENT_TYPE_LATEST.split(";")[0]: {}}}})
async def metrics(manager: ManagerDep) -> Response:
    return Response(manager.metrics.exposition(), media_type=CONTENT_TYPE_LATEST)


@catalog.get("/models", summary="All served models")
async def models(manager: ManagerDep) -> dict:
    """Every model with its versions, signatures, label count and training metrics."""
    listing = {}
    for name in sorted(set(manager.servables) | set(manager.failures)):
        loaded = manager.servables.get(name, {})
        listing[name] = {
            "default_version": max(loaded) if loaded else None,
            "versions": [{
                "version": v, "state": s.state.value, "labels": len(s.labels),
                "signatures": {sig: {
                    "inputs": {k: {"dtype": t.dtype, "shape": list(t.shape or [])}
                               for k, t in info.inputs.items()},
                    "outputs": {k: {"dtype": t.dtype, "shape": list(t.shape or [])}
                                for k, t in info.outputs.items()}}
                    for sig, info in s.signatures.items()},
                "training": s.training_metrics,
            } for v, s in sorted(loaded.items(), reverse=True)],
            "failed_versions": [{"version": f.version, "error": f.error}
                                for f in manager.failures.get(name, {}).values()],
        }
    return {"models": listing}
