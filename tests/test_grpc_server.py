"""The gRPC server's own guarantees, each on a server started for it: the API key, message
limits, TLS, reloading the model config, the codes of a failing or overloaded model, the
client's deadline in admission, and SIGTERM draining calls in flight. The servers of the
last four are long tests (`make test-long`); the error -> code mapping they rely on is
tested without a server in tests/test_grpc_calls.py."""

from __future__ import annotations

import concurrent.futures
import signal
import ssl
import subprocess
import time

import grpc
import httpx
import numpy as np
import pytest
import tensorflow as tf
from grpc_health.v1 import health_pb2, health_pb2_grpc
from tensorflow_serving.apis import (
    get_model_status_pb2,
    model_management_pb2,
    model_service_pb2_grpc,
    predict_pb2,
    prediction_service_pb2_grpc,
)
from tensorflow_serving.config import model_server_config_pb2

from app.grpc_api.protos import V2
from tests.helpers import only, wait_for
from tests.server import running_server, start_server, wait_until
from tests.test_breaker import Flaky

KEY = "s3cret-key"
IMAGE = np.zeros((1, 299, 299, 3), np.float32)


def predict_request(model: str, name: str, value: np.ndarray) -> predict_pb2.PredictRequest:
    request = predict_pb2.PredictRequest()
    request.model_spec.name = model
    request.inputs[name].CopyFrom(tf.make_tensor_proto(value))
    return request


def mnist_request(rows: int = 1) -> predict_pb2.PredictRequest:
    return predict_request("mnist", "image_input", np.zeros((rows, 784), np.float32))


def code_of(call, *args, **kwargs) -> tuple[grpc.StatusCode, str]:
    try:
        call(*args, **kwargs)
    except grpc.RpcError as err:
        return err.code(), err.details()
    return grpc.StatusCode.OK, ""


def test_the_api_key_in_metadata_and_the_message_limit(models_dir, tmp_path):
    repository = only(models_dir, tmp_path / "models", "mnist")
    with running_server(repository, poll_interval_s=0, api_key=KEY,
                        grpc_max_message_bytes=1_000_000) as url, \
            grpc.insecure_channel(url.grpc) as channel:
        predict = prediction_service_pb2_grpc.PredictionServiceStub(channel).Predict
        code, details = code_of(predict, mnist_request(), timeout=30)
        assert code == grpc.StatusCode.UNAUTHENTICATED and "API key" in details
        assert code_of(predict, mnist_request(), timeout=30,
                       metadata=[("authorization", "Bearer wrong")])[0] == \
            grpc.StatusCode.UNAUTHENTICATED
        for metadata in ([("authorization", f"Bearer {KEY}")], [("x-api-key", KEY)]):
            reply = predict(mnist_request(), timeout=30, metadata=metadata)
            assert tf.make_ndarray(reply.outputs["prediction"]).shape == (1, 10)
        # the OIP's model calls need it too; health and liveness stay open, as on HTTP
        model_ready = channel.unary_unary(
            "/inference.GRPCInferenceService/ModelReady",
            request_serializer=V2.ModelReadyRequest.SerializeToString,
            response_deserializer=V2.ModelReadyResponse.FromString)
        assert code_of(model_ready, V2.ModelReadyRequest(name="mnist"), timeout=10)[0] == \
            grpc.StatusCode.UNAUTHENTICATED
        assert model_ready(V2.ModelReadyRequest(name="mnist"), timeout=10,
                           metadata=[("x-api-key", KEY)]).ready
        health = health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(),
                                                           timeout=10)
        assert health.status == health_pb2.HealthCheckResponse.SERVING
        # 1.2 MB of rows, over the 1 MB limit: refused before it is decoded
        code, details = code_of(predict, mnist_request(400), timeout=30,
                                metadata=[("x-api-key", KEY)])
        assert code == grpc.StatusCode.RESOURCE_EXHAUSTED, details
        # the server says so, and keeps serving
        assert predict(mnist_request(), timeout=30, metadata=[("x-api-key", KEY)])


def test_the_default_limit_takes_16_inception_images(shared_server):
    """16 299x299x3 float32 images (17 MB) arrive whole: the unknown model's NOT_FOUND
    comes from the servicer, after the message was read."""
    batch = np.zeros((16, 299, 299, 3), np.float32)
    with grpc.insecure_channel(shared_server.grpc,
                               options=[("grpc.max_send_message_length", -1)]) as channel:
        predict = prediction_service_pb2_grpc.PredictionServiceStub(channel).Predict
        code, details = code_of(predict, predict_request("not_a_model", "images", batch),
                                timeout=60)
    assert code == grpc.StatusCode.NOT_FOUND and "not_a_model" in details


