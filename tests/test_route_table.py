"""One declaration, two dispatch paths: a PredictRoute is served by the fast path and by
FastAPI alike, and documented once. No models needed: the endpoints here are plain."""

from __future__ import annotations

import asyncio

import httpx
import pytest
from fastapi import FastAPI
from starlette.requests import Request
from starlette.responses import JSONResponse

from app import errors
from app.errors import InvalidInput
from app.http_api import security
from app.http_api.routes import PREDICT_ROUTES
from app.http_api.routes.table import FastPath, PredictRoute, api_router
from app.settings import Settings


async def run_thing(request: Request, name: str) -> JSONResponse:
    """Runs a thing."""
    if name == "bad":
        raise InvalidInput("bad thing")
    if name == "bug":
        raise RuntimeError("/secret/path")
    return JSONResponse({"name": name, "body": await request.json(),
                         "fast": request.scope.get("route") is None})


ROUTES = [PredictRoute("/things/{name}/run", run_thing, "Run a thing", ("things",),
                       {"requestBody": {"content": {"application/json": {}}}})]


def make_app(fast: bool, key: str | None = None) -> FastAPI:
    app = FastAPI()
    app.state.settings = Settings(api_key=key)
    errors.install(app)
    if fast:
        app.add_middleware(FastPath, routes=ROUTES)
    app.include_router(api_router(ROUTES, security.model_route_dependencies(app.state.settings)))
    return app


def ask(app: FastAPI, method: str, path: str, **request) -> httpx.Response:
    async def go():
        transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
            return await client.request(method, path, **request)

    return asyncio.run(go())


@pytest.mark.parametrize(("method", "path", "status"), [
    ("POST", "/things/a/run", 200),
    ("POST", "/things/bad/run", 400),
    ("POST", "/things/bug/run", 500),
    ("GET", "/things/a/run", 405),  # not a POST: FastAPI answers
    ("POST", "/things/a/b/run", 404),  # no match: FastAPI answers
])
def test_both_paths_answer_alike(method, path, status):
    answers = [ask(make_app(fast), method, path, json={"x": 1}) for fast in (True, False)]
    assert [a.status_code for a in answers] == [status, status]
    bodies = [a.json() for a in answers]
    if status == 200:
        assert bodies[0].pop("fast") is True and bodies[1].pop("fast") is False
    assert bodies[0] == bodies[1]
    assert "/secret/path" not in answers[0].text


def test_the_key_is_checked_on_both_paths():
    for fast in (True, False):
        app = make_app(fast, key="k")
        assert ask(app, "POST", "/things/a/run", json={}).status_code == 401
        assert ask(app, "POST", "/things/a/run", json={},
                   headers={"X-API-Key": "k"}).status_code == 200


def test_the_declaration_is_documented_once():
    operation = make_app(True).openapi()["paths"]["/things/{name}/run"]["post"]
    assert operation["summary"] == "Run a thing" and operation["tags"] == ["things"]
    assert operation["description"] == "Runs a thing."
    assert [p["name"] for p in operation["parameters"]] == ["name"]


def test_every_served_predict_route_is_a_post_with_its_path_parameters_as_arguments():
    import inspect

    for route in PREDICT_ROUTES:
        parameters = list(inspect.signature(route.endpoint).parameters)
        assert parameters[0] == "request"
        assert set(parameters[1:]) == set(route.pattern.groupindex), route.path


@pytest.mark.parametrize("path", [
    "/v1/models/mnist:predict", "/v1/models/mnist/versions/2:predict",
    "/v1/models/mnist/labels/stable:predict", "/v2/models/mnist/infer",
    "/v2/models/mnist/versions/1/infer", "/models/mnist/serving_default/predict",
    "/models/mnist/versions/1/serving_default/predict", "/models/inception_v3/predict/image",
    "/models/imdb_sentiment/predict/text", "/serving_default/predict",
    "/v2/predict", "/models/predict", "/v1/predict",  # a signature named like a prefix
    "/v2/models/mnist/ready", "/", "/nothing/here", "/models/mnist/predict/image/more"])
def test_the_fast_path_picks_the_route_a_scan_in_declaration_order_picks(path):
    """The fast path looks only at routes whose first segment can match; the result must be
    the first match of all routes in order, as FastAPI's router would take."""
    expected = next(((r.path, m.groupdict()) for r in PREDICT_ROUTES
                     if (m := r.pattern.match(path))), None)
    found = FastPath(None, PREDICT_ROUTES).match(path)
    assert (found and (found[0].path, found[1])) == expected
