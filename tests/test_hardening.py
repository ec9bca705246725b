"""Hostile input, auth, CORS and faults, on a real server over real sockets.

Every refusal must be JSON with the right status, carry no traceback and no server path, and
leave the server ready.
"""

from __future__ import annotations

import asyncio
import base64
import http.client
import io
import json
import shutil
import socket
import struct
import time
import zlib
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import numpy as np
import pytest
import tensorflow as tf
from PIL import Image
from prometheus_client.parser import text_string_to_metric_families

from tests.conftest import SAMPLES
from tests.helpers import copy_version, status, wait_for
from tests.server import running_server

KEY = "test-key-7f3a"
AUTH = {"X-API-Key": KEY}
ORIGIN = "https://app.example"
MAX_BODY = 3_000_000
MAX_PIXELS = 4_000_000
KOALA = (SAMPLES / "images" / "koala.jpg").read_bytes()


@pytest.fixture(scope="module")
def hardened(models_dir):
    with running_server(models_dir, api_key=KEY, cors_origins=json.dumps([ORIGIN]),
                        max_body_bytes=MAX_BODY, max_image_pixels=MAX_PIXELS,
                        poll_interval_s=0) as url:
        yield url


def b64(data: bytes) -> dict:
    return {"b64": base64.b64encode(data).decode()}


