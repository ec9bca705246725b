"""Whether the server is ready, and why not: one answer for /readyz, the v2 health routes, and
gRPC's ServerReady and health service."""

from __future__ import annotations

from app.models.manager import ModelManager
from app.workers import WorkerBoard


def readiness(manager: ModelManager, board: WorkerBoard | None) -> tuple[bool, dict]:
    """Ready when this worker's models are; with several workers, when all of them are.

    A version whose circuit breaker is open is listed under "unhealthy" with the reason; the
    server stays ready while any version serves (the others' traffic, and the probes that
    close a breaker again, need it), and is not ready once none can."""
    if not manager.ready:
        return False, {"error": manager.not_ready_reason}
    body: dict = {"models": {m: sorted(v) for m, v in manager.servables.items()}}
    unhealthy = {f"{s.name}/{s.version}": s.breaker.reason
                 for versions in manager.servables.values() for s in versions.values()
                 if not s.healthy}
    if unhealthy:
        body["unhealthy"] = unhealthy
        serving = sum(len(versions) for versions in manager.servables.values())
        if len(unhealthy) == serving:
            return False, {"error": "every model version's circuit breaker is open", **body}
    if board is not None:
        ready, reason, body["workers"] = board.readiness()
        if not ready:
            return False, {"error": reason, **body}
    return True, body
