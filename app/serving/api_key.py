"""The optional API key (TFSERVE_API_KEY), one check for both transports: HTTP headers
(app.http_api.security) and gRPC metadata (app.grpc_api.calls) carry the same two forms,
`authorization: Bearer <key>` and `x-api-key: <key>`."""

from __future__ import annotations

import secrets

from pydantic import SecretStr

from app.errors import Unauthorized


def verify(given: str | None, expected: SecretStr) -> None:
    # compare_digest: the time taken does not tell how much of a guess was right
    if not given or not secrets.compare_digest(given.encode(),
                                               expected.get_secret_value().encode()):
        raise Unauthorized("missing or wrong API key: send `Authorization: Bearer <key>` or "
                           "`X-API-Key: <key>`")


def bearer_token(authorization: str | None) -> str | None:
    """The key of an `authorization: Bearer <key>` value (None for other schemes)."""
    scheme, _, token = (authorization or "").strip().partition(" ")
    return token.strip() or None if scheme.lower() == "bearer" else None
