"""TF Serving's gRPC API with `tensorflow-serving-api`'s own stubs against the real server:
Predict (tensors, text, image bytes), metadata, status, every status code, reflection, health,
answers equal to the REST routes', and 64 concurrent calls batched together."""

from __future__ import annotations

import base64
import time

import grpc
import httpx
import numpy as np
import pytest
import tensorflow as tf
from google.protobuf import json_format
from grpc_health.v1 import health_pb2, health_pb2_grpc
from prometheus_client.parser import text_string_to_metric_families
from tensorflow_serving.apis import (
    classification_pb2,
    get_model_metadata_pb2,
    get_model_status_pb2,
    model_service_pb2_grpc,
    predict_pb2,
    prediction_service_pb2_grpc,
)

from tests.conftest import SAMPLES
from training import mnist
from training.data import load_mnist


@pytest.fixture(scope="module")
def server(shared_server):
    return shared_server


@pytest.fixture(scope="module")
def channel(server):
    with grpc.insecure_channel(server.grpc) as channel:
        yield channel


@pytest.fixture(scope="module")
def stub(channel):
    return prediction_service_pb2_grpc.PredictionServiceStub(channel)


@pytest.fixture(scope="module")
def digits():
    _, (x_test, _) = load_mnist()
    return mnist.flatten(x_test[:64])


def predict_request(model: str, inputs: dict, signature: str = "", version: int | None = None,
                    label: str = "", output_filter: tuple[str, ...] = ()
                    ) -> predict_pb2.PredictRequest:
    request = predict_pb2.PredictRequest(output_filter=list(output_filter))
    request.model_spec.name = model
    request.model_spec.signature_name = signature
    if version is not None:
        request.model_spec.version.value = version
    if label:
        request.model_spec.version_label = label
    for name, value in inputs.items():
        request.inputs[name].CopyFrom(tf.make_tensor_proto(value))
    return request


def outputs_of(response: predict_pb2.PredictResponse) -> dict[str, np.ndarray]:
    return {name: tf.make_ndarray(proto) for name, proto in response.outputs.items()}


def test_predict_mnist_equals_the_rest_route_and_the_model(server, stub, digits, tiny_exports):
    response = stub.Predict(predict_request("mnist", {"image_input": digits[:5]}), timeout=30)
    assert response.model_spec.name == "mnist" and response.model_spec.version.value == 1
    assert response.model_spec.signature_name == "serving_default"
    (prediction,) = outputs_of(response).values()
    rest = httpx.post(server + "/v1/models/mnist:predict",
                      json={"instances": digits[:5].tolist()}, timeout=30).json()
    np.testing.assert_allclose(prediction, rest["predictions"], rtol=1e-5, atol=1e-6)
    expected = tiny_exports["mnist"].model.predict(digits[:5], verbose=0)
    np.testing.assert_allclose(prediction, expected, rtol=1e-5, atol=1e-6)


def test_grpc_predictions_are_monitored_like_rest_ones(server, stub, digits):
    def seen() -> int:
        doc = httpx.get(server + "/models/mnist/monitoring", params={"version": 1}).json()
        return doc["versions"][0]["signatures"]["serving_default"]["rows_seen"]

    before = seen()
    stub.Predict(predict_request("mnist", {"image_input": digits[:7]}), timeout=30)
    deadline = time.monotonic() + 5  # the monitoring thread folds every 50 ms
    while seen() != before + 7:
        assert time.monotonic() < deadline, (before, seen())
        time.sleep(0.05)


def test_predict_text_signature_and_output_filter(server, stub):
    reviews = [p.read_bytes() for p in sorted((SAMPLES / "reviews").glob("*.txt"))[:3]]
    request = predict_request("imdb_sentiment", {"text": np.array(reviews, dtype=object)},
                              signature="predict_text", version=1)
    outputs = outputs_of(stub.Predict(request, timeout=30))
    assert set(outputs) == {"label", "probability"}
    assert set(outputs["label"].tolist()) <= {b"positive", b"negative"}
    rest = httpx.post(server + "/v1/models/imdb_sentiment:predict", timeout=30, json={
        "signature_name": "predict_text",
        "instances": [r.decode() for r in reviews]}).json()["predictions"]
    assert [p["label"] for p in rest] == [x.decode() for x in outputs["label"]]
    np.testing.assert_allclose(outputs["probability"], [p["probability"] for p in rest],
                               rtol=1e-5)
    filtered = outputs_of(stub.Predict(predict_request(
        "imdb_sentiment", {"text": np.array(reviews, dtype=object)}, signature="predict_text",
        output_filter=("label",)), timeout=30))
    assert list(filtered) == ["label"] and (filtered["label"] == outputs["label"]).all()


