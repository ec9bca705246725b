"""create_app(): the FastAPI application, wired from its parts.

The manager loads and warms up the models in the background after startup, so /healthz answers
at once and /readyz says 503 until every model is warm. HTTP requests pass, outermost first:
CORS (when configured), the request id (app.tracing), the request count (app.serving.traffic),
the body limit, the fast path of the predict routes (app.http_api.routes.table), then FastAPI's
own stack (its error pages, telemetry and router) for everything else. That chain sits in front
of FastAPI rather than inside it (`ServingApp`): a predict request then never enters FastAPI's
layers, which cost ~5% of the event loop's time per mnist request.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import signal
from collections.abc import Callable
from contextlib import asynccontextmanager

from fastapi import FastAPI
from fastapi.middleware.cors import CORSMiddleware
from starlette.types import ASGIApp, Receive, Scope, Send

from app import errors, workers
from app.grpc_api.server import GrpcServer
from app.http_api import openapi, security
from app.http_api.access_log import AccessLog
from app.http_api.middleware import BodyLimit, CountRequests
from app.http_api.routes import PREDICT_ROUTES, PROTOCOLS, monitoring, ops, ui, v2
from app.http_api.routes.table import FastPath, api_router
from app.metrics import Metrics
from app.models import loader
from app.models.manager import ModelManager
from app.serving.predict import PredictCore
from app.serving.readiness import readiness
from app.serving.request_log import RequestLog
from app.serving.traffic import Traffic
from app.settings import Settings, get_settings
from app.tracing import RequestID

VERSION = "0.1.0"


class ServingApp(FastAPI):
    """FastAPI, entered through `front` for HTTP requests: the serving middleware and the
    predict fast path, ending in FastAPI's own `__call__`. Lifespan events go to FastAPI
    directly; `app.state`, the routes and the OpenAPI document are FastAPI's as ever."""

    front: ASGIApp | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and self.front is not None:
            scope["app"] = self  # what Starlette sets; the fast path's endpoints read it
            await self.front(scope, receive, send)
        else:
            await super().__call__(scope, receive, send)


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or get_settings()
    loader.configure_threads(*settings.tf_threads())
    traffic = Traffic()
    metrics = Metrics(settings.multiproc_dir)
    manager = ModelManager(settings, metrics, traffic)
    board = None
    if settings.multiproc_dir is not None:  # one of several workers (app.workers)
        board = workers.WorkerBoard(settings.multiproc_dir, settings.worker_count)
    request_log = _request_log(settings, metrics)
    core = PredictCore(manager, settings, metrics, request_log)
    grpc_server = None
    if settings.grpc_port:
        grpc_server = GrpcServer(settings, core, board, VERSION,
                                 lambda: readiness(manager, board)[0])
    manager.on_readiness = _readiness_listeners(board, grpc_server)

    @asynccontextmanager
    async def lifespan(_: FastAPI):
        if settings.model_config_file is None and not settings.model_dir.is_dir():
            raise RuntimeError(f"model directory {settings.model_dir.resolve()} does not "
                               "exist: set TFSERVE_MODEL_DIR or run `make models`")
        if request_log is not None:
            request_log.start()
            with contextlib.suppress(ValueError):  # not the main thread (in-process tests)
                signal.signal(signal.SIGHUP, lambda *_: request_log.reopen())
        background = [manager.start()]
        if board is not None:
            workers.reap_dead(settings.multiproc_dir)
            board.publish(False, manager.not_ready_reason)
            background.append(metrics.refresh_forever())
            if board.others_ready():
                # A replacement for a dead worker: uvicorn accepts connections only after
                # the lifespan's startup, so load first. Serving at once sent the clients
                # the kernel gave it 503s while the other workers were ready.
                await background.pop(0)
        loop = asyncio.get_running_loop()
        tasks = [loop.create_task(job) for job in background]
        if grpc_server is not None:
            await grpc_server.start()
        try:
            yield
        finally:
            if board is not None:
                board.withdraw()
            if grpc_server is not None:  # uvicorn has drained HTTP; now gRPC's calls
                await grpc_server.stop(settings.shutdown_grace_s)
            for task in tasks:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
            await manager.close()
            if request_log is not None:
                await asyncio.to_thread(request_log.close)
            if access_log is not None:
                access_log.flush()

    app = ServingApp(title="tfserve", version=VERSION, lifespan=lifespan, docs_url=None,
                  redoc_url=None, openapi_url="/openapi.json")
    app.state.settings = settings
    app.state.manager = manager
    app.state.worker_board = board
    app.state.core = core
    access_log = (AccessLog(json_lines=settings.log_format == "json")
                  if settings.log_level in ("DEBUG", "INFO") else None)
    errors.install(app)
    app.front = _front(settings, traffic, access_log, functools.partial(FastAPI.__call__, app))
    app.include_router(ops.router)
    app.include_router(v2.health)
    protected = security.model_route_dependencies(settings)
    app.include_router(ops.catalog, dependencies=protected)
    app.include_router(ui.router, dependencies=protected)
    app.include_router(monitoring.router, dependencies=protected)
    for module in PROTOCOLS:
        app.include_router(module.router, dependencies=protected)
    app.include_router(api_router(PREDICT_ROUTES, protected))
    openapi.install(app)
    ui.install(app)
    return app


def _request_log(settings: Settings, metrics: Metrics) -> RequestLog | None:
    if not settings.request_log:
        return None
    return RequestLog(settings.request_log, settings.request_log_sample,
                      settings.request_log_payloads, settings.request_log_max_bytes,
                      on_drop=metrics.request_log_dropped.inc)


def _readiness_listeners(board: workers.WorkerBoard | None, grpc_server: GrpcServer | None
                         ) -> Callable[[bool, str], None]:
    """What hears of this process's readiness: the workers' board, gRPC's health service."""

    pending: set[asyncio.Task] = set()  # held until done (the loop keeps weak references)

    def tell(ready: bool, reason: str) -> None:
        if board is not None:
            board.publish(ready, reason)
        if grpc_server is not None:
            task = asyncio.get_running_loop().create_task(grpc_server.health.follow(ready))
            pending.add(task)
            task.add_done_callback(pending.discard)

    return tell


def _front(settings: Settings, traffic: Traffic, access_log: AccessLog | None,
           rest: ASGIApp) -> ASGIApp:
    """The middleware every HTTP request passes, outermost last; `rest` is FastAPI."""
    front = FastPath(rest, routes=PREDICT_ROUTES) if settings.direct_predict else rest
    front = BodyLimit(front, limit=settings.max_body_bytes)
    front = CountRequests(front, traffic=traffic)
    # outside the body limit: its 413 carries the id too, and gets its access line
    front = RequestID(front, access_log=access_log)
    if settings.cors_origins:  # outermost, so refusals carry CORS headers too
        front = CORSMiddleware(front, allow_origins=settings.cors_origins,
                               allow_methods=["GET", "POST"],
                               allow_headers=["Authorization", "Content-Type", "X-API-Key"])
    return front
