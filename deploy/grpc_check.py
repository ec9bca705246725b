"""gRPC calls through the proxy's port 8500, for compose_check.py and swarm_check.py.

Real clients, unchanged: tensorflow-serving-api's PredictionService stub, Triton's
tritonclient.grpc, grpcio-health-checking's Health stub. Every channel carries the retry policy
the README gives clients: UNAVAILABLE (a replica still loading, full, or stopping; a call nginx
could not place) is tried again, up to 5 times, and nginx sends each try to a replica of its own
choosing. The tries span ~3 s (jittered backoff 0.5, 1, 2, 2 s at most), more than a stopping
replica stays in the proxy's DNS answers (its stop, plus nginx's 2 s `valid`): with 0.1 s to
1 s they spanned ~1 s, and `make compose-test` saw 1 call of 1,553 hit the stopping replica on
all 5 tries.
"""

from __future__ import annotations

import json

import grpc
import numpy as np

RETRY_ON_UNAVAILABLE = json.dumps({"methodConfig": [{
    "name": [{}],  # every method of every service
    "retryPolicy": {"maxAttempts": 5, "initialBackoff": "0.5s", "maxBackoff": "2s",
                    "backoffMultiplier": 2, "retryableStatusCodes": ["UNAVAILABLE"]}}]})
MAX_MESSAGE = 64 * 2**20  # TFSERVE_GRPC_MAX_MESSAGE_BYTES's default
OPTIONS = [("grpc.service_config", RETRY_ON_UNAVAILABLE),
           ("grpc.max_send_message_length", -1),
           ("grpc.max_receive_message_length", MAX_MESSAGE)]


def channel(target: str) -> grpc.Channel:
    return grpc.insecure_channel(target, options=OPTIONS)


def health(target: str, timeout: float = 5) -> str:
    """grpc.health.v1.Health/Check of the whole server: SERVING once it is ready."""
    from grpc_health.v1 import health_pb2, health_pb2_grpc

    with channel(target) as ch:
        answer = health_pb2_grpc.HealthStub(ch).Check(health_pb2.HealthCheckRequest(),
                                                      timeout=timeout)
    return health_pb2.HealthCheckResponse.ServingStatus.Name(answer.status)


def predict_request(model: str, name: str, batch: np.ndarray):
    import tensorflow as tf
    from tensorflow_serving.apis import predict_pb2

    request = predict_pb2.PredictRequest()
    request.model_spec.name = model
    request.inputs[name].CopyFrom(tf.make_tensor_proto(batch))
    return request


def tf_predict(stub, model: str, name: str, batch: np.ndarray, timeout: float = 60
               ) -> tuple[dict[str, np.ndarray], str]:
    """TF Serving's Predict; the outputs and the replica nginx gave the call (x-upstream)."""
    import tensorflow as tf

    response, call = stub.Predict.with_call(predict_request(model, name, batch),
                                            timeout=timeout)
    upstream = dict(call.initial_metadata()).get("x-upstream", "")
    return {k: tf.make_ndarray(v) for k, v in response.outputs.items()}, upstream


def prediction_stub(ch: grpc.Channel):
    from tensorflow_serving.apis import prediction_service_pb2_grpc

    return prediction_service_pb2_grpc.PredictionServiceStub(ch)


def mnist_digit(stub, timeout: float = 60) -> tuple[int, str]:
    """One mnist row through TF Serving's Predict: ten probabilities, a digit 0..9."""
    outputs, upstream = tf_predict(stub, "mnist", "image_input",
                                   np.zeros((1, 784), np.float32), timeout)
    probabilities = outputs["prediction"]
    assert probabilities.shape == (1, 10), probabilities.shape
    assert abs(float(probabilities.sum()) - 1) < 1e-3, probabilities
    digit = int(probabilities.argmax())
    assert 0 <= digit <= 9
    return digit, upstream


def triton_mnist(target: str, rows: int = 3) -> list[int]:
    """The Open Inference Protocol's ModelInfer through Triton's own gRPC client."""
    import tritonclient.grpc as triton

    client = triton.InferenceServerClient(target, channel_args=OPTIONS)
    try:
        assert client.is_server_live() and client.is_server_ready()
        assert client.is_model_ready("mnist")
        image = triton.InferInput("image_input", [rows, 784], "FP32")
        image.set_data_from_numpy(np.random.default_rng(0).random((rows, 784), np.float32))
        result = client.infer("mnist", [image], outputs=[
            triton.InferRequestedOutput("prediction")], client_timeout=60)
        probabilities = result.as_numpy("prediction")
    finally:
        client.close()
    assert probabilities.shape == (rows, 10), probabilities.shape
    assert np.allclose(probabilities.sum(axis=1), 1, atol=1e-3)
    digits = [int(d) for d in probabilities.argmax(axis=1)]
    assert all(0 <= d <= 9 for d in digits)
    return digits


def large_batch(stub, images: int = 16, timeout: float = 120) -> dict[str, object]:
    """A batch of `images` 299x299x3 float32 images for inception_v3 (16: 17 MB) in one call."""
    batch = np.random.default_rng(1).uniform(-1, 1, (images, 299, 299, 3)).astype(np.float32)
    outputs, upstream = tf_predict(stub, "inception_v3", "images", batch, timeout)
    probabilities = outputs["probabilities"]
    assert probabilities.shape == (images, 1000), probabilities.shape
    return {"request_mb": round(batch.nbytes / 1e6, 1), "shape": list(probabilities.shape),
            "upstream": upstream}


def too_large(stub, timeout: float = 60) -> str:
    """A message just over TFSERVE_GRPC_MAX_MESSAGE_BYTES: the replica, not nginx, refuses it."""
    batch = np.zeros((MAX_MESSAGE // (784 * 4) + 2, 784), np.float32)
    try:
        tf_predict(stub, "mnist", "image_input", batch, timeout)
    except grpc.RpcError as err:
        return err.code().name
    raise AssertionError("a message over the limit was accepted")
