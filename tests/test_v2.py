"""The Open Inference Protocol (KServe v2) with the real clients: tritonclient and KServe's.

A real server (uvicorn, real socket) on the tiny real models, and on an echo model with one
signature per datatype; hostile binary bodies as raw bytes.
"""

from __future__ import annotations

import asyncio
import struct
from pathlib import Path

import httpx
import numpy as np
import pytest
import tensorflow as tf
import tritonclient.http as triton
from kserve import InferenceRESTClient, InferInput, InferRequest, RESTConfig
from prometheus_client.parser import text_string_to_metric_families
from tritonclient.utils import InferenceServerException

from tests.conftest import SAMPLES
from tests.server import running_server
from training import mnist
from training.data import load_mnist

API_KEY = "v2-secret"
ECHO_DTYPES = {"BOOL": tf.bool, "INT8": tf.int8, "INT16": tf.int16, "INT32": tf.int32,
               "INT64": tf.int64, "UINT8": tf.uint8, "UINT16": tf.uint16, "UINT32": tf.uint32,
               "UINT64": tf.uint64, "FP16": tf.float16, "FP32": tf.float32,
               "FP64": tf.float64, "BYTES": tf.string}


@pytest.fixture(scope="module")
def server(shared_server):
    return shared_server


@pytest.fixture(scope="module")
def client(server):
    client = triton.InferenceServerClient(server.removeprefix("http://"))
    yield client
    client.close()


@pytest.fixture(scope="module")
def digits():
    _, (x_test, _) = load_mnist()
    return mnist.flatten(x_test[:16])


def _mnist_io(client) -> tuple[str, str]:
    meta = client.get_model_metadata("mnist")
    return meta["inputs"][0]["name"], meta["outputs"][0]["name"]


def test_server_and_model_metadata(client, tiny_exports):
    assert client.is_server_live() and client.is_server_ready()
    assert client.get_server_metadata()["extensions"] == ["binary_tensor_data"]
    assert client.is_model_ready("mnist") and client.is_model_ready("mnist", "1")
    assert not client.is_model_ready("nope") and not client.is_model_ready("mnist", "9")
    meta = client.get_model_metadata("mnist")
    assert meta["name"] == "mnist" and meta["versions"] == ["1"]
    assert meta["platform"] == "tensorflow_savedmodel"
    assert meta["inputs"] == [{"name": meta["inputs"][0]["name"], "datatype": "FP32",
                               "shape": [-1, 784]}]
    assert meta["parameters"]["signature_name"] == "serving_default"
    assert "predict_image" in meta["parameters"]["signatures"]
    text = client.get_model_metadata("imdb_sentiment", query_params={
        "signature_name": "predict_text"})
    assert text["inputs"] == [{"name": "text", "datatype": "BYTES", "shape": [-1]}]


@pytest.mark.parametrize("binary", [False, True])
def test_mnist_fp32_matches_the_model(client, tiny_exports, digits, binary):
    name, output = _mnist_io(client)
    tensor = triton.InferInput(name, list(digits.shape), "FP32")
    tensor.set_data_from_numpy(digits, binary_data=binary)
    wanted = [triton.InferRequestedOutput(output, binary_data=binary)]
    result = client.infer("mnist", [tensor], outputs=wanted, request_id="req-7")
    response = result.get_response()
    assert response["id"] == "req-7" and response["model_version"] == "1"
    assert ("data" in response["outputs"][0]) != binary
    expected = tiny_exports["mnist"].model.predict(digits, verbose=0)
    np.testing.assert_allclose(result.as_numpy(output), expected, rtol=1e-5, atol=1e-6)


