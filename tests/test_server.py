"""The real server (uvicorn, real socket) on real exported models: every route and error."""

from __future__ import annotations

import asyncio
import base64
import json
import subprocess

import httpx
import numpy as np
import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.conftest import SAMPLES
from tests.server import SHARED_SETTINGS
from training import mnist
from training.data import load_mnist

MAX_BODY = SHARED_SETTINGS["max_body_bytes"]


@pytest.fixture(scope="module")
def server(shared_server):
    return shared_server


@pytest.fixture(scope="module")
def digits():
    _, (x_test, _) = load_mnist()
    return x_test[:64]


@pytest.fixture(scope="module")
def expected_mnist(tiny_exports, digits):
    return tiny_exports["mnist"].model.predict(mnist.flatten(digits), verbose=0)


def post(url: str, path: str, body, **kwargs) -> httpx.Response:
    return httpx.post(url + path, json=body, timeout=60, **kwargs)


def b64(data: bytes) -> dict:
    return {"b64": base64.b64encode(data).decode()}


def test_tfdeploy_book_example_verbatim_with_curl(server, tmp_path, digits, expected_mnist):
    (tmp_path / "json_image.json").write_text(json.dumps(
        {"instances": [{"image_input": mnist.flatten(digits[:1])[0].tolist()}]}))
    port = server.rsplit(":", 1)[1]
    result = subprocess.run(
        ["curl", "-s", "-X", "POST", "-H", "Content-Type: application/json",
         "-d", "@json_image.json", f"http://localhost:{port}/serving_default/predict"],
        cwd=tmp_path, capture_output=True, text=True, timeout=60, check=True)
    predictions = json.loads(result.stdout)["predictions"]
    assert list(predictions[0]) == ["prediction"]
    np.testing.assert_allclose(predictions[0]["prediction"], expected_mnist[0], atol=1e-5)


def test_tfdeploy_named_model_route_and_body_signature_name(server, digits):
    png = (SAMPLES / "images" / "umbrella.jpg").read_bytes()
    by_path = post(server, "/models/inception_v3/predict_image/predict",
                   {"instances": [{"image_bytes": b64(png)}]}).json()
    by_body = post(server, "/models/inception_v3/serving_default/predict",
                   {"signature_name": "predict_image", "instances": [b64(png)]}).json()
    assert by_path == by_body
    (row,) = by_path["predictions"]
    assert set(row) == {"probabilities", "classes", "scores"} and len(row["classes"]) == 3


def test_tf_serving_row_format_single_output_is_unnamed(server, digits, expected_mnist):
    instances = mnist.flatten(digits[:3]).tolist()
    response = post(server, "/v1/models/mnist:predict", {"instances": instances})
    assert response.status_code == 200
    predictions = response.json()["predictions"]
    assert isinstance(predictions[0], list) and len(predictions[0]) == 10
    np.testing.assert_allclose(predictions, expected_mnist[:3], atol=1e-5)


def test_tf_serving_columnar_format(server, digits, expected_mnist):
    body = {"inputs": {"image_input": mnist.flatten(digits[:2]).tolist()}}
    outputs = post(server, "/v1/models/mnist/versions/1:predict", body).json()["outputs"]
    np.testing.assert_allclose(outputs, expected_mnist[:2], atol=1e-5)
    bare = post(server, "/v1/models/mnist:predict",
                {"inputs": mnist.flatten(digits[:2]).tolist()}).json()["outputs"]
    assert bare == outputs


def test_tf_serving_b64_binary_input_and_named_outputs(server, tiny_exports):
    data = [(SAMPLES / "images" / n).read_bytes() for n in ("banana.jpg", "koala.jpg")]
    response = post(server, "/v1/models/inception_v3:predict",
                    {"signature_name": "predict_image", "instances": [b64(d) for d in data]})
    assert response.status_code == 200, response.text
    predictions = response.json()["predictions"]
    assert [set(p) for p in predictions] == [{"probabilities", "classes", "scores"}] * 2
    assert all(isinstance(c, str) for p in predictions for c in p["classes"])
    columnar = post(server, "/v1/models/inception_v3:predict",
                    {"signature_name": "predict_image",
                     "inputs": {"image_bytes": [b64(d) for d in data]}}).json()["outputs"]
    assert columnar["classes"] == [p["classes"] for p in predictions]


