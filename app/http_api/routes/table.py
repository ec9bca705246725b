"""The route table: each predict route declared once, served two ways.

A protocol module lists its predict routes as `PredictRoute`s: a Starlette path, an endpoint
`async (request, **path_params: str) -> Response`, and its OpenAPI text. From that one list
- `api_router()` makes FastAPI routes: they make the OpenAPI document and Swagger UI, and
  serve the requests when TFSERVE_DIRECT_PREDICT=false;
- `FastPath` (ASGI middleware, the default) matches POSTs against the same paths, compiled
  by Starlette's own path compiler, and awaits the same endpoints with the same key check and
  error mapping, past FastAPI's router, exception and dependency layers: profiling showed
  those costing more per request than decoding, batching and encoding together.
Any request the fast path does not take goes on to FastAPI unchanged.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from fastapi import APIRouter
from fastapi.params import Depends
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import compile_path
from starlette.types import ASGIApp, Receive, Scope, Send

from app.errors import to_response
from app.http_api import security

Endpoint = Callable[..., Awaitable[Response]]


@dataclass(frozen=True)
class PredictRoute:
    """One POST route that runs a model. Path parameters reach the endpoint as strings."""

    path: str
    endpoint: Endpoint
    summary: str
    tags: tuple[str, ...]
    openapi_extra: dict[str, Any] | None = None
    pattern: re.Pattern = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "pattern", compile_path(self.path)[0])


def api_router(routes: Sequence[PredictRoute], dependencies: Sequence[Depends]) -> APIRouter:
    """The FastAPI routes of `routes`, in order; `dependencies` guard each (the API key)."""
    router = APIRouter()
    for route in routes:
        router.add_api_route(route.path, route.endpoint, methods=["POST"],
                             summary=route.summary, tags=list(route.tags),
                             openapi_extra=route.openapi_extra, dependencies=list(dependencies))
    return router


class FastPath:
    """ASGI middleware: POSTs to a predict route go straight to its endpoint."""

    def __init__(self, app: ASGIApp, routes: Sequence[PredictRoute]):
        self.app = app
        self.routes = tuple(routes)
        # the routes a path can match, by its first segment: those starting with that literal
        # and those starting with a parameter, still in declaration order
        self._any_first = tuple(r for r in self.routes if _opens_with_parameter(r.path))
        self._by_first = {
            first: tuple(r for r in self.routes
                         if _first_segment(r.path) == first or _opens_with_parameter(r.path))
            for first in {_first_segment(r.path) for r in self.routes} if "{" not in first}

    def match(self, path: str) -> tuple[PredictRoute, dict[str, str]] | None:
        candidates = self._by_first.get(_first_segment(path), self._any_first)
        for route in candidates:  # in declaration order, as FastAPI matches them
            found = route.pattern.match(path)
            if found:
                return route, found.groupdict()
        return None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        matched = (self.match(scope["path"])
                   if scope["type"] == "http" and scope["method"] == "POST" else None)
        if matched is None:
            await self.app(scope, receive, send)
            return
        route, params = matched
        request = Request(scope, receive)
        try:
            security.check_request(request)
            response = await route.endpoint(request, **params)
        except Exception as err:
            response = to_response(request, err)
        await response(scope, receive, send)


def _first_segment(path: str) -> str:
    return path[1:].partition("/")[0]


def _opens_with_parameter(path: str) -> bool:
    return "{" in _first_segment(path)
