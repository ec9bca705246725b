"""create_app(): the FastAPI application, wired from its parts.

The registry loads and warms up the models in the background after startup, so /healthz
answers at once and /readyz says 503 until every model is warm.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from contextlib import asynccontextmanager

from fastapi import FastAPI
from fastapi.middleware.cors import CORSMiddleware

from app import errors, openapi, security
from app.batching import Traffic
from app.metrics import Metrics
from app.middleware import BodyLimit, CountRequests
from app.registry import Registry
from app.routes import ops, tfdeploy, tfserving, uploads
from app.routes.direct import DirectPredict
from app.settings import Settings, get_settings

log = logging.getLogger(__name__)
VERSION = "0.1.0"


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or get_settings()
    traffic = Traffic()
    registry = Registry(settings, Metrics(), traffic)

    @asynccontextmanager
    async def lifespan(_: FastAPI):
        if not settings.model_dir.is_dir():
            raise RuntimeError(f"model directory {settings.model_dir.resolve()} does not "
                               "exist: set TFSERVE_MODEL_DIR or run `make models`")
        loading = asyncio.get_running_loop().create_task(registry.start())
        try:
            yield
        finally:
            loading.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await loading
            await registry.close()

    app = FastAPI(title="tfserve", version=VERSION, lifespan=lifespan, docs_url=None,
                  redoc_url=None, openapi_url="/openapi.json")
    app.state.settings = settings
    app.state.registry = registry
    errors.install(app)
    if settings.direct_predict:  # innermost: inside the body limit and the request count
        app.add_middleware(DirectPredict)
    app.add_middleware(BodyLimit, limit=settings.max_body_bytes)
    app.add_middleware(CountRequests, traffic=traffic)
    if settings.cors_origins:  # outermost, so refusals carry CORS headers too
        app.add_middleware(CORSMiddleware, allow_origins=settings.cors_origins,
                           allow_methods=["GET", "POST"],
                           allow_headers=["Authorization", "Content-Type", "X-API-Key"])
    app.include_router(ops.router)
    protected = security.model_route_dependencies(settings)
    # tfdeploy's catch-all /{signature}/predict goes last
    for router in (ops.catalog, tfserving.router, uploads.router, tfdeploy.router):
        app.include_router(router, dependencies=protected)
    openapi.install(app)
    return app