def test_predict_image_bytes_on_inception(server, stub):
    photos = [(SAMPLES / "images" / n).read_bytes() for n in ("banana.jpg", "koala.jpg")]
    request = predict_request("inception_v3", {"image_bytes": np.array(photos, dtype=object)},
                              signature="predict_image")
    outputs = outputs_of(stub.Predict(request, timeout=60))
    assert outputs["classes"].shape == (2, 3) and outputs["scores"].shape == (2, 3)
    rest = httpx.post(server + "/v1/models/inception_v3:predict", timeout=60, json={
        "signature_name": "predict_image",
        "instances": [{"b64": base64.b64encode(p).decode()} for p in photos]}).json()
    assert [p["classes"] for p in rest["predictions"]] == \
        [[c.decode() for c in row] for row in outputs["classes"]]


def test_metadata_is_the_rest_routes_signature_def_map(server, stub):
    request = get_model_metadata_pb2.GetModelMetadataRequest(metadata_field=["signature_def"])
    request.model_spec.name = "imdb_sentiment"
    response = stub.GetModelMetadata(request, timeout=30)
    assert response.model_spec.name == "imdb_sentiment"
    assert response.model_spec.version.value == 1
    signatures = get_model_metadata_pb2.SignatureDefMap()
    assert response.metadata["signature_def"].Unpack(signatures)
    assert signatures.signature_def["predict_text"].inputs["text"].dtype == tf.string
    rest = httpx.get(server + "/v1/models/imdb_sentiment/metadata").json()
    rest_defs = rest["metadata"]["signature_def"]["signature_def"]
    grpc_defs = json_format.MessageToDict(signatures, preserving_proto_field_name=True,
                                          always_print_fields_with_no_presence=True
                                          )["signature_def"]
    assert grpc_defs.keys() == rest_defs.keys() == {"serving_default", "predict_text"}
    for name, rest_def in rest_defs.items():
        for part in ("inputs", "outputs", "method_name"):
            assert grpc_defs[name][part] == rest_def[part], (name, part)


def test_model_status_matches_the_rest_route(server, channel):
    models = model_service_pb2_grpc.ModelServiceStub(channel)
    request = get_model_status_pb2.GetModelStatusRequest()
    request.model_spec.name = "mnist"
    response = models.GetModelStatus(request, timeout=30)
    rest = httpx.get(server + "/v1/models/mnist").json()
    assert json_format.MessageToDict(response, preserving_proto_field_name=True,
                                     always_print_fields_with_no_presence=True) == rest


@pytest.mark.parametrize("change, code, words", [
    (lambda r: r.model_spec.__setattr__("name", "nope"), grpc.StatusCode.NOT_FOUND,
     "model 'nope' is not served"),
    (lambda r: r.model_spec.version.__setattr__("value", 9), grpc.StatusCode.NOT_FOUND,
     "no version 9"),
    (lambda r: r.model_spec.__setattr__("version_label", "stable"), grpc.StatusCode.NOT_FOUND,
     "no version label 'stable'"),
    (lambda r: r.model_spec.__setattr__("signature_name", "nope"), grpc.StatusCode.NOT_FOUND,
     "nope"),
    (lambda r: r.model_spec.__setattr__("name", ""), grpc.StatusCode.INVALID_ARGUMENT,
     "model_spec.name is required"),
    (lambda r: r.inputs["wrong"].CopyFrom(r.inputs.pop("image_input")),
     grpc.StatusCode.INVALID_ARGUMENT, "unknown input 'wrong'"),
    (lambda r: r.inputs["image_input"].CopyFrom(tf.make_tensor_proto(np.zeros((1, 784)))),
     grpc.StatusCode.INVALID_ARGUMENT, "is float64; the model expects float32"),
    (lambda r: r.inputs["image_input"].CopyFrom(
        tf.make_tensor_proto(np.zeros((1, 783), np.float32))),
     grpc.StatusCode.INVALID_ARGUMENT, "got shape [1, 783]"),
    (lambda r: r.output_filter.append("nope"), grpc.StatusCode.INVALID_ARGUMENT,
     "output_filter names 'nope'"),
    (lambda r: r.inputs["image_input"].CopyFrom(
        tf.make_tensor_proto(np.zeros((2000, 784), np.float32))),
     grpc.StatusCode.INVALID_ARGUMENT, "limit is 1024"),
])
def test_bad_requests_get_tf_servings_codes_and_the_rest_text(stub, digits, change, code, words):
    request = predict_request("mnist", {"image_input": digits[:1]})
    change(request)
    with pytest.raises(grpc.RpcError) as failure:
        stub.Predict(request, timeout=30)
    assert failure.value.code() == code, failure.value.details()
    assert words in failure.value.details()
    trailing = dict(failure.value.trailing_metadata() or ())
    assert len(trailing["x-request-id"]) == 32