def test_raw_text_as_bytes_to_predict_text(client, server):
    reviews = [p.read_bytes() for p in sorted((SAMPLES / "reviews").glob("*.txt"))[:3]]
    tensor = triton.InferInput("text", [len(reviews)], "BYTES")
    tensor.set_data_from_numpy(np.array(reviews, dtype=object))  # binary, by default
    result = client.infer("imdb_sentiment", [tensor],
                          parameters={"signature_name": "predict_text"})
    v1 = httpx.post(server + "/v1/models/imdb_sentiment:predict", json={
        "signature_name": "predict_text",
        "instances": [r.decode() for r in reviews]}, timeout=60).json()["predictions"]
    assert [x.decode() for x in result.as_numpy("label")] == [p["label"] for p in v1]
    np.testing.assert_allclose(result.as_numpy("probability"),
                               [p["probability"] for p in v1], rtol=1e-5)


def test_jpeg_as_bytes_to_predict_image(client, server):
    import base64

    photos = [(SAMPLES / "images" / n).read_bytes() for n in ("banana.jpg", "koala.jpg")]
    tensor = triton.InferInput("image_bytes", [2], "BYTES")
    tensor.set_data_from_numpy(np.array(photos, dtype=object))
    result = client.infer("inception_v3", [tensor],
                          parameters={"signature_name": "predict_image"},
                          outputs=[triton.InferRequestedOutput("classes"),
                                   triton.InferRequestedOutput("scores", binary_data=False)])
    v1 = httpx.post(server + "/v1/models/inception_v3:predict", json={
        "signature_name": "predict_image",
        "instances": [{"b64": base64.b64encode(p).decode()} for p in photos]},
        timeout=120).json()["predictions"]
    assert result.as_numpy("classes").shape == (2, 3)
    assert [[c.decode() for c in row] for row in result.as_numpy("classes")] == [
        p["classes"] for p in v1]
    np.testing.assert_allclose(result.as_numpy("scores"), [p["scores"] for p in v1], rtol=1e-4)


@pytest.mark.parametrize(("change", "status", "words"), [
    (lambda t: t.update(datatype="FP64"), 400, "datatype 'FP64'"),
    (lambda t: t.update(shape=[2, 784]), 400, "elements for shape"),
    (lambda t: t.update(shape=[1, 783], data=[0.0] * 783), 400, "expected [rows, 784]"),
    (lambda t: t.update(name="pixels"), 400, "unknown input 'pixels'"),
    (lambda t: t.update(data=[[0.5] * 392, [0.5] * 391]), 400, "ragged"),
    (lambda t: t.pop("data"), 400, 'no "data"'),
])
def test_bad_tensors_get_400_naming_the_problem(server, client, change, status, words):
    name, _ = _mnist_io(client)
    tensor = {"name": name, "datatype": "FP32", "shape": [1, 784], "data": [0.5] * 784}
    change(tensor)
    response = httpx.post(server + "/v2/models/mnist/infer", json={"inputs": [tensor]})
    assert response.status_code == status, response.text
    assert words in response.json()["error"]


def test_errors_reach_tritonclient_with_their_status(client, digits):
    name, _ = _mnist_io(client)
    tensor = triton.InferInput(name, [1, 784], "FP32")
    tensor.set_data_from_numpy(digits[:1])
    with pytest.raises(InferenceServerException) as unknown_model:
        client.infer("nope", [tensor])
    assert unknown_model.value.status() == "404"
    with pytest.raises(InferenceServerException) as unknown_signature:
        client.infer("mnist", [tensor], parameters={"signature_name": "nope"})
    assert unknown_signature.value.status() == "404"
    assert "predict_image" in unknown_signature.value.message()
    with pytest.raises(InferenceServerException) as unknown_output:
        client.infer("mnist", [tensor], outputs=[triton.InferRequestedOutput("nope")])
    assert unknown_output.value.status() == "400"


def _raw(server: str, header: dict, binary: bytes, json_length: int | None = None,
         path: str = "/v2/models/imdb_sentiment/infer") -> httpx.Response:
    import orjson

    head = orjson.dumps(header)
    length = len(head) if json_length is None else json_length
    return httpx.post(server + path, content=head + binary,
                      headers={"Inference-Header-Content-Length": str(length),
                               "Content-Type": "application/octet-stream"}, timeout=30)


