"""KServe's `InferenceGRPCClient`, unchanged, against a running tfserve (see __init__).

INPUTS.json: {"digits": [[784 floats], ...], "reviews": [text, ...]}. Prints what it got.
"""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path

import grpc
import numpy as np
from kserve import InferenceGRPCClient, InferInput, InferRequest


def infer_input(name: str, array: np.ndarray, datatype: str) -> InferInput:
    tensor = InferInput(name=name, shape=list(array.shape), datatype=datatype)
    tensor.set_data_from_numpy(array, binary_data=True)
    return tensor


async def report(target: str, inputs: dict) -> dict:
    digits = np.asarray(inputs["digits"], np.float32)
    reviews = np.array([r.encode() for r in inputs["reviews"]], dtype=np.object_)
    async with InferenceGRPCClient(target) as client:
        health = {"live": await client.is_server_live(),
                  "ready": await client.is_server_ready(),
                  "model_ready": await client.is_model_ready("mnist")}
        mnist = await client.infer(InferRequest(
            model_name="mnist", request_id="k1",
            infer_inputs=[infer_input("image_input", digits, "FP32")]))
        text = await client.infer(InferRequest(
            model_name="imdb_sentiment", parameters={"signature_name": "predict_text"},
            infer_inputs=[infer_input("text", reviews, "BYTES")]))
        try:
            await client.infer(InferRequest(
                model_name="nope", infer_inputs=[infer_input("image_input", digits, "FP32")]))
            unknown = "OK"
        except grpc.RpcError as err:
            unknown = err.code().name
    outputs = {o.name: o for o in mnist.outputs}
    labels = {o.name: o for o in text.outputs}["label"].as_numpy().ravel()
    return {"health": health, "id": mnist.id, "model_name": mnist.model_name,
            "mnist": outputs["prediction"].as_numpy().tolist(),
            "text_label": [x.decode() if isinstance(x, bytes) else x for x in labels],
            "unknown_model": unknown}


def main() -> None:
    target, inputs_file = sys.argv[1:3]
    inputs = json.loads(Path(inputs_file).read_text())
    print(json.dumps(asyncio.run(report(target, inputs))))


if __name__ == "__main__":
    main()
