"""The Open Inference Protocol over gRPC (`inference.GRPCInferenceService`) with its official
clients, tritonclient.grpc and KServe's InferenceGRPCClient, each in a process of its own
(tests/clients: the two cannot share one), and typed contents with tfserve's own messages;
answers compared with the REST v2 route's on the same inputs."""

from __future__ import annotations

import json
import subprocess
import sys

import grpc
import httpx
import numpy as np
import pytest

from app.grpc_api.protos import V2
from tests.conftest import ROOT, SAMPLES
from training import mnist
from training.data import load_mnist

REVIEWS = sorted((SAMPLES / "reviews").glob("*.txt"))[:3]
PHOTOS = [SAMPLES / "images" / name for name in ("banana.jpg", "koala.jpg")]


@pytest.fixture(scope="module")
def digits() -> np.ndarray:
    _, (x_test, _) = load_mnist()
    return mnist.flatten(x_test[:6]).astype(np.float32)


@pytest.fixture(scope="module")
def inputs_file(tmp_path_factory, digits):
    path = tmp_path_factory.mktemp("grpc-clients") / "inputs.json"
    path.write_text(json.dumps({"digits": digits.tolist(),
                                "reviews": [p.read_text() for p in REVIEWS],
                                "photos": [str(p) for p in PHOTOS]}))
    return path


def run_client(module: str, target: str, inputs_file) -> dict:
    """One client module of tests/clients in a fresh interpreter; its JSON report."""
    result = subprocess.run([sys.executable, "-m", f"tests.clients.{module}", target,
                             str(inputs_file)], cwd=ROOT, capture_output=True, text=True,
                            timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    return json.loads(result.stdout.strip().splitlines()[-1])


@pytest.fixture(scope="module")
def triton(shared_server, inputs_file) -> dict:
    return run_client("triton_grpc", shared_server.grpc, inputs_file)


@pytest.fixture(scope="module")
def kserve(shared_server, inputs_file) -> dict:
    return run_client("kserve_grpc", shared_server.grpc, inputs_file)


def rest_v2_mnist(server, digits: np.ndarray) -> np.ndarray:
    body = {"inputs": [{"name": "image_input", "shape": list(digits.shape),
                        "datatype": "FP32", "data": digits.ravel().tolist()}]}
    answer = httpx.post(server + "/v2/models/mnist/infer", json=body, timeout=30).json()
    (output,) = answer["outputs"]
    return np.reshape(output["data"], output["shape"])


def test_tritonclient_health_and_metadata_match_rest(shared_server, triton):
    health = triton["health"]
    assert health["live"] and health["ready"] and health["model_ready"]
    assert health["version_ready"]
    assert health["server"]["name"] == "tfserve"
    assert "binary_tensor_data" in health["server"]["extensions"]
    rest = httpx.get(shared_server + "/v2/models/mnist").json()
    grpc_meta = health["mnist"]
    assert grpc_meta["name"] == rest["name"] == "mnist"
    assert grpc_meta["platform"] == rest["platform"]
    assert grpc_meta["versions"] == rest["versions"]
    for side in ("inputs", "outputs"):  # gRPC's JSON gives int64 dims as strings
        assert [{**t, "shape": [int(d) for d in t["shape"]]} for t in grpc_meta[side]] == \
            rest[side]


def test_tritonclient_raw_contents_equal_the_rest_v2_answer(shared_server, triton, digits,
                                                            tiny_exports):
    answers = triton["answers"]
    got = np.asarray(answers["mnist"])
    np.testing.assert_allclose(got, rest_v2_mnist(shared_server, digits), rtol=1e-5, atol=1e-6)
    expected = tiny_exports["mnist"].model.predict(digits, verbose=0)
    np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-5)
    assert answers["mnist_response"] == {"model_name": "mnist", "model_version": "1",
                                         "id": "d1"}
    assert answers["mnist_output"]["datatype"] == "FP32"
    assert [int(d) for d in answers["mnist_output"]["shape"]] == [len(digits), 10]


def test_tritonclient_bytes_with_a_signature_name(shared_server, triton):
    answers = triton["answers"]
    rest = httpx.post(shared_server + "/v1/models/imdb_sentiment:predict", timeout=30, json={
        "signature_name": "predict_text",
        "instances": [p.read_text() for p in REVIEWS]}).json()["predictions"]
    assert answers["text_label"] == [p["label"] for p in rest]
    np.testing.assert_allclose(np.ravel(answers["text_probability"]),
                               [p["probability"] for p in rest], rtol=1e-5)
    assert all(len(row) == 3 for row in answers["image_classes"])
    assert len(answers["image_classes"]) == len(PHOTOS)


