"""Operations routes.

  GET /healthz                      the process is alive
  GET /readyz                       every model loaded and warmed up (503 with the reason)
  GET /metrics, /monitoring/prometheus/metrics   Prometheus metrics (the second: TF Serving's)
  GET /models                       every model: versions, signatures, labels, training metrics,
                                    model card, warning, its page (/ui/{model}), and the
                                    models a trainer beside the server is still building
  GET /models/{model}/{signature}/example   the export's request example (or zeros), to send
  GET /models/{model}/versions/{version}/training_history.png   the export's training plot

`router` stays open (orchestrators and scrapers); `catalog` is a model route, behind the API
key when one is set. No predict routes.
"""

from __future__ import annotations

from fastapi import APIRouter, Request
from prometheus_client import CONTENT_TYPE_LATEST
from starlette.responses import FileResponse, JSONResponse, Response

from app.codecs import rest
from app.errors import NotFound
from app.http_api.routes.deps import ManagerDep
from app.models import trainer_status
from app.models.servable import HISTORY_PLOT, Servable
from app.serving.readiness import readiness

router = APIRouter(tags=["operations"])
catalog = APIRouter(tags=["models"])


@router.get("/healthz", summary="Liveness")
async def healthz() -> dict:
    return {"status": "alive"}


@router.get("/readyz", summary="Readiness", responses={503: {
    "description": "not ready: models loading, or none served",
    "content": {"application/json": {"schema": {"type": "object", "properties": {
        "status": {"type": "string"}, "error": {"type": "string"}}}}}}})
async def readyz(manager: ManagerDep, request: Request) -> Response:
    is_ready, body = readiness(manager, request.app.state.worker_board)
    return JSONResponse({"status": "ready" if is_ready else "not ready", **body},
                        status_code=200 if is_ready else 503)


@router.get("/metrics", summary="Prometheus metrics", response_class=Response,
            responses={200: {"description": "Prometheus text format",
                             "content": {CONTENT_TYPE_LATEST.split(";")[0]: {}}}})
@router.get("/monitoring/prometheus/metrics", include_in_schema=False)
async def metrics(manager: ManagerDep) -> Response:
    return Response(manager.metrics.exposition(), media_type=CONTENT_TYPE_LATEST)


@catalog.get("/models", summary="All served models")
async def models(manager: ManagerDep) -> dict:
    """Every model with its versions, signatures, label count and training metrics."""
    listing = {}
    training = trainer_status.read(manager.repository.model_dir)
    for name in sorted(set(manager.servables) | set(manager.failures) | set(training)):
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
                "card": s.card,
                "warning": s.warning,
                "training_history": history_url(s),
            } for v, s in sorted(loaded.items(), reverse=True)],
            "ui": f"/ui/{name}",
            "failed_versions": [{"version": f.version, "error": f.error}
                                for f in manager.failures.get(name, {}).values()],
            # a trainer beside the server is building it (app.models.trainer_status); null if not
            "trainer": training.get(name),
        }
    return {"models": listing, "ui": "/ui"}


@catalog.get("/models/{model}/{signature}/example", summary="A request example")
async def example(model: str, signature: str, manager: ManagerDep) -> Response:
    """The export's own example for the signature, else one row of zeros of the right shape:
    a body the predict route takes as it is (also the ones too large for the API docs)."""
    info = manager.get(model).signature(signature)
    return Response(rest.dumps(info.request_example()), media_type="application/json")


@catalog.get("/models/{model}/versions/{version}/training_history.png",
             summary="Training history plot", response_class=FileResponse,
             responses={200: {"content": {"image/png": {}}}})
async def training_history(model: str, version: int, manager: ManagerDep) -> FileResponse:
    """The loss and accuracy curves the export drew (`training_history.png`)."""
    plot = manager.get(model, version).history_plot
    if plot is None:
        raise NotFound(f"{model} version {version} has no training plot (not trained here)")
    return FileResponse(plot, media_type="image/png")


def history_url(servable: Servable) -> str | None:
    """Where the version's training plot is served, if it has one."""
    if servable.history_plot is None:
        return None
    return f"/models/{servable.name}/versions/{servable.version}/{HISTORY_PLOT}"
