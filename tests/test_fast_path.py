"""The fast path of the predict routes answers exactly as FastAPI's routes do.

Two apps on the same models, one with TFSERVE_DIRECT_PREDICT=false, both generated from the
one route table, get the same requests in-process: successes, every error class, the API key,
uploads, and paths the fast path must leave to FastAPI. Status, the headers clients act on,
and the JSON bodies must agree.
"""

from __future__ import annotations

import asyncio
import base64

import httpx
import pytest

from tests.conftest import SAMPLES
from tests.helpers import in_process, only

KEY = "direct-key-31"
AUTH = {"X-API-Key": KEY}
DIGIT = [0.5] * 784
KOALA_BYTES = (SAMPLES / "images" / "koala.jpg").read_bytes()
KOALA = {"b64": base64.b64encode(KOALA_BYTES).decode()}
FILES = object()  # a multipart upload of the koala

REQUESTS = [
    # (path, json body or raw bytes, headers)
    ("/serving_default/predict", {"instances": [{"image_input": DIGIT}]}, AUTH),
    ("/serving_default/predict", {"instances": [DIGIT, DIGIT]}, AUTH),
    ("/models/mnist/serving_default/predict", {"instances": [DIGIT]}, AUTH),
    ("/models/mnist/versions/1/serving_default/predict", {"instances": [DIGIT]}, AUTH),
    ("/models/mnist/versions/001/serving_default/predict", {"instances": [DIGIT]}, AUTH),
    ("/models/mnist/versions/x/serving_default/predict", {"instances": [DIGIT]}, AUTH),
    ("/models/mnist/versions/9/serving_default/predict", {"instances": [DIGIT]}, AUTH),
    ("/models/mnist/nope/predict", {"instances": [DIGIT]}, AUTH),
    ("/models/nope/serving_default/predict", {"instances": [DIGIT]}, AUTH),
    ("/v1/models/mnist:predict", {"instances": [DIGIT]}, AUTH),
    ("/v1/models/mnist:predict", {"inputs": {"image_input": [DIGIT]}}, AUTH),
    ("/v1/models/mnist/versions/1:predict", {"instances": [DIGIT]}, AUTH),
    ("/v1/models/mnist/versions/one:predict", {"instances": [DIGIT]}, AUTH),
    ("/v1/models/mnist:classify", {"instances": [DIGIT]}, AUTH),
    ("/v1/models/mnist", {"instances": [DIGIT]}, AUTH),
    ("/v1/models/mnist:predict", {"signature_name": "predict_image", "instances": [KOALA]},
     AUTH),
    ("/v1/models/mnist:predict",
     {"signature_name": "predict_image", "instances": [{"b64": "%%%"}]}, AUTH),
    ("/v1/models/imdb_sentiment:predict",
     {"signature_name": "predict_text", "instances": ["a fine film"]}, AUTH),
    ("/serving_default/predict", {"instances": [[1.0, 2.0]]}, AUTH),
    ("/serving_default/predict", {"instances": [DIGIT], "inputs": {}}, AUTH),
    ("/serving_default/predict", {"instances": []}, AUTH),
    ("/serving_default/predict", b'{"instances": [', AUTH),
    ("/serving_default/predict", b"<xml/>", {**AUTH, "Content-Type": "application/xml"}),
    ("/serving_default/predict", {"instances": [DIGIT]}, {}),
    ("/serving_default/predict", {"instances": [DIGIT]}, {"X-API-Key": "wrong"}),
    ("/serving_default/predict", {"instances": [DIGIT]}, {"Authorization": f"Bearer {KEY}"}),
    ("/serving_default/predict", {"instances": [DIGIT]}, {"Authorization": f"Basic {KEY}"}),
    # uploads
    ("/models/imdb_sentiment/predict/text", {"texts": ["a fine film"]}, AUTH),
    ("/models/imdb_sentiment/predict/text?probabilities=yes", {"texts": ["a"]}, AUTH),
    ("/models/imdb_sentiment/predict/text", {"texts": []}, AUTH),
    ("/models/mnist/predict/image", FILES, AUTH),
    ("/models/mnist/predict/image?probabilities=maybe", FILES, AUTH),
    ("/models/mnist/predict/image", {"texts": ["not a file"]}, AUTH),
    ("/models/mnist/predict/text", {"texts": ["no text signature"]}, AUTH),
    ("/models/mnist/predict/image", FILES, {}),
    # left to FastAPI by the fast path: a wrong method's route, unknown routes
    ("/v1/models/mnist/metadata", {}, AUTH),
    ("/a/b/c", {}, AUTH),
]


async def answer(client: httpx.AsyncClient, path: str, body, headers: dict) -> tuple:
    if body is FILES:
        request = {"files": [("file", ("koala.jpg", KOALA_BYTES, "image/jpeg"))]}
    elif isinstance(body, bytes):
        request = {"content": body}
    else:
        request = {"json": body}
    # one id for both paths: error bodies repeat it
    response = await client.post(path, headers={**headers, "X-Request-ID": "same-id"},
                                 **request)
    kept = {k: response.headers.get(k) for k in ("content-type", "www-authenticate",
                                                 "retry-after", "allow")}
    return response.status_code, kept, response.json()


@pytest.fixture(scope="module")
def answers(models_dir, tmp_path_factory) -> list[list[tuple]]:
    """For each request, the fast path's answer and the FastAPI-routed one."""
    models = only(models_dir, tmp_path_factory.mktemp("models"), "mnist", "imdb_sentiment")

    async def ask_both():
        both = []
        for direct in (True, False):
            async with in_process(models, api_key=KEY, direct_predict=direct) as client:
                both.append([await answer(client, *request) for request in REQUESTS])
        return list(zip(*both, strict=True))

    return asyncio.run(ask_both())


@pytest.mark.parametrize("index", range(len(REQUESTS)),
                         ids=[f"{i}:{r[0]}" for i, r in enumerate(REQUESTS)])
def test_the_fast_path_answers_as_fastapi_does(answers, index):
    direct, routed = answers[index]
    assert direct == routed
    assert direct[0] < 500, direct


def test_a_predict_request_never_enters_fastapis_stack(models_dir, tmp_path):
    """The speed of the fast path is in what it skips: FastAPI's middleware (its error pages,
    telemetry and body limit) sees the other requests only (app.main's front)."""
    from app.main import create_app
    from app.settings import Settings

    app = create_app(Settings(model_dir=only(models_dir, tmp_path, "mnist"), poll_interval_s=0,
                              grpc_port=0))
    seen: list[str] = []

    class Recorder:  # a FastAPI middleware: inside FastAPI's own stack
        def __init__(self, inner):
            self.inner = inner

        async def __call__(self, scope, receive, send):
            if scope["type"] == "http":
                seen.append(scope["path"])
            await self.inner(scope, receive, send)

    app.add_middleware(Recorder)

    async def scenario() -> list[int]:
        async with app.router.lifespan_context(app):
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
                while (await client.get("/readyz")).status_code != 200:
                    await asyncio.sleep(0.05)
                predicted = await client.post("/v1/models/mnist:predict",
                                              json={"instances": [DIGIT]})
                metadata = await client.get("/v1/models/mnist/metadata")
                return [predicted.status_code, metadata.status_code]

    assert asyncio.run(scenario()) == [200, 200]
    assert "/v1/models/mnist/metadata" in seen and "/readyz" in seen
    assert "/v1/models/mnist:predict" not in seen