def test_tf_serving_status_and_metadata(server):
    status = httpx.get(server + "/v1/models/mnist").json()
    assert status == {"model_version_status": [
        {"version": "1", "state": "AVAILABLE", "status": {"error_code": "OK",
                                                          "error_message": ""}}]}
    assert httpx.get(server + "/v1/models/mnist/versions/1").json() == status
    meta = httpx.get(server + "/v1/models/imdb_sentiment/metadata").json()
    assert meta["model_spec"] == {"name": "imdb_sentiment", "signature_name": "",
                                  "version": "1"}
    defs = meta["metadata"]["signature_def"]["signature_def"]
    assert set(defs) == {"serving_default", "predict_text"}
    text_input = defs["predict_text"]["inputs"]["text"]
    assert text_input["dtype"] == "DT_STRING"
    assert text_input["tensor_shape"]["dim"] == [{"size": "-1", "name": ""}]
    token_ids = defs["serving_default"]["inputs"]["token_ids"]
    assert token_ids["dtype"] == "DT_INT32"
    assert httpx.get(server + "/v1/models/mnist/versions/1/metadata").json()["model_spec"][
        "version"] == "1"


def test_image_upload_with_curl_gives_top_classes(server):
    port = server.rsplit(":", 1)[1]
    result = subprocess.run(
        ["curl", "-s", "-F", "file=@umbrella.jpg", "-F", "file=@banana.jpg",
         f"http://localhost:{port}/models/inception_v3/predict/image"],
        cwd=SAMPLES / "images", capture_output=True, text=True, timeout=60, check=True)
    predictions = json.loads(result.stdout)["predictions"]
    assert [p["file"] for p in predictions] == ["umbrella.jpg", "banana.jpg"]
    for p in predictions:
        assert set(p) == {"file", "classes", "scores"}
        assert len(p["classes"]) == 3 and p["scores"] == sorted(p["scores"], reverse=True)


def test_image_upload_on_a_small_model_and_probabilities_on_request(server, digits):
    from training.signatures import png

    files = [("file", (f"{i}.png", png(d), "image/png")) for i, d in enumerate(digits[:3])]
    response = httpx.post(server + "/models/mnist/predict/image?probabilities=true",
                          files=files, timeout=60)
    assert response.status_code == 200, response.text
    rows = response.json()["predictions"]
    assert [len(r["probabilities"]) for r in rows] == [10, 10, 10]
    assert all(r["classes"][0] == str(int(np.argmax(r["probabilities"]))) for r in rows)


def test_text_upload(server):
    texts = [p.read_text() for p in sorted((SAMPLES / "reviews").glob("*.txt"))[:3]]
    response = post(server, "/models/imdb_sentiment/predict/text", {"texts": texts})
    assert response.status_code == 200, response.text
    rows = response.json()["predictions"]
    assert [r["text"] for r in rows] == texts
    for row in rows:
        assert row["label"] == ("positive" if row["probability"] >= 0.5 else "negative")


def test_models_listing(server):
    models = httpx.get(server + "/models").json()["models"]
    assert set(models) == {"mnist", "cifar10", "cifar10_transfer", "imdb_sentiment",
                           "inception_v3"}
    mnist_v1 = models["mnist"]["versions"][0]
    assert mnist_v1["version"] == 1 and mnist_v1["labels"] == 10
    assert mnist_v1["signatures"]["serving_default"]["inputs"]["image_input"] == {
        "dtype": "float32", "shape": [-1, 784]}
    assert mnist_v1["training"]["train_size"] == 2000
    assert models["inception_v3"]["versions"][0]["labels"] == 1000


def test_openapi_has_a_working_example_per_model_and_signature(server):
    spec = httpx.get(server + "/swagger.json").json()
    assert httpx.get(server + "/openapi.json").json()["paths"].keys() == spec["paths"].keys()
    for page in ("/", "/docs"):
        html = httpx.get(server + page).text
        assert "/static/swagger/swagger-ui-bundle.js" in html and "cdn" not in html
    script = httpx.get(server + "/static/swagger/swagger-ui-bundle.js")
    assert script.status_code == 200 and len(script.content) > 100_000
    tried = 0
    for path, item in spec["paths"].items():
        operation = item.get("post", {})
        if not operation.get("operationId", "").startswith("predict__"):
            continue
        content = operation["requestBody"]["content"]["application/json"]
        if "example" not in content:  # image tensors (32x32x3 and up) go by reference
            assert path.split("/")[2] in {"inception_v3", "cifar10", "cifar10_transfer"}
            assert path.endswith("/serving_default/predict")
            assert "GET /models/" in operation["description"], path
            continue
        response = post(server, path, content["example"])
        assert response.status_code == 200, (path, response.text)
        assert response.json()["predictions"], path
        tried += 1
    assert tried == 7