def test_reloading_the_model_config_adds_and_removes_models(models_dir, tmp_path):
    repository = only(models_dir, tmp_path / "models", "mnist", "imdb_sentiment")
    config_file = tmp_path / "models.config"
    config_file.write_text('model_config_list { config { name: "mnist" base_path: '
                           f'"{repository / "mnist"}" model_platform: "tensorflow" }} }}')
    with running_server(repository, poll_interval_s=0,
                        env={"TFSERVE_MODEL_CONFIG": str(config_file)}) as url, \
            grpc.insecure_channel(url.grpc) as channel:
        models = model_service_pb2_grpc.ModelServiceStub(channel)

        def state(model: str) -> str | grpc.StatusCode:
            request = get_model_status_pb2.GetModelStatusRequest()
            request.model_spec.name = model
            try:
                (version,) = models.GetModelStatus(request, timeout=10).model_version_status
            except grpc.RpcError as err:
                return err.code()
            return get_model_status_pb2.ModelVersionStatus.State.Name(version.state)

        assert (state("mnist"), state("imdb_sentiment")) == ("AVAILABLE", grpc.StatusCode.NOT_FOUND)
        config = model_server_config_pb2.ModelServerConfig()
        entry = config.model_config_list.config.add()
        entry.name, entry.base_path, entry.model_platform = (
            "imdb_sentiment", str(repository / "imdb_sentiment"), "tensorflow")
        models.HandleReloadConfigRequest(model_management_pb2.ReloadConfigRequest(
            config=config), timeout=120)
        wait_for(lambda: state("imdb_sentiment") == "AVAILABLE", timeout=120)
        wait_for(lambda: state("mnist") == grpc.StatusCode.NOT_FOUND, timeout=60)
        assert httpx.get(url + "/v1/models/imdb_sentiment").status_code == 200
        # a config that names no model folder is refused with the reason, and changes nothing
        entry.base_path = str(tmp_path / "missing")
        code, details = code_of(models.HandleReloadConfigRequest,
                                model_management_pb2.ReloadConfigRequest(config=config),
                                timeout=30)
        assert code == grpc.StatusCode.INVALID_ARGUMENT, details
        assert state("imdb_sentiment") == "AVAILABLE"


@pytest.mark.long
def test_a_failing_model_is_internal_then_its_breaker_unavailable(models_dir, tmp_path):
    flaky = Flaky(tmp_path, models_dir)
    with running_server(flaky.models, poll_interval_s=0, breaker_failures=2,
                        breaker_cooldown_s=60) as url, \
            grpc.insecure_channel(url.grpc) as channel:
        predict = prediction_service_pb2_grpc.PredictionServiceStub(channel).Predict
        request = predict_request("flaky", "x", np.ones((1, 2), np.float32))
        assert tf.make_ndarray(predict(request, timeout=30).outputs["y"]).tolist() == [[2, 2]]
        flaky.break_()
        codes = [code_of(predict, request, timeout=30) for _ in range(2)]
        assert [code for code, _ in codes] == [grpc.StatusCode.INTERNAL] * 2, codes
        code, details = code_of(predict, request, timeout=30)
        assert code == grpc.StatusCode.UNAVAILABLE and "batches in a row" in details, details
        # a bad input to a working model is the client's error, not the model's
        code, _ = code_of(predict, predict_request("flaky", "x", -np.ones((1, 2), np.float32)),
                          timeout=30)
        assert code in (grpc.StatusCode.INVALID_ARGUMENT, grpc.StatusCode.UNAVAILABLE)


@pytest.fixture(scope="module")
def inception_server(models_dir, tmp_path_factory):
    """inception_v3 alone: a model slow enough on this machine (~0.3 s an image) to queue."""
    root = tmp_path_factory.mktemp("grpc-inception")
    process, url = start_server(only(models_dir, root / "models", "inception_v3"),
                                root / "server.log", poll_interval_s=0, max_batch_size=4,
                                max_queue_rows=24, log_level="INFO")
    wait_until(url, process, "/readyz")
    url.process, url.log = process, root / "server.log"
    yield url
    if process.poll() is None:
        process.kill()
        process.wait()