def test_classify_and_metadata_fields_outside_signature_def_are_refused(stub):
    request = classification_pb2.ClassificationRequest()
    request.model_spec.name = "mnist"
    with pytest.raises(grpc.RpcError) as failure:
        stub.Classify(request, timeout=30)
    assert failure.value.code() == grpc.StatusCode.UNIMPLEMENTED
    assert "call Predict" in failure.value.details()
    metadata = get_model_metadata_pb2.GetModelMetadataRequest(metadata_field=["graph"])
    metadata.model_spec.name = "mnist"
    with pytest.raises(grpc.RpcError) as failure:
        stub.GetModelMetadata(metadata, timeout=30)
    assert failure.value.code() == grpc.StatusCode.INVALID_ARGUMENT


def test_a_request_id_in_metadata_comes_back(stub, digits):
    _, call = stub.Predict.with_call(predict_request("mnist", {"image_input": digits[:1]}),
                                     metadata=(("x-request-id", "grpc-abc-1"),), timeout=30)
    assert dict(call.trailing_metadata())["x-request-id"] == "grpc-abc-1"


def test_health_follows_readiness_and_reflection_lists_the_services(channel):
    health = health_pb2_grpc.HealthStub(channel)
    for service in ("", "tensorflow.serving.PredictionService", "inference.GRPCInferenceService"):
        answer = health.Check(health_pb2.HealthCheckRequest(service=service), timeout=10)
        assert answer.status == health_pb2.HealthCheckResponse.SERVING
    with pytest.raises(grpc.RpcError) as failure:
        health.Check(health_pb2.HealthCheckRequest(service="nope"), timeout=10)
    assert failure.value.code() == grpc.StatusCode.NOT_FOUND
    from google.protobuf.descriptor_pool import DescriptorPool
    from grpc_reflection.v1alpha.proto_reflection_descriptor_database import (
        ProtoReflectionDescriptorDatabase,
    )

    database = ProtoReflectionDescriptorDatabase(channel)
    assert set(database.get_services()) >= {
        "tensorflow.serving.PredictionService", "tensorflow.serving.ModelService",
        "inference.GRPCInferenceService", "grpc.health.v1.Health"}
    pool = DescriptorPool(database)
    methods = {m.name for m in pool.FindServiceByName("inference.GRPCInferenceService").methods}
    assert {"ModelInfer", "ModelMetadata", "ServerReady", "ModelStreamInfer"} <= methods
    predict = pool.FindServiceByName("tensorflow.serving.PredictionService").methods_by_name[
        "Predict"]
    assert predict.input_type.full_name == "tensorflow.serving.PredictRequest"


def _batch_count(server: str) -> float:
    text = httpx.get(server + "/metrics").text
    for family in text_string_to_metric_families(text):
        if family.name == "tfserve_batch_size":
            return sum(s.value for s in family.samples if s.name.endswith("_count")
                       and s.labels.get("model") == "mnist"
                       and s.labels.get("signature") == "serving_default")
    return 0.0


def test_64_concurrent_calls_each_get_their_own_answer_in_shared_batches(server, stub, digits,
                                                                        tiny_exports):
    expected = tiny_exports["mnist"].model.predict(digits, verbose=0)
    calls = []
    for _ in range(3):  # grpcio hands calls over one by one: a burst may still run alone
        calls_before = _batch_count(server)
        futures = [stub.Predict.future(
            predict_request("mnist", {"image_input": digits[i:i + 1]}), timeout=60)
            for i in range(64)]
        answers = [tf.make_ndarray(f.result().outputs["prediction"]) for f in futures]
        for i, answer in enumerate(answers):
            np.testing.assert_allclose(answer[0], expected[i], rtol=1e-4, atol=1e-5)
        calls.append(_batch_count(server) - calls_before)
        if calls[-1] < 64:
            break
    assert 0 < min(calls) < 64, calls  # some calls shared one model call
