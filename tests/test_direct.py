"""The direct dispatch of the JSON predict routes answers exactly as FastAPI's routes do.

Two real servers on the same models, one with TFSERVE_DIRECT_PREDICT=false, get the same
requests: successes, every error class, the API key, and paths the direct patterns must leave
to FastAPI. Status, the headers clients act on, and the JSON bodies must agree.
"""

from __future__ import annotations

import base64
import contextlib

import httpx
import pytest

from tests.conftest import SAMPLES
from tests.server import running_server

KEY = "direct-key-31"
AUTH = {"X-API-Key": KEY}
DIGIT = [0.5] * 784
KOALA = {"b64": base64.b64encode((SAMPLES / "images" / "koala.jpg").read_bytes()).decode()}

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
    ("/v1/models/inception_v3:predict",
     {"signature_name": "predict_image", "instances": [KOALA]}, AUTH),
    ("/v1/models/inception_v3:predict",
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
    # left to FastAPI by the patterns: a wrong method's route, uploads, unknown routes
    ("/v1/models/mnist/metadata", {}, AUTH),
    ("/models/imdb_sentiment/predict/text", {"texts": ["a fine film"]}, AUTH),
    ("/a/b/c", {}, AUTH),
]


@pytest.fixture(scope="module")
def servers(models_dir):
    with contextlib.ExitStack() as stack:
        yield [stack.enter_context(running_server(models_dir, api_key=KEY, poll_interval_s=0,
                                                  direct_predict=direct))
               for direct in (True, False)]


def answer(url: str, path: str, body, headers: dict) -> tuple:
    content = body if isinstance(body, bytes) else None
    response = httpx.post(url + path, json=None if content else body, content=content,
                          headers=headers, timeout=60)
    kept = {k: response.headers.get(k) for k in ("content-type", "www-authenticate",
                                                 "retry-after", "allow")}
    return response.status_code, kept, response.json()


@pytest.mark.parametrize(("path", "body", "headers"), REQUESTS,
                         ids=[f"{i}:{r[0]}" for i, r in enumerate(REQUESTS)])
def test_direct_dispatch_answers_as_fastapi_does(servers, path, body, headers):
    direct, routed = (answer(url, path, body, headers) for url in servers)
    assert direct == routed
    assert direct[0] < 500, direct
