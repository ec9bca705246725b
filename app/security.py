"""Optional API-key auth for the model routes (off unless TFSERVE_API_KEY is set).

The key is accepted as `Authorization: Bearer <key>` (what API gateways and SDKs send) or as
`X-API-Key: <key>` (what curl users type). Health, readiness, metrics and the docs stay open
so orchestrators and scrapers need no secret.
"""

from __future__ import annotations

import secrets
from typing import Annotated

from fastapi import Depends, Request, Security
from fastapi.params import Depends as DependsParam
from fastapi.security import APIKeyHeader, HTTPAuthorizationCredentials, HTTPBearer
from fastapi.security.utils import get_authorization_scheme_param
from pydantic import SecretStr

from app.errors import Unauthorized
from app.settings import Settings

_bearer = HTTPBearer(auto_error=False, description="Authorization: Bearer <API key>")
_header = APIKeyHeader(name="X-API-Key", auto_error=False, description="the API key")


def verify(given: str | None, expected: SecretStr) -> None:
    # compare_digest: the time taken does not tell how much of a guess was right
    if not given or not secrets.compare_digest(given.encode(),
                                               expected.get_secret_value().encode()):
        raise Unauthorized("missing or wrong API key: send `Authorization: Bearer <key>` or "
                           "`X-API-Key: <key>`")


async def require_api_key(
        request: Request,
        bearer: Annotated[HTTPAuthorizationCredentials | None, Security(_bearer)],
        header_key: Annotated[str | None, Security(_header)],
) -> None:
    """The FastAPI dependency: its security schemes also document the key in OpenAPI."""
    verify(bearer.credentials if bearer is not None else header_key,
           request.app.state.settings.api_key)


def check_request(request: Request) -> None:
    """The same check outside FastAPI's dependencies (app.routes.direct)."""
    expected = request.app.state.settings.api_key
    if expected is None:
        return
    scheme, credentials = get_authorization_scheme_param(request.headers.get("authorization"))
    bearer = credentials if scheme.lower() == "bearer" and credentials else None
    verify(bearer or request.headers.get("x-api-key"), expected)


def model_route_dependencies(settings: Settings) -> list[DependsParam]:
    """What every model route depends on: the key check when a key is configured, else nothing."""
    return [Depends(require_api_key)] if settings.api_key is not None else []


def openapi_security(settings: Settings) -> list[dict]:
    """The `security` requirement of model operations in the OpenAPI document."""
    return [{"HTTPBearer": []}, {"APIKeyHeader": []}] if settings.api_key is not None else []
