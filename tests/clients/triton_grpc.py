"""Triton's `tritonclient.grpc`, unchanged, against a running tfserve (see __init__).

INPUTS.json: {"digits": [[784 floats], ...], "reviews": [text, ...], "photos": [path, ...]}.
Prints what the client got: health, metadata, answers, and the status of each bad call.
"""

from __future__ import annotations

import json
import queue
import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np
import tritonclient.grpc as triton
from tritonclient.utils import InferenceServerException


def status_of(call: Callable[[], object]) -> str:
    """"OK", or the gRPC code's name of the error the client raised."""
    try:
        call()
    except InferenceServerException as err:
        return f"{err.status()}".removeprefix("StatusCode.")
    return "OK"


def tensor(name: str, array: np.ndarray, datatype: str) -> triton.InferInput:
    infer_input = triton.InferInput(name, list(array.shape), datatype)
    infer_input.set_data_from_numpy(array)  # raw_input_contents, the client's only way
    return infer_input


def health(client: triton.InferenceServerClient) -> dict:
    server = client.get_server_metadata(as_json=True)
    model = client.get_model_metadata("mnist", as_json=True)
    return {"live": client.is_server_live(), "ready": client.is_server_ready(),
            "model_ready": client.is_model_ready("mnist"),
            "version_ready": client.is_model_ready("mnist", "1"),
            "server": {"name": server["name"], "extensions": server.get("extensions", [])},
            "mnist": model}


def answers(client: triton.InferenceServerClient, inputs: dict) -> dict:
    digits = np.asarray(inputs["digits"], np.float32)
    mnist = client.infer("mnist", [tensor("image_input", digits, "FP32")], request_id="d1",
                         outputs=[triton.InferRequestedOutput("prediction")])
    reviews = np.array([r.encode() for r in inputs["reviews"]], dtype=np.object_)
    text = client.infer("imdb_sentiment", [tensor("text", reviews, "BYTES")],
                        parameters={"signature_name": "predict_text"}, model_version="1")
    photos = np.array([Path(p).read_bytes() for p in inputs["photos"]], dtype=np.object_)
    image = client.infer("inception_v3", [tensor("image_bytes", photos, "BYTES")],
                         parameters={"signature_name": "predict_image"})
    response = mnist.get_response(as_json=True)
    return {"mnist": mnist.as_numpy("prediction").tolist(),
            "mnist_response": {k: response.get(k) for k in ("model_name", "model_version",
                                                            "id")},
            "mnist_output": response["outputs"][0],
            "text_label": [x.decode() for x in text.as_numpy("label").ravel()],
            "text_probability": text.as_numpy("probability").tolist(),
            "image_classes": [[c.decode() for c in row] for row in image.as_numpy("classes")]}


def errors(client: triton.InferenceServerClient, inputs: dict) -> dict:
    digits = np.asarray(inputs["digits"], np.float32)
    good = tensor("image_input", digits, "FP32")
    return {
        "unknown_model": status_of(lambda: client.infer("nope", [good])),
        "unknown_version": status_of(lambda: client.infer("mnist", [good], model_version="7")),
        "unknown_signature": status_of(lambda: client.infer(
            "mnist", [good], parameters={"signature_name": "nope"})),
        "wrong_input_name": status_of(lambda: client.infer(
            "mnist", [tensor("pixels", digits, "FP32")])),
        "wrong_shape": status_of(lambda: client.infer(
            "mnist", [tensor("image_input", digits[:, :700], "FP32")])),
        "wrong_datatype": status_of(lambda: client.infer(
            "mnist", [tensor("image_input", digits.astype(np.int32), "INT32")])),
        "model_not_ready_unknown": status_of(lambda: client.is_model_ready("nope")),
    }


def stream(client: triton.InferenceServerClient, inputs: dict) -> dict:
    """ModelStreamInfer: every row sent as a request of its own, plus one for a model that
    does not exist; each answer matched by its id."""
    got: queue.Queue = queue.Queue()
    client.start_stream(callback=lambda result, error: got.put((result, error)))
    digits = np.asarray(inputs["digits"], np.float32)
    for row in range(len(digits)):
        client.async_stream_infer("mnist", [tensor("image_input", digits[row:row + 1], "FP32")],
                                  request_id=f"row-{row}")
    client.async_stream_infer("nope", [tensor("image_input", digits[:1], "FP32")],
                              request_id="bad")
    answered, failed = {}, []
    for _ in range(len(digits) + 1):
        result, error = got.get(timeout=60)
        if error is not None:
            failed.append(f"{error}")
        else:
            answered[result.get_response().id] = result.as_numpy("prediction")[0].tolist()
    client.stop_stream()
    return {"answers": answered, "errors": failed}


def main() -> None:
    target, inputs_file = sys.argv[1:3]
    inputs = json.loads(Path(inputs_file).read_text())
    client = triton.InferenceServerClient(target)
    try:
        report = {"health": health(client), "answers": answers(client, inputs),
                  "errors": errors(client, inputs), "stream": stream(client, inputs)}
    finally:
        client.close()
    print(json.dumps(report))


if __name__ == "__main__":
    main()