def _text_header(size: int, shape: int = 1) -> dict:
    return {"parameters": {"signature_name": "predict_text"},
            "inputs": [{"name": "text", "datatype": "BYTES", "shape": [shape],
                        "parameters": {"binary_data_size": size}}]}


@pytest.mark.parametrize(("header", "binary", "json_length", "words"), [
    (_text_header(12), struct.pack("<I", 4) + b"good", None, "runs past the 8 binary"),
    (_text_header(8), struct.pack("<I", 4) + b"good" + b"xx", None, "add up to 8"),
    (_text_header(8), struct.pack("<I", 4) + b"good", 10_000, "the body has"),
    (_text_header(8), struct.pack("<I", 4) + b"good", -3, "the body has"),
    (_text_header(8), struct.pack("<I", 4) + b"good", "12x", "must be an integer"),
    (_text_header(8), struct.pack("<I", 400) + b"good", None, "runs past the end"),
    (_text_header(2), b"\x01\x00", None, "cut off"),
    (_text_header(16), (struct.pack("<I", 4) + b"good") * 2, None, "more BYTES elements"),
    (_text_header(-1), b"", None, "non-negative"),
    ({**_text_header(8), "inputs": [{**_text_header(8)["inputs"][0], "data": ["x"]}]},
     struct.pack("<I", 4) + b"good", None, "both"),
])
def test_hostile_binary_bodies_get_400_and_the_server_stays_ready(
        server, header, binary, json_length, words):
    response = _raw(server, header, binary, json_length)
    assert response.status_code == 400, response.text
    assert words in response.json()["error"]
    assert httpx.get(server + "/v2/health/ready").json()["ready"] is True


def test_a_truncated_binary_float_tensor_is_refused(server, client):
    name, _ = _mnist_io(client)
    header = {"inputs": [{"name": name, "datatype": "FP32", "shape": [1, 784],
                          "parameters": {"binary_data_size": 783 * 4 + 2}}]}
    response = _raw(server, header, b"\0" * (783 * 4 + 2), path="/v2/models/mnist/infer")
    assert response.status_code == 400
    assert "whole number" in response.json()["error"]


def test_kserve_rest_client_v2(server, tiny_exports, digits):
    expected = tiny_exports["mnist"].model.predict(digits[:4], verbose=0)

    async def run():
        client = InferenceRESTClient(RESTConfig(protocol="v2", timeout=60))
        try:
            assert await client.is_server_live(server)
            assert await client.is_server_ready(server)
            assert await client.is_model_ready(server, "mnist")
            assert not await client.is_model_ready(server, "nope")
            name = httpx.get(server + "/v2/models/mnist").json()["inputs"][0]["name"]
            answers = []
            for binary in (False, True):
                tensor = InferInput(name, [4, 784], "FP32")
                tensor.set_data_from_numpy(digits[:4], binary_data=binary)
                request = InferRequest(model_name="mnist", infer_inputs=[tensor],
                                       request_id="k-1")
                answers.append(await client.infer(server, request, model_name="mnist"))
            return answers
        finally:
            await client.close()

    for response in asyncio.run(run()):
        assert response.id == "k-1" and response.model_name == "mnist"
        np.testing.assert_allclose(response.outputs[0].as_numpy(), expected, rtol=1e-5,
                                   atol=1e-6)