# errors -------------------------------------------------------------------------------------

ERRORS = [
    # (path, body or raw bytes, headers, status, message fragment)
    ("/v1/models/mnist:predict", b'{"instances": [1,', None, 400, "malformed JSON"),
    ("/v1/models/mnist:predict", b"", None, 400, "empty request body"),
    ("/v1/models/nope:predict", {"instances": [[0]]}, None, 404, "model 'nope' is not served"),
    ("/v1/models/mnist/versions/9:predict", {"instances": [[0]]}, None, 404, "no version 9"),
    ("/v1/models/mnist/versions/x:predict", {"instances": [[0]]}, None, 400, "integer"),
    ("/models/mnist/nosig/predict", {"instances": [[0]]}, None, 404, "no signature 'nosig'"),
    ("/v1/models/mnist:predict", {"signature_name": "x", "instances": [[0]]}, None, 404,
     "no signature 'x'"),
    ("/v1/models/mnist:predict", {"instances": [{"pixels": [0] * 784}]}, None, 400,
     "unknown ['pixels']"),
    ("/v1/models/mnist:predict", {"instances": [[0.5] * 783]}, None, 400,
     "expected [rows, 784]"),
    ("/v1/models/mnist:predict", {"instances": [["a"] * 784]}, None, 400, "expects float32"),
    ("/v1/models/mnist:predict", {"instances": [[0] * 784, [0] * 3]}, None, 400, "ragged"),
    ("/v1/models/mnist:predict", {"instances": []}, None, 400, "empty"),
    ("/v1/models/mnist:predict", {"instances": [[0] * 784], "inputs": [[0] * 784]}, None, 400,
     "exactly one of"),
    ("/v1/models/mnist:predict", {"rows": [[0] * 784]}, None, 400, "exactly one of"),
    ("/v1/models/mnist:predict", b'{"instances": [[NaN]]}', None, 400, "malformed JSON"),
    ("/v1/models/imdb_sentiment:predict", {"instances": [[2**40] * 80]}, None, 400,
     "out of int32 range"),
    ("/v1/models/inception_v3:predict",
     {"signature_name": "predict_image", "instances": [{"b64": "%%%not base64"}]}, None, 400,
     "invalid base64"),
    ("/v1/models/inception_v3:predict",
     {"signature_name": "predict_image", "instances": [{"b64": "aGVsbG8gd29ybGQ="}]}, None,
     400, "the model rejected the input"),
    ("/v1/models/mnist:predict", {"instances": [[0] * 784]},
     {"content-type": "text/csv"}, 415, "content type 'text/csv'"),
    ("/models/imdb_sentiment/predict/text", {"texts": []}, None, 400, '{"texts"'),
    ("/models/mnist/predict/text", {"texts": ["x"]}, None, 404, "no signature 'predict_text'"),
    ("/v1/models/mnist:predict", b"x" * (MAX_BODY + 1), None, 413, "exceeds the limit"),
    ("/no/such/route", {}, None, 404, "no such route"),
]


@pytest.mark.parametrize("path,body,headers,status,fragment", ERRORS,
                         ids=[f"{e[3]}-{e[4][:24]}" for e in ERRORS])
def test_errors_are_json_with_the_right_status(server, path, body, headers, status, fragment):
    if isinstance(body, bytes):
        response = httpx.post(server + path, content=body, timeout=60,
                              headers=headers or {"content-type": "application/json"})
    else:
        response = httpx.post(server + path, content=json.dumps(body), timeout=60,
                              headers=headers or {"content-type": "application/json"})
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/json")
    error = response.json()["error"]
    assert fragment in error
    assert "Traceback" not in error
    assert httpx.get(server + "/readyz").status_code == 200


def test_upload_errors(server):
    no_file = httpx.post(server + "/models/inception_v3/predict/image", data={"x": "1"},
                         files={"other": ("a.txt", b"hi")}, timeout=30)
    assert no_file.status_code == 400 and "file" in no_file.json()["error"]
    not_image = httpx.post(server + "/models/inception_v3/predict/image",
                           files={"file": ("a.jpg", b"not an image")}, timeout=30)
    assert not_image.status_code == 400
    assert not_image.json()["error"].startswith("file 'a.jpg': not an image file the model")