def inception_calls(target: str, count: int, images: int, timeout: float | None = None
                    ) -> list[tuple[grpc.StatusCode, str]]:
    """`count` concurrent Predict calls of `images` images each, on one channel."""
    with grpc.insecure_channel(target) as channel:
        predict = prediction_service_pb2_grpc.PredictionServiceStub(channel).Predict
        request = predict_request("inception_v3", "images", np.repeat(IMAGE, images, axis=0))
        with concurrent.futures.ThreadPoolExecutor(count) as pool:
            return list(pool.map(lambda _: code_of(predict, request, timeout=timeout),
                                 range(count)))


@pytest.mark.long
def test_the_clients_deadline_is_the_requests_deadline_in_admission(inception_server):
    # admission judges by the measured rate: a few calls past the warm-up measure it
    assert {c for c, _ in inception_calls(inception_server.grpc, 3, 4)} == {grpc.StatusCode.OK}
    with concurrent.futures.ThreadPoolExecutor(1) as background:
        queued = background.submit(inception_calls, inception_server.grpc, 6, 4)
        time.sleep(0.6)  # 24 images queued (the queue's room): seconds of work
        with grpc.insecure_channel(inception_server.grpc) as channel:
            predict = prediction_service_pb2_grpc.PredictionServiceStub(channel).Predict
            started = time.monotonic()
            code, details = code_of(predict, predict_request("inception_v3", "images", IMAGE),
                                    timeout=0.3)
            refused_s = time.monotonic() - started
            # over the queue's room: refused at once, for clients to retry elsewhere
            overflow = code_of(predict, predict_request(
                "inception_v3", "images", np.repeat(IMAGE, 24, axis=0)), timeout=30)
        answered = queued.result()
    # refused by the server at admission, with its reason, long before the deadline passed
    assert code == grpc.StatusCode.DEADLINE_EXCEEDED and "deadline" in details, details
    assert refused_s < 0.2, refused_s
    assert overflow[0] == grpc.StatusCode.UNAVAILABLE, overflow
    # the load itself: answered, or refused at once past the queue-delay target
    codes = [c for c, _ in answered]
    assert set(codes) <= {grpc.StatusCode.OK, grpc.StatusCode.UNAVAILABLE}, answered
    assert codes.count(grpc.StatusCode.OK) >= 2, answered


@pytest.mark.long
def test_sigterm_answers_the_grpc_calls_in_flight(inception_server):
    with concurrent.futures.ThreadPoolExecutor(1) as background:
        calls = background.submit(inception_calls, inception_server.grpc, 4, 2, 60)
        time.sleep(1.0)
        inception_server.process.send_signal(signal.SIGTERM)
        outcomes = calls.result()
    assert inception_server.process.wait(timeout=60) == 0
    assert [c for c, _ in outcomes] == [grpc.StatusCode.OK] * 4, outcomes
    assert "gRPC server stopped" in inception_server.log.read_text()


@pytest.mark.long
def test_tls_on_both_ports_with_a_self_signed_certificate(models_dir, tmp_path):
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
                    "-subj", "/CN=localhost", "-addext", "subjectAltName=DNS:localhost",
                    "-keyout", str(key), "-out", str(cert)], check=True, capture_output=True)
    repository = only(models_dir, tmp_path / "models", "mnist")
    process, url = start_server(repository, poll_interval_s=0, tls_cert_file=cert,
                                tls_key_file=key)
    https = url.replace("http://127.0.0.1", "https://localhost")
    try:
        wait_for(lambda: _ready_over_tls(https, cert, process), timeout=180)
        with pytest.raises(httpx.HTTPError):  # plain HTTP is not served
            httpx.get(url + "/readyz", timeout=5)
        credentials = grpc.ssl_channel_credentials(root_certificates=cert.read_bytes())
        target = url.grpc.replace("127.0.0.1", "localhost")
        with grpc.secure_channel(target, credentials) as channel:
            reply = prediction_service_pb2_grpc.PredictionServiceStub(channel).Predict(
                mnist_request(), timeout=30)
        assert tf.make_ndarray(reply.outputs["prediction"]).shape == (1, 10)
        with grpc.insecure_channel(url.grpc) as channel:  # cleartext: no answer
            code, _ = code_of(prediction_service_pb2_grpc.PredictionServiceStub(channel).Predict,
                              mnist_request(), timeout=5)
        assert code == grpc.StatusCode.UNAVAILABLE
    finally:
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=30) == 0


def _ready_over_tls(https: str, cert, process: subprocess.Popen) -> bool:
    assert process.poll() is None, "the server exited"
    try:
        return httpx.get(https + "/readyz", timeout=2,
                         verify=ssl.create_default_context(cafile=str(cert))).status_code == 200
    except httpx.HTTPError:
        return False