def test_v2_counts_in_the_metrics_and_shares_the_batcher(server, client, digits):
    name, _ = _mnist_io(client)

    def counted() -> tuple[float, float]:
        text = httpx.get(server + "/monitoring/prometheus/metrics").text
        requests = calls = 0.0
        for family in text_string_to_metric_families(text):
            for s in family.samples:
                if s.labels.get("model") != "mnist" or s.labels.get("signature") != \
                        "serving_default":
                    continue
                if s.name == "tfserve_requests_total" and s.labels["status"] == "ok":
                    requests += s.value
                if s.name == "tfserve_batch_size_count":
                    calls += s.value
        return requests, calls

    before = counted()

    async def burst():
        body = {"inputs": [{"name": name, "datatype": "FP32", "shape": [1, 784],
                            "data": digits[0].tolist()}]}
        async with httpx.AsyncClient(base_url=server, timeout=60) as http:
            v2 = [http.post("/v2/models/mnist/infer", json=body) for _ in range(24)]
            v1 = [http.post("/v1/models/mnist:predict", json={"instances": [digits[0].tolist()]})
                  for _ in range(24)]
            return await asyncio.gather(*v2, *v1)

    assert all(r.status_code == 200 for r in asyncio.run(burst()))
    after = counted()
    assert after[0] - before[0] == 48
    assert after[1] - before[1] < 48  # the 48 requests shared model calls


# the datatypes, limits and the API key, on an echo model ----------------------------------


def _echo_model(folder: Path) -> Path:
    """One signature per datatype, each returning its input: x [-1, 2] -> y."""
    module = tf.Module()
    signatures = {}
    for datatype, dtype in ECHO_DTYPES.items():
        function = tf.function(lambda x: {"y": tf.identity(x)},
                               input_signature=[tf.TensorSpec([None, 2], dtype, name="x")])
        signatures["serving_default" if datatype == "FP32" else datatype.lower()] = function
    tf.saved_model.save(module, str(folder / "echo" / "1"), signatures=signatures)
    return folder


@pytest.fixture(scope="module")
def echo_server(tmp_path_factory):
    models = _echo_model(tmp_path_factory.mktemp("echo-models"))
    with running_server(models, poll_interval_s=0, api_key=API_KEY, max_instances=8,
                        max_body_bytes=200_000, max_image_pixels=10_000) as url:
        yield url


def _values(datatype: str) -> np.ndarray:
    if datatype == "BYTES":
        return np.array([[b"a", "é".encode()], [b"", b"xyz"]], dtype=object)
    if datatype == "BOOL":
        return np.array([[True, False], [False, True]])
    dtype = tf.as_dtype(ECHO_DTYPES[datatype]).as_numpy_dtype
    high = np.iinfo(dtype).max if np.dtype(dtype).kind in "iu" else 1.5
    low = np.iinfo(dtype).min if np.dtype(dtype).kind == "i" else 0
    return np.array([[low, 1], [2, high]], dtype=dtype)


@pytest.mark.parametrize("datatype", list(ECHO_DTYPES))
@pytest.mark.parametrize("binary", [False, True])
def test_every_datatype_round_trips(echo_server, datatype, binary):
    client = triton.InferenceServerClient(echo_server.removeprefix("http://"))
    values = _values(datatype)
    tensor = triton.InferInput("x", [2, 2], datatype)
    tensor.set_data_from_numpy(values, binary_data=binary)
    signature = "serving_default" if datatype == "FP32" else datatype.lower()
    result = client.infer("echo", [tensor], parameters={"signature_name": signature},
                          outputs=[triton.InferRequestedOutput("y", binary_data=binary)],
                          headers={"Authorization": f"Bearer {API_KEY}"})
    assert result.get_output("y")["datatype"] == datatype
    echoed = result.as_numpy("y")
    if datatype == "BYTES" and not binary:  # JSON carries text; tritonclient gives str
        echoed = np.vectorize(str.encode, otypes=[object])(echoed)
    assert echoed.dtype == values.dtype
    np.testing.assert_array_equal(echoed, values)
    client.close()


def _echo(server: str, body: dict | bytes, key: str | None = API_KEY, **headers: str):
    headers = {**({"X-API-Key": key} if key else {}), **headers}
    if isinstance(body, dict):
        return httpx.post(server + "/v2/models/echo/infer", json=body, headers=headers)
    return httpx.post(server + "/v2/models/echo/infer", content=body, headers=headers)


