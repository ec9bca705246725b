"""Direct dispatch of the JSON predict routes, past FastAPI's router.

Profiling the `mnist` benchmark (docs/BENCHMARKS.md) showed FastAPI's route matching,
exception and dependency layers costing more per request than decoding, batching and encoding
together. So this ASGI layer matches the JSON predict paths itself and awaits the very
endpoint functions the FastAPI routes declare, with the same key check and error bodies.
Every other request, and any path these patterns do not take, goes on to FastAPI, whose
routes stay declared: they make the OpenAPI document, and serve everything when
TFSERVE_DIRECT_PREDICT=false. tests/test_direct.py checks that both ways answer alike.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable

from starlette.requests import Request
from starlette.responses import Response
from starlette.types import ASGIApp, Receive, Scope, Send

from app import security
from app.errors import ServingError, internal_error, serving_error_response
from app.routes import tfdeploy, tfserving

Handler = Callable[[Request, re.Match], Awaitable[Response]]

# In FastAPI's order (tfserving, then the tfdeploy catch-alls); a path parameter never
# holds "/", as in Starlette's own patterns.
ROUTES: list[tuple[re.Pattern, Handler]] = [
    (re.compile(r"/v1/models/([^/]+)"),
     lambda r, m: tfserving.model_predict(m[1], r)),
    (re.compile(r"/v1/models/([^/]+)/versions/([^/]+)"),
     lambda r, m: tfserving.version_predict(m[1], m[2], r)),
    (re.compile(r"/models/([^/]+)/versions/([0-9]+)/([^/]+)/predict"),
     lambda r, m: tfdeploy.predict_version(m[1], int(m[2]), m[3], r)),
    (re.compile(r"/models/([^/]+)/([^/]+)/predict"),
     lambda r, m: tfdeploy.predict_model(m[1], m[2], r)),
    (re.compile(r"/([^/]+)/predict"),
     lambda r, m: tfdeploy.predict_default(m[1], r)),
]


def match(path: str) -> tuple[Handler, re.Match] | None:
    for pattern, handler in ROUTES:
        found = pattern.fullmatch(path)
        if found:
            return handler, found
    return None


class DirectPredict:
    """ASGI middleware: POSTs to the JSON predict paths go straight to their endpoints."""

    def __init__(self, app: ASGIApp):
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        route = (match(scope["path"]) if scope["type"] == "http" and scope["method"] == "POST"
                 else None)
        if route is None:
            await self.app(scope, receive, send)
            return
        handler, found = route
        request = Request(scope, receive)
        try:
            security.check_request(request)
            response = await handler(request, found)
        except ServingError as err:
            response = serving_error_response(err)
        except Exception:
            response = internal_error(request)
        await response(scope, receive, send)