def test_bad_request_in_a_batch_does_not_fail_its_batch_mates(server):
    good = b64((SAMPLES / "images" / "koala.jpg").read_bytes())
    bad = {"b64": base64.b64encode(b"not an image").decode()}

    async def burst():
        async with httpx.AsyncClient(timeout=60) as client:
            bodies = [{"signature_name": "predict_image", "instances": [bad if i % 4 == 0
                                                                        else good]}
                      for i in range(16)]
            return await asyncio.gather(*[client.post(server + "/v1/models/inception_v3:predict",
                                                      json=b) for b in bodies])

    responses = asyncio.run(burst())
    assert [r.status_code for r in responses] == [400 if i % 4 == 0 else 200
                                                  for i in range(16)]


# concurrency and batching -------------------------------------------------------------------


def batch_histogram(url: str, model: str, signature: str) -> dict[str, float]:
    text = httpx.get(url + "/metrics").text
    values = {}
    for family in text_string_to_metric_families(text):
        if family.name != "tfserve_batch_size":
            continue
        for sample in family.samples:
            if (sample.labels.get("model"), sample.labels.get("signature")) == (model, signature):
                key = sample.name.removeprefix("tfserve_batch_size")
                values[key + sample.labels.get("le", "")] = sample.value
    return values


def test_64_concurrent_requests_each_get_their_own_rows_in_shared_batches(
        server, digits, expected_mnist):
    before = batch_histogram(server, "mnist", "serving_default")
    rows = mnist.flatten(digits)

    async def fire():
        async with httpx.AsyncClient(timeout=60, limits=httpx.Limits(max_connections=64)) as c:
            return await asyncio.gather(*[
                c.post(server + "/models/mnist/serving_default/predict",
                       json={"instances": [{"image_input": rows[i].tolist()}]})
                for i in range(64)])

    responses = asyncio.run(fire())
    assert all(r.status_code == 200 for r in responses)
    got = np.array([r.json()["predictions"][0]["prediction"] for r in responses])
    np.testing.assert_allclose(got, expected_mnist, atol=1e-5)

    after = batch_histogram(server, "mnist", "serving_default")
    batches = after["_count"] - before.get("_count", 0)
    rows_run = after["_sum"] - before.get("_sum", 0)
    single_row_batches = after["_bucket1.0"] - before.get("_bucket1.0", 0)
    assert rows_run == 64
    assert batches < 64 and single_row_batches < batches, after  # batches of more than 1 ran


def metric_samples(url: str) -> dict[tuple, float]:
    """Every sample of /metrics, parsed by prometheus-client's own parser."""
    text = httpx.get(url + "/metrics").text
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}


def test_metrics_parse_and_move_with_traffic(server):
    labels = (("model", "mnist"), ("signature", "serving_default"), ("version", "1"))
    before = metric_samples(server)
    ok = (("model", "mnist"), ("signature", "serving_default"), ("status", "ok"),
          ("version", "1"))
    bad = (("model", "mnist"), ("signature", "serving_default"), ("status", "400"),
           ("version", "1"))
    for _ in range(3):
        post(server, "/v1/models/mnist:predict", {"instances": [[0.0] * 784]})
    post(server, "/v1/models/mnist:predict", {"instances": [[0.0] * 3]})
    after = metric_samples(server)
    assert after[("tfserve_requests_total", ok)] - before.get(("tfserve_requests_total", ok),
                                                              0) == 3
    assert after[("tfserve_requests_total", bad)] - before.get(("tfserve_requests_total", bad),
                                                               0) == 1
    assert after[("tfserve_request_latency_seconds_count", labels)] - before.get(
        ("tfserve_request_latency_seconds_count", labels), 0) == 4
    assert after[("tfserve_batch_size_sum", labels)] - before.get(
        ("tfserve_batch_size_sum", labels), 0) == 3
    assert ("tfserve_queue_rows", labels) in after
    for model in ("mnist", "inception_v3"):
        key = (("model", model), ("version", "1"))
        assert after[("tfserve_model_load_seconds", key)] > 0
        assert after[("tfserve_model_warmup_seconds", key)] > 0