def png_bomb(side: int) -> bytes:
    """A valid 1-bit grayscale PNG of side x side pixels: ~50 KB on the wire for 20000."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return (struct.pack(">I", len(data)) + kind + data
                + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF))
    row = b"\x00" * (1 + (side + 7) // 8)  # filter byte + packed bits
    packer = zlib.compressobj(9)
    pixels = b"".join(packer.compress(row * 1000) for _ in range(side // 1000))
    pixels += packer.compress(row * (side % 1000)) + packer.flush()
    header = struct.pack(">IIBBBBB", side, side, 1, 0, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", pixels)
            + chunk(b"IEND", b""))


def animated_gif() -> bytes:
    frame = Image.open(io.BytesIO(KOALA)).convert("RGB").resize((96, 96))
    out = io.BytesIO()
    frame.save(out, format="GIF", save_all=True, append_images=[frame.rotate(90)],
               duration=100, loop=0)
    return out.getvalue()


def assert_refused(url: str, response: httpx.Response, status: int, fragment: str,
                   models_dir: Path) -> None:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/json")
    error = response.json()["error"]
    assert fragment in error, error
    assert "Traceback" not in error and str(models_dir) not in error
    assert "/tmp/" not in error and "site-packages" not in error
    assert httpx.get(url + "/readyz").status_code == 200


IMAGE_PREDICT = "/v1/models/inception_v3:predict"
BAD_INPUTS = [
    # (path, JSON body or raw bytes, status, fragment)
    ("/v1/models/mnist:predict", b"[1, 2, 3]", 400, "expected a JSON object"),
    ("/v1/models/mnist:predict", b'{"instances": [[Infinity]]}', 400, "malformed JSON"),
    ("/v1/models/mnist:predict", {"instances": [[1e39] * 784]}, 400, "out of float32 range"),
    ("/v1/models/mnist:predict", {"instances": [[True, "x"] * 392]}, 400, "float32"),
    ("/v1/models/mnist:predict", {"instances": [[0] * 784] * 1025}, 400, "the limit is 1024"),
    ("/v1/models/mnist:predict", {"instances": [[[0.0] * 784]]}, 400, "got shape [1, 1, 784]"),
    ("/v1/models/mnist:predict", {"instances": 3}, 400, "must be a list"),
    ("/v1/models/mnist:predict", {"inputs": {"x": [[0.0] * 784]}}, 400, "unknown ['x']"),
    ("/v1/models/mnist:predict", {"signature_name": 7, "instances": [[0.0]]}, 400,
     "signature_name must be a string"),
    (IMAGE_PREDICT, {"signature_name": "predict_image", "instances": [b64(png_bomb(20000))]},
     413, "image of 20000x20000 pixels exceeds the limit of 4000000 pixels"),
    (IMAGE_PREDICT, {"signature_name": "predict_image", "instances": [b64(KOALA[:3000])]},
     400, "the model rejected the input"),
    (IMAGE_PREDICT, {"signature_name": "predict_image", "instances": [{"b64": 5}]}, 400,
     "invalid base64"),
    (IMAGE_PREDICT, {"signature_name": "predict_image", "instances": [{"b64": "YQ"}]}, 400,
     "invalid base64"),
    (IMAGE_PREDICT, {"signature_name": "predict_image", "instances": [[b64(KOALA)]]}, 400,
     "got shape [1, 1]"),
    ("/v1/models/imdb_sentiment:predict",
     {"signature_name": "predict_text", "instances": [3.5]}, 400, "expects strings"),
]


@pytest.mark.parametrize("path,body,status,fragment", BAD_INPUTS,
                         ids=[f"{b[2]}-{b[3][:28]}" for b in BAD_INPUTS])
def test_bad_input_is_refused_cleanly(hardened, models_dir, path, body, status, fragment):
    content = body if isinstance(body, bytes) else json.dumps(body).encode()
    response = httpx.post(hardened + path, content=content, timeout=60,
                          headers={**AUTH, "content-type": "application/json"})
    assert_refused(hardened, response, status, fragment, models_dir)


def test_image_limits_apply_to_uploads_and_normal_images_pass(hardened, models_dir):
    upload = hardened + "/models/inception_v3/predict/image"
    bomb = httpx.post(upload, files={"file": ("bomb.png", png_bomb(20000))}, headers=AUTH,
                      timeout=60)
    assert_refused(hardened, bomb, 413, "20000x20000 pixels", models_dir)
    mixed = httpx.post(upload, headers=AUTH, timeout=60,
                       files=[("file", ("koala.jpg", KOALA)), ("file", ("cut.jpg", KOALA[:900]))])
    # the truncated file gets its error in its place, the good one its answer (issue 15)
    assert mixed.status_code == 200, mixed.text
    good, cut = mixed.json()["predictions"]
    assert len(good["classes"]) == 3 and "classes" not in cut
    assert cut["error"].startswith("file 'cut.jpg': ") and "Invalid JPEG data" in cut["error"]
    alone = httpx.post(upload, headers=AUTH, timeout=60, files=[("file", ("cut.jpg",
                                                                          KOALA[:900]))])
    assert_refused(hardened, alone, 400, "Invalid JPEG data", models_dir)
    normal = httpx.post(upload, files={"file": ("koala.jpg", KOALA)}, headers=AUTH, timeout=60)
    assert normal.status_code == 200, normal.text


def test_an_animated_gif_is_classified_on_its_first_frame(hardened):
    gif = animated_gif()
    first = Image.open(io.BytesIO(gif)).convert("RGB")
    out = io.BytesIO()
    first.save(out, format="PNG")
    answers = [httpx.post(hardened + IMAGE_PREDICT, headers=AUTH, timeout=60, json={
        "signature_name": "predict_image", "instances": [b64(image)]}).json()["predictions"][0]
        for image in (gif, out.getvalue())]
    assert answers[0]["classes"] == answers[1]["classes"]
    assert np.allclose(answers[0]["scores"], answers[1]["scores"], atol=1e-5)


TRAVERSALS = [
    "/v1/models/..%2F..%2F..%2Fetc%2Fpasswd:predict",
    "/v1/models/../../../etc/passwd:predict",
    "/v1/models/%2e%2e%2f%2e%2e%2fetc%2fpasswd/metadata",
    "/v1/models/mnist/versions/..%2F1:predict",
    "/models/..%2F..%2Fetc/serving_default/predict",
    "/models/%2e%2e/predict/image",
    "/static/swagger/../../../../etc/passwd",
    "/static/swagger/..%2F..%2F..%2F..%2Fetc%2Fpasswd",
]


@pytest.mark.parametrize("path", TRAVERSALS)
def test_path_traversal_in_names_reaches_no_file(hardened, models_dir, path):
    host = urlsplit(hardened)
    connection = http.client.HTTPConnection(host.hostname, host.port, timeout=30)
    method = "GET" if path.endswith(("metadata", "passwd")) else "POST"
    try:
        connection.request(method, path, body=b'{"instances": [[0]]}',  # sent as written
                           headers={**AUTH, "Content-Type": "application/json"})
        response = connection.getresponse()
        body = response.read().decode()
    finally:
        connection.close()
    # 415: JSON sent to the upload route, refused before any name is looked at
    assert response.status in (400, 404, 415), (response.status, body)
    assert response.getheader("content-type").startswith("application/json")
    assert "root:" not in body and "Traceback" not in body and str(models_dir) not in body
    assert httpx.get(hardened + "/readyz").status_code == 200


def test_an_oversized_body_is_refused_before_it_is_read(hardened):
    host = urlsplit(hardened)
    with socket.create_connection((host.hostname, host.port), timeout=10) as sock:
        sock.sendall(b"POST /v1/models/mnist:predict HTTP/1.1\r\nHost: x\r\n"
                     b"Content-Type: application/json\r\nX-API-Key: " + KEY.encode()
                     + b"\r\nContent-Length: 1000000000\r\n\r\n")  # and never the body
        started = time.monotonic()
        reply = b""
        while chunk := sock.recv(65536):  # headers and body may come in two packets;
            reply += chunk  # the server closes the connection after them
        reply = reply.decode()
        assert time.monotonic() - started < 5
    assert reply.startswith("HTTP/1.1 413"), reply
    assert "exceeds the limit of 3000000 bytes" in reply


def test_a_streamed_body_is_cut_off_at_the_limit(hardened, models_dir):
    sent = 0

    def chunks():
        nonlocal sent
        for _ in range(3000):  # 196 MB offered, no Content-Length (chunked)
            sent += 65536
            yield b" " * 65536

    response = httpx.post(hardened + "/v1/models/mnist:predict", content=chunks(),
                          headers={**AUTH, "content-type": "application/json"}, timeout=30)
    assert_refused(hardened, response, 413, "exceeds the limit of 3000000 bytes", models_dir)
    assert response.headers["connection"] == "close"
    assert sent < 20_000_000  # the server stopped reading: the limit plus socket buffers


def test_api_key_guards_model_routes_and_leaves_health_open(hardened, models_dir):
    predict = hardened + "/v1/models/mnist:predict"
    body = {"instances": [[0.0] * 784]}
    assert_refused(hardened, httpx.post(predict, json=body), 401, "API key", models_dir)
    wrong = httpx.post(predict, json=body, headers={"X-API-Key": KEY + "x"})
    assert_refused(hardened, wrong, 401, "API key", models_dir)
    assert wrong.headers["www-authenticate"] == "Bearer"
    assert httpx.post(predict, json=body, headers=AUTH).status_code == 200
    bearer = {"Authorization": f"Bearer {KEY}"}
    assert httpx.post(predict, json=body, headers=bearer).status_code == 200
    for path in ("/models", "/v1/models/mnist", "/v1/models/mnist/metadata"):
        assert httpx.get(hardened + path).status_code == 401, path
        assert httpx.get(hardened + path, headers=AUTH).status_code == 200, path
    for path in ("/serving_default/predict", "/models/mnist/serving_default/predict",
                 "/models/imdb_sentiment/predict/text"):
        assert httpx.post(hardened + path, json={}).status_code == 401, path
    for path in ("/healthz", "/readyz", "/metrics", "/openapi.json", "/docs"):
        assert httpx.get(hardened + path).status_code == 200, path
    schema = httpx.get(hardened + "/openapi.json").json()
    assert set(schema["components"]["securitySchemes"]) == {"HTTPBearer", "APIKeyHeader"}
    operation = schema["paths"]["/models/mnist/serving_default/predict"]["post"]
    assert {"APIKeyHeader": []} in operation["security"]


def test_cors_allows_the_configured_origin_only(hardened):
    preflight = {"Access-Control-Request-Method": "POST",
                 "Access-Control-Request-Headers": "content-type,x-api-key"}
    allowed = httpx.options(hardened + "/v1/models/mnist:predict",
                            headers={"Origin": ORIGIN, **preflight})
    assert allowed.status_code == 200
    assert allowed.headers["access-control-allow-origin"] == ORIGIN
    other = httpx.options(hardened + "/v1/models/mnist:predict",
                          headers={"Origin": "https://evil.example", **preflight})
    assert "access-control-allow-origin" not in other.headers
    simple = httpx.get(hardened + "/healthz", headers={"Origin": ORIGIN})
    assert simple.headers["access-control-allow-origin"] == ORIGIN
    # the predict fast path sits inside CORS too (app.main's front)
    predicted = httpx.post(hardened + "/v1/models/mnist:predict", json={"instances": [[0.0] * 784]},
                           headers={"Origin": ORIGIN, **AUTH})
    assert predicted.status_code == 200
    assert predicted.headers["access-control-allow-origin"] == ORIGIN


# faults -----------------------------------------------------------------------------------


class Faulty(tf.Module):
    """Doubles its input; a value over 100 makes it read a missing file: a run-time failure
    (NotFoundError) the server cannot foresee, unlike input it can validate."""

    @tf.function(input_signature=[tf.TensorSpec([None, 4], tf.float32, name="x")])
    def serve(self, x):
        def fail():
            size = tf.strings.length(tf.io.read_file("/nonexistent/tfserve-fault-injection"))
            return tf.fill(tf.shape(x), tf.cast(size, tf.float32))
        return {"y": tf.cond(tf.reduce_max(x) > 100.0, fail, lambda: x * 2.0)}


def export_faulty(target: Path) -> None:
    module = Faulty()
    tf.saved_model.save(module, str(target), signatures={"serving_default": module.serve})
    (target / "assets.extra").mkdir()
    (target / "assets.extra" / "examples.json").write_text(
        json.dumps({"serving_default": {"instances": [[1.0, 2.0, 3.0, 4.0]]}}))


def metric(url: str, name: str, **labels: str) -> float:
    for family in text_string_to_metric_families(httpx.get(url + "/metrics").text):
        for sample in family.samples:
            if sample.name == name and all(sample.labels.get(k) == v for k, v in labels.items()):
                return sample.value
    return 0.0


@pytest.mark.long
def test_a_failing_model_fails_only_its_own_requests(models_dir, tmp_path):
    copy_version(models_dir, tmp_path, "mnist", 1, 1)
    export_faulty(tmp_path / "faulty" / "1")
    good, bad = [[1.0, 2.0, 3.0, 4.0]], [[1.0, 2.0, 3.0, 400.0]]

    # A model failure (here NotFoundError, not an input the graph rejects) fails its batch
    # once: a batch is not re-run request by request (app/serving/batching.py), so the bad requests
    # go in a wave of their own; the other model's requests share the moment.
    async def mixed_load(url: str) -> tuple[list, list, list]:
        async with httpx.AsyncClient(timeout=60) as client:
            def call(model: str, instances: list):
                return client.post(f"{url}/v1/models/{model}:predict",
                                   json={"instances": instances})
            goods = await asyncio.gather(*(call("faulty", good) for _ in range(20)))
            results = await asyncio.gather(*(call("faulty", bad) for _ in range(10)),
                                           *(call("mnist", [[0.0] * 784]) for _ in range(20)))
            return goods, results[:10], results[10:]

    # no circuit breaker here: ten failed batches would open it (tests/test_breaker.py)
    with running_server(tmp_path, poll_interval_s=0, batch_timeout_ms=20,
                        breaker_failures=0) as url:
        goods, bads, digits = asyncio.run(mixed_load(url))
        assert all(r.status_code == 200 and r.json()["predictions"] == [[2.0, 4.0, 6.0, 8.0]]
                   for r in goods), [r.text for r in goods]
        assert all(r.status_code == 200 for r in digits)
        for response in bads:
            assert_refused(url, response, 500,
                           "faulty/1/serving_default: the model failed: NotFoundError", tmp_path)
            assert "nonexistent" not in response.text
        assert metric(url, "tfserve_requests_total", model="faulty", status="500") == 10
        assert metric(url, "tfserve_requests_total", model="faulty", status="ok") == 20
        again = httpx.post(url + "/v1/models/faulty:predict", json={"instances": good})
        assert again.status_code == 200  # the batcher loop lives on


@pytest.mark.long
def test_deleting_a_serving_version_loses_no_request(models_dir, tmp_path):
    copy_version(models_dir, tmp_path, "inception_v3", 1, 1)
    copy_version(models_dir, tmp_path, "inception_v3", 1, 2)
    image = b64((SAMPLES / "images" / "cat.jpg").read_bytes())

    async def load_while_deleting(url: str) -> list:
        async with httpx.AsyncClient(timeout=60) as client:
            async def one(delay: float):
                await asyncio.sleep(delay)
                return await client.post(url + IMAGE_PREDICT, json={
                    "signature_name": "predict_image", "instances": [image] * 4})
            tasks = [asyncio.create_task(one(i * 0.02)) for i in range(30)]
            await asyncio.sleep(0.1)
            await asyncio.to_thread(shutil.rmtree, tmp_path / "inception_v3" / "2")
            return await asyncio.gather(*tasks)

    with running_server(tmp_path, poll_interval_s=0.2) as url:
        responses = asyncio.run(load_while_deleting(url))
        assert [r.status_code for r in responses] == [200] * 30, [r.text for r in responses]
        wait_for(lambda: status(url, "inception_v3") == {"1": "AVAILABLE"})
        after = httpx.post(url + IMAGE_PREDICT, json={"signature_name": "predict_image",
                                                      "instances": [image]}, timeout=60)
        assert after.status_code == 200


def test_the_container_runs_as_a_non_root_user():
    dockerfile = (Path(__file__).resolve().parents[1] / "Dockerfile").read_text().splitlines()
    final_stage = dockerfile[max(i for i, line in enumerate(dockerfile)
                                 if line.startswith("FROM")):]
    users = [line.split()[1] for line in final_stage if line.startswith("USER")]
    assert users and users[-1] not in ("root", "0", "0:0")
