"""Optional API-key auth for the model routes (off unless TFSERVE_API_KEY is set).

The key is accepted as `Authorization: Bearer <key>` (what API gateways and SDKs send) or as
`X-API-Key: <key>` (what curl users type). Health, readiness, metrics and the docs stay open
so orchestrators and scrapers need no secret. One check serves both dispatch paths: the
FastAPI dependency and the fast path (app.http_api.routes.table) call `check_request`.
"""

from __future__ import annotations

from fastapi import Depends, Request
from fastapi.params import Depends as DependsParam
from fastapi.security.utils import get_authorization_scheme_param

from app.serving.api_key import verify
from app.settings import Settings

# The schemes as the OpenAPI document declares them (app.http_api.openapi)
SECURITY_SCHEMES = {
    "HTTPBearer": {"type": "http", "scheme": "bearer",
                   "description": "Authorization: Bearer <API key>"},
    "APIKeyHeader": {"type": "apiKey", "in": "header", "name": "X-API-Key",
                     "description": "the API key"},
}


def presented_key(request: Request) -> str | None:
    """The key a request carries: a Bearer token, else the X-API-Key header."""
    scheme, credentials = get_authorization_scheme_param(request.headers.get("authorization"))
    bearer = credentials if scheme.lower() == "bearer" and credentials else None
    return bearer or request.headers.get("x-api-key")


def check_request(request: Request) -> None:
    """401 unless the request carries the configured key (a no-op without one)."""
    expected = request.app.state.settings.api_key
    if expected is not None:
        verify(presented_key(request), expected)


async def require_api_key(request: Request) -> None:
    """`check_request` as a FastAPI dependency (async: no thread-pool hop per request)."""
    check_request(request)


def model_route_dependencies(settings: Settings) -> list[DependsParam]:
    """What every model route depends on: the key check when a key is configured, else nothing."""
    return [Depends(require_api_key)] if settings.api_key is not None else []


def openapi_security(settings: Settings) -> list[dict]:
    """The `security` requirement of model operations in the OpenAPI document."""
    return [{name: []} for name in SECURITY_SCHEMES] if settings.api_key is not None else []
