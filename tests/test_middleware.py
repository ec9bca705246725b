"""The ASGI middleware around a plain ASGI app, in-process (httpx.ASGITransport)."""

from __future__ import annotations

import asyncio

import httpx
import pytest

from app.errors import BodyTooLarge
from app.http_api.middleware import BodyLimit, CountRequests
from app.serving.traffic import Traffic


async def echo_length(scope, receive, send):
    """Reads the whole body and answers its length."""
    size = 0
    while True:
        message = await receive()
        size += len(message.get("body", b""))
        if not message.get("more_body"):
            break
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": str(size).encode()})


def call(app, **request) -> httpx.Response:
    async def go():
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
            return await client.post("/", **request)

    return asyncio.run(go())


def test_a_body_within_the_limit_passes_whole():
    assert call(BodyLimit(echo_length, limit=10), content=b"x" * 10).text == "10"


def test_a_declared_oversized_body_is_refused_before_the_app_runs():
    reached = []

    async def app(scope, receive, send):
        reached.append(scope["path"])
        await echo_length(scope, receive, send)

    response = call(BodyLimit(app, limit=10), content=b"x" * 11)
    assert response.status_code == 413 and reached == []
    assert response.json() == {"error": "request body of 11 bytes exceeds the limit of 10 bytes"}
    assert response.headers["connection"] == "close"


def test_a_streamed_body_raises_once_it_passes_the_limit():
    async def chunks():
        for _ in range(5):
            yield b"x" * 4  # no Content-Length: chunked

    with pytest.raises(BodyTooLarge, match="exceeds the limit of 10 bytes"):
        call(BodyLimit(echo_length, limit=10), content=chunks())


def test_requests_are_counted_until_their_response_is_sent():
    traffic = Traffic()
    seen = []

    async def app(scope, receive, send):
        seen.append(traffic.active)
        await echo_length(scope, receive, send)

    assert call(CountRequests(app, traffic), content=b"ab").text == "2"
    assert seen == [1] and traffic.active == 0


def test_traffic_wakes_a_watcher_when_a_request_leaves():
    async def scenario():
        traffic = Traffic()
        event = asyncio.Event()
        traffic.enter(), traffic.enter()
        traffic.parked = 1
        with traffic.watching(event):
            busy_before = traffic.others_busy
            traffic.leave()
        return busy_before, event.is_set(), traffic.others_busy

    assert asyncio.run(scenario()) == (True, True, False)