def test_tritonclient_gets_the_status_codes_of_bad_calls(triton):
    assert triton["errors"] == {
        "unknown_model": "NOT_FOUND",
        "unknown_version": "NOT_FOUND",
        "unknown_signature": "NOT_FOUND",
        "wrong_input_name": "INVALID_ARGUMENT",
        "wrong_shape": "INVALID_ARGUMENT",
        "wrong_datatype": "INVALID_ARGUMENT",
        "model_not_ready_unknown": "NOT_FOUND",
    }


def test_tritonclient_stream_answers_every_request_by_its_id(shared_server, triton, digits):
    stream = triton["stream"]
    assert sorted(stream["answers"]) == sorted(f"row-{i}" for i in range(len(digits)))
    rest = rest_v2_mnist(shared_server, digits)
    for row in range(len(digits)):
        np.testing.assert_allclose(stream["answers"][f"row-{row}"], rest[row], rtol=1e-5,
                                   atol=1e-6)
    (error,) = stream["errors"]
    assert "NOT_FOUND" in error and "nope" in error


def test_kserve_grpc_client(shared_server, kserve, digits):
    assert kserve["health"] == {"live": True, "ready": True, "model_ready": True}
    assert kserve["id"] == "k1" and kserve["model_name"] == "mnist"
    np.testing.assert_allclose(kserve["mnist"], rest_v2_mnist(shared_server, digits),
                               rtol=1e-5, atol=1e-6)
    rest = httpx.post(shared_server + "/v1/models/imdb_sentiment:predict", timeout=30, json={
        "signature_name": "predict_text",
        "instances": [p.read_text() for p in REVIEWS]}).json()["predictions"]
    assert kserve["text_label"] == [p["label"] for p in rest]
    assert kserve["unknown_model"] == "NOT_FOUND"


# typed contents: no official client sends them by default; tfserve's own messages ------------

@pytest.fixture(scope="module")
def model_infer(shared_server):
    with grpc.insecure_channel(shared_server.grpc) as channel:
        yield channel.unary_unary("/inference.GRPCInferenceService/ModelInfer",
                                  request_serializer=V2.ModelInferRequest.SerializeToString,
                                  response_deserializer=V2.ModelInferResponse.FromString)


def test_typed_contents_in_typed_contents_out(shared_server, model_infer, digits):
    request = V2.ModelInferRequest(model_name="mnist", id="typed")
    tensor = request.inputs.add(name="image_input", datatype="FP32", shape=digits.shape)
    tensor.contents.fp32_contents.extend(digits.ravel().tolist())
    response = model_infer(request, timeout=30)
    assert not response.raw_output_contents and response.id == "typed"
    (output,) = response.outputs
    got = np.reshape(output.contents.fp32_contents, list(output.shape))
    np.testing.assert_allclose(got, rest_v2_mnist(shared_server, digits), rtol=1e-5, atol=1e-6)


def test_typed_bytes_contents_and_a_requested_output(shared_server, model_infer):
    request = V2.ModelInferRequest(model_name="imdb_sentiment")
    request.parameters["signature_name"].string_param = "predict_text"
    tensor = request.inputs.add(name="text", datatype="BYTES", shape=[len(REVIEWS)])
    tensor.contents.bytes_contents.extend(p.read_bytes() for p in REVIEWS)
    request.outputs.add(name="label")
    (output,) = model_infer(request, timeout=30).outputs
    assert output.name == "label" and output.datatype == "BYTES"
    assert set(output.contents.bytes_contents) <= {b"positive", b"negative"}
    assert len(output.contents.bytes_contents) == len(REVIEWS)


@pytest.mark.parametrize("change,words", [
    (lambda t: t.contents.int_contents.extend([1] * 784), "contents"),
    (lambda t: t.shape.__setitem__(1, 783), "783"),
    (lambda t: setattr(t, "datatype", "FP16"), "FP16"),
])
def test_bad_typed_contents_are_invalid_argument(model_infer, digits, change, words):
    request = V2.ModelInferRequest(model_name="mnist")
    tensor = request.inputs.add(name="image_input", datatype="FP32", shape=[1, 784])
    tensor.contents.fp32_contents.extend(digits[0].tolist())
    change(tensor)
    with pytest.raises(grpc.RpcError) as caught:
        model_infer(request, timeout=30)
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert words in caught.value.details()
