"""The API-key check, as both dispatch paths call it, on plain Starlette requests."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
from starlette.requests import Request

from app.errors import Unauthorized
from app.http_api.security import check_request, openapi_security, presented_key
from app.settings import Settings

KEY = "s3cret-key"


def request(headers: dict[str, str], key: str | None = KEY) -> Request:
    app = SimpleNamespace(state=SimpleNamespace(settings=Settings(api_key=key)))
    return Request({"type": "http", "method": "POST", "path": "/", "app": app,
                    "headers": [(k.lower().encode(), v.encode()) for k, v in headers.items()]})


@pytest.mark.parametrize(("headers", "presented"), [
    ({"Authorization": f"Bearer {KEY}"}, KEY),
    ({"Authorization": f"bearer {KEY}"}, KEY),
    ({"X-API-Key": KEY}, KEY),
    ({"Authorization": "Basic abc", "X-API-Key": KEY}, KEY),  # not a bearer token
    ({"Authorization": "Bearer", "X-API-Key": "other"}, "other"),
    ({"Authorization": "Bearer first", "X-API-Key": "second"}, "first"),
    ({}, None),
])
def test_the_key_is_taken_from_a_bearer_token_else_the_header(headers, presented):
    assert presented_key(request(headers)) == presented


@pytest.mark.parametrize("headers", [
    {}, {"X-API-Key": "wrong"}, {"Authorization": "Bearer wrong"}, {"X-API-Key": KEY + "x"},
    {"Authorization": f"Basic {KEY}"}, {"X-API-Key": ""},
])
def test_a_missing_or_wrong_key_is_401_with_a_challenge(headers):
    with pytest.raises(Unauthorized, match="missing or wrong API key") as caught:
        check_request(request(headers))
    assert caught.value.status == 401 and caught.value.headers == {"WWW-Authenticate": "Bearer"}


def test_the_right_key_passes_and_no_key_configured_passes_everything():
    check_request(request({"Authorization": f"Bearer {KEY}"}))
    check_request(request({"X-API-Key": KEY}))
    check_request(request({}, key=None))
    check_request(request({"X-API-Key": "anything"}, key=None))


def test_openapi_declares_the_schemes_only_when_a_key_is_set():
    assert openapi_security(Settings()) == []
    assert openapi_security(Settings(api_key=KEY)) == [{"HTTPBearer": []}, {"APIKeyHeader": []}]
