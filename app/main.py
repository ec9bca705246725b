"""create_app(): the FastAPI application, wired from its parts.

The manager loads and warms up the models in the background after startup, so /healthz
answers at once and /readyz says 503 until every model is warm. Requests pass, outermost
first: CORS (when configured), the request count (app.traffic), the body limit, the fast
path of the predict routes (app.routes.table), then FastAPI's router for everything else.
"""

from __future__ import annotations

import asyncio
import contextlib
from contextlib import asynccontextmanager

from fastapi import FastAPI
from fastapi.middleware.cors import CORSMiddleware

from app import errors, openapi, security
from app.manager import ModelManager
from app.metrics import Metrics
from app.middleware import BodyLimit, CountRequests
from app.predict import PredictCore
from app.routes import PREDICT_ROUTES, PROTOCOLS, ops
from app.routes.table import FastPath, api_router
from app.settings import Settings, get_settings
from app.traffic import Traffic

VERSION = "0.1.0"


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or get_settings()
    traffic = Traffic()
    metrics = Metrics()
    manager = ModelManager(settings, metrics, traffic)

    @asynccontextmanager
    async def lifespan(_: FastAPI):
        if not settings.model_dir.is_dir():
            raise RuntimeError(f"model directory {settings.model_dir.resolve()} does not "
                               "exist: set TFSERVE_MODEL_DIR or run `make models`")
        loading = asyncio.get_running_loop().create_task(manager.start())
        try:
            yield
        finally:
            loading.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await loading
            await manager.close()

    app = FastAPI(title="tfserve", version=VERSION, lifespan=lifespan, docs_url=None,
                  redoc_url=None, openapi_url="/openapi.json")
    app.state.settings = settings
    app.state.manager = manager
    app.state.core = PredictCore(manager, settings, metrics)
    errors.install(app)
    if settings.direct_predict:  # innermost: inside the body limit and the request count
        app.add_middleware(FastPath, routes=PREDICT_ROUTES)
    app.add_middleware(BodyLimit, limit=settings.max_body_bytes)
    app.add_middleware(CountRequests, traffic=traffic)
    if settings.cors_origins:  # outermost, so refusals carry CORS headers too
        app.add_middleware(CORSMiddleware, allow_origins=settings.cors_origins,
                           allow_methods=["GET", "POST"],
                           allow_headers=["Authorization", "Content-Type", "X-API-Key"])
    app.include_router(ops.router)
    protected = security.model_route_dependencies(settings)
    app.include_router(ops.catalog, dependencies=protected)
    for module in PROTOCOLS:
        app.include_router(module.router, dependencies=protected)
    app.include_router(api_router(PREDICT_ROUTES, protected))
    openapi.install(app)
    return app