def _rows(count: int, signature: str = "serving_default") -> dict:
    return {"parameters": {"signature_name": signature},
            "inputs": [{"name": "x", "datatype": "FP32", "shape": [count, 2],
                        "data": [0.0] * (2 * count)}]}


def test_limits_and_the_api_key_hold_on_v2(echo_server):
    assert _echo(echo_server, _rows(2), key=None).status_code == 401
    assert _echo(echo_server, _rows(2), key="wrong").status_code == 401
    assert httpx.get(echo_server + "/v2/models/echo").status_code == 401
    assert httpx.get(echo_server + "/v2/health/ready").status_code == 200  # open
    assert _echo(echo_server, _rows(8)).status_code == 200
    too_many = _echo(echo_server, _rows(9))
    assert too_many.status_code == 400 and "limit is 8" in too_many.json()["error"]
    too_big = _echo(echo_server, _rows(8) | {"id": "x" * 300_000})
    assert too_big.status_code == 413
    wrong_type = _echo(echo_server, b"<xml/>", **{"Content-Type": "text/xml"})
    assert wrong_type.status_code == 415
    zipped = _echo(echo_server, b"\x1f\x8b", **{"Content-Type": "application/json",
                                                 "Content-Encoding": "gzip"})
    assert zipped.status_code == 415


def test_an_image_bomb_in_a_binary_bytes_tensor_gets_413(echo_server):
    import io

    from PIL import Image

    png = io.BytesIO()
    Image.new("L", (200, 200)).save(png, "PNG")  # 40,000 pixels, the limit is 10,000
    element = struct.pack("<I", len(png.getvalue())) + png.getvalue()
    empty = struct.pack("<I", 0)
    header = {"parameters": {"signature_name": "bytes"},
              "inputs": [{"name": "x", "datatype": "BYTES", "shape": [1, 2],
                          "parameters": {"binary_data_size": len(element) + 4}}]}
    import orjson

    head = orjson.dumps(header)
    response = _echo(echo_server, head + element + empty,
                     **{"Inference-Header-Content-Length": str(len(head))})
    assert response.status_code == 413 and "pixels" in response.json()["error"]


def test_every_v2_example_of_the_openapi_document_runs(server):
    paths = httpx.get(server + "/openapi.json").json()["paths"]
    ran = []
    for path, operations in paths.items():
        if not (path.startswith("/v2/models/") and "{" not in path):
            continue
        content = operations["post"]["requestBody"]["content"]["application/json"]
        for name, example in content["examples"].items():
            response = httpx.post(server + path, json=example["value"], timeout=60)
            assert response.status_code == 200, (path, name, response.text)
            ran.append((path, name))
    # not the image models, whose inputs are image files or tensors of 32x32x3 and up (too
    # large to inline: the description says where to get them)
    assert {path.split("/")[3] for path, _ in ran} == {"mnist", "imdb_sentiment"}
    cifar = paths["/v2/models/cifar10/infer"]["post"]["description"]
    assert "`GET /models/cifar10/serving_default/example`" in cifar
    assert ("/v2/models/imdb_sentiment/infer", "predict_text") in ran


def test_nested_and_flat_data_are_the_same_tensor(server, client, digits):
    name, output = _mnist_io(client)
    answers = []
    for data in (digits[:2].reshape(-1).tolist(), digits[:2].tolist()):
        response = httpx.post(server + "/v2/models/mnist/infer", json={"inputs": [
            {"name": name, "datatype": "FP32", "shape": [2, 784], "data": data}]})
        assert response.status_code == 200, response.text
        (tensor,) = response.json()["outputs"]
        assert tensor["name"] == output and tensor["shape"] == [2, 10]
        answers.append(tensor["data"])
    assert len(answers[0]) == 20 and answers[0] == answers[1]
