"""Open Inference Protocol (KServe v2) tensors <-> numpy, JSON and binary.

Request  {"id"?, "parameters"?, "inputs": [{"name", "shape", "datatype", "parameters"?,
          "data"?}], "outputs"?: [{"name", "parameters"?}]}
Response {"model_name", "model_version", "id"?, "outputs": [{"name", "shape", "datatype",
          "data" | "parameters": {"binary_data_size"}}]}

`data` is nested or flat, in row-major order; its element count must match `shape`. With the
binary tensor data extension (Triton's, which `tritonclient` uses by default) the body starts
with `Inference-Header-Content-Length` bytes of JSON and goes on with the inputs that declare
`parameters.binary_data_size`, in their order; BYTES elements are a 4-byte little-endian length
then the bytes. Outputs are sent binary when the output asks (`parameters.binary_data`) or
the request does (`parameters.binary_data_output`).

Every violation raises `InvalidInput` naming the tensor and what was expected.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, NamedTuple

import numpy as np

from app.codecs import numeric_json, rest, v2_tensors
from app.errors import InvalidInput
from app.models.signatures import SignatureInfo, TensorInfo

Arrays = dict[str, np.ndarray]
HEADER_LENGTH = "inference-header-content-length"


def example_request(signature: SignatureInfo, max_instances: int = 1024) -> dict | None:
    """The export's example as a v2 JSON request; None when it holds bytes that are not
    text (an image file goes binary, which a JSON example cannot show)."""
    arrays, _, _ = rest.decode_request(signature.request_example(), signature, max_instances)
    inputs = []
    for name, array in arrays.items():
        try:
            data = _to_json(array, name)
        except InvalidInput:
            return None
        inputs.append({"name": name, "shape": list(array.shape),
                       "datatype": v2_tensors.datatype_of(signature.inputs[name]),
                       "data": data.tolist() if isinstance(data, np.ndarray) else data})
    request: dict[str, Any] = {"inputs": inputs}
    if signature.name != "serving_default":
        request["parameters"] = {"signature_name": signature.name}
    return request


# requests -----------------------------------------------------------------------------------


def split_body(body: bytes, header_length: str | None) -> tuple[bytes, memoryview]:
    """(JSON header, binary rest) of a request body."""
    if header_length is None:
        return body, memoryview(b"")
    try:
        length = int(header_length)
    except ValueError:
        raise InvalidInput(f"Inference-Header-Content-Length must be an integer, got "
                           f"{header_length[:40]!r}") from None
    if not 0 < length <= len(body):
        raise InvalidInput(f"Inference-Header-Content-Length is {length} but the body has "
                           f"{len(body)} bytes")
    view = memoryview(body)
    return bytes(view[:length]), view[length:]


class RequestedOutput(NamedTuple):
    name: str
    binary: bool


@dataclass(frozen=True)
class InferRequest:
    """A parsed request, before the signature it names has been looked up."""

    payload: dict
    binary: memoryview
    signature_name: str

    @property
    def id(self) -> str | None:
        return self.payload.get("id")

    def parameters(self) -> dict:
        return self.payload.get("parameters") or {}


def parse_request(header: bytes, binary: memoryview, default_signature: str) -> InferRequest:
    # floating-point tensors' "data" straight to numpy when provably plain numbers
    payload = numeric_json.infer_payload(header)
    if payload is None:
        payload = rest.parse_json(header)
    if not isinstance(payload, dict):
        raise InvalidInput('expected a JSON object with "inputs"')
    # other keys are left alone: KServe's client adds "model_name", for one
    if "id" in payload and not isinstance(payload["id"], str):
        raise InvalidInput('"id" must be a string')
    parameters = _parameters(payload, "the request")
    if not isinstance(payload.get("inputs"), list) or not payload["inputs"]:
        raise InvalidInput('"inputs" must be a non-empty list of tensors')
    signature = parameters.get("signature_name", default_signature)
    if not isinstance(signature, str):
        raise InvalidInput('parameters.signature_name must be a string')
    return InferRequest(payload, binary, signature)


def _parameters(holder: dict, where: str, name: str | None = None) -> dict:
    """`holder`'s parameters; `where` (and the tensor's `name`) for the error only."""
    parameters = holder.get("parameters") or {}
    if not isinstance(parameters, dict):
        where = where if name is None else f"{where} {name!r}"
        raise InvalidInput(f'{where}: "parameters" must be an object')
    return parameters


def decode_inputs(request: InferRequest, signature: SignatureInfo, max_instances: int,
                  max_image_pixels: int | None = None) -> tuple[Arrays, int]:
    """The request's tensors as arrays for `signature`, and the row count (axis 0)."""
    arrays: Arrays = {}
    offset = 0
    for position, tensor in enumerate(request.payload["inputs"]):
        name, spec = _input_spec(tensor, position, signature)
        if name in arrays:
            raise InvalidInput(f"input {name!r} is given twice")
        shape = _shape(tensor, name)
        size = _parameters(tensor, "input", name).get("binary_data_size")
        if size is None:
            if "data" not in tensor:
                raise InvalidInput(f"input {name!r} has no \"data\" and no binary_data_size")
            array = _from_json(tensor["data"], shape, spec)
        else:
            if "data" in tensor:
                raise InvalidInput(f"input {name!r} has both \"data\" and binary_data_size")
            if not isinstance(size, int) or isinstance(size, bool) or size < 0:
                raise InvalidInput(f"input {name!r}: binary_data_size must be a "
                                   "non-negative integer")
            if offset + size > len(request.binary):
                raise InvalidInput(f"input {name!r}: binary_data_size {size} runs past the "
                                   f"{len(request.binary)} binary bytes of the body")
            array = v2_tensors.from_binary(request.binary[offset:offset + size], shape, spec,
                                 max_image_pixels)
            offset += size
        rest.check_shape(array, spec)
        arrays[name] = array
    if offset != len(request.binary):
        raise InvalidInput(f"the body has {len(request.binary)} binary bytes but the inputs' "
                           f"binary_data_size add up to {offset}")
    return arrays, v2_tensors.batch_rows(arrays, signature, max_instances,
                                         v2_tensors.describe_inputs)


def _input_spec(tensor: Any, position: int, signature: SignatureInfo) -> tuple[str, TensorInfo]:
    if not isinstance(tensor, dict) or not isinstance(tensor.get("name"), str):
        raise InvalidInput(f"inputs[{position}] must be an object with a \"name\"")
    name = tensor["name"]
    spec = signature.inputs.get(name)
    if spec is None:
        raise InvalidInput(f"unknown input {name!r}; signature {signature.name!r} takes "
                           + v2_tensors.describe_inputs(signature))
    datatype = tensor.get("datatype")
    if datatype != v2_tensors.datatype_of(spec):
        raise InvalidInput(f"input {name!r} has datatype {datatype!r}; the model expects "
                           f"{v2_tensors.datatype_of(spec)}")
    return name, spec


def _shape(tensor: dict, name: str) -> tuple[int, ...]:
    shape = tensor.get("shape")
    if not isinstance(shape, list) or not all(
            isinstance(d, int) and not isinstance(d, bool) and d >= 0 for d in shape):
        raise InvalidInput(f"input {name!r}: \"shape\" must be a list of non-negative "
                           "integers")
    return tuple(shape)


def _from_json(data: Any, shape: tuple[int, ...], spec: TensorInfo) -> np.ndarray:
    if isinstance(data, numeric_json.Doubles):  # straight to numpy; range-checked there
        array = rest.doubles_as(data.values, data.largest, spec)
        flat = (rest.numeric_array(data.values, spec) if array is None else array).reshape(-1)
    elif spec.dtype == "string":
        flat = np.array(_flatten_strings(data, spec.name), dtype=object)
    else:
        flat = rest.numeric_array(data, spec).reshape(-1)
    return v2_tensors.reshaped(flat, shape, spec.name)


def _flatten_strings(data: Any, name: str) -> list[bytes]:
    if isinstance(data, str):
        return [data.encode("utf-8")]
    if isinstance(data, list):
        return [item for element in data for item in _flatten_strings(element, name)]
    raise InvalidInput(f"input {name!r} (BYTES) takes strings in JSON, got "
                       f"{type(data).__name__}; send binary data with the binary extension")


def requested_outputs(request: InferRequest, signature: SignatureInfo) -> list[RequestedOutput]:
    """The outputs to answer, in order, and whether each goes binary."""
    default_binary = request.parameters().get("binary_data_output", False)
    if not isinstance(default_binary, bool):
        raise InvalidInput("parameters.binary_data_output must be true or false")
    asked = request.payload.get("outputs")
    if asked is None:
        return [RequestedOutput(name, default_binary) for name in signature.outputs]
    if not isinstance(asked, list):
        raise InvalidInput('"outputs" must be a list of {"name": ...} objects')
    chosen = []
    for position, output in enumerate(asked):
        if not isinstance(output, dict) or not isinstance(output.get("name"), str):
            raise InvalidInput(f"outputs[{position}] must be an object with a \"name\"")
        name = output["name"]
        if name not in signature.outputs:
            raise InvalidInput(f"unknown output {name!r}; signature {signature.name!r} has "
                               f"{list(signature.outputs)}")
        parameters = _parameters(output, "output", name)
        if parameters.get("classification"):
            raise InvalidInput(f"output {name!r}: the classification extension is not "
                               "supported; the model's own outputs carry labels")
        binary = parameters.get("binary_data", default_binary)
        if not isinstance(binary, bool):
            raise InvalidInput(f"output {name!r}: binary_data must be true or false")
        chosen.append(RequestedOutput(name, binary))
    return chosen


# responses ----------------------------------------------------------------------------------


def encode_response(model: str, version: int, request_id: str | None,
                    outputs: Arrays, wanted: list[RequestedOutput],
                    signature: SignatureInfo) -> tuple[bytes, int | None]:
    """(body, JSON header length or None when the body is all JSON)."""
    tensors, chunks = [], []
    for output in wanted:
        array = outputs[output.name]
        spec = signature.outputs[output.name]
        tensor = {"name": output.name, "datatype": v2_tensors.datatype_of(spec),
                  "shape": list(array.shape)}
        if output.binary:
            chunk = v2_tensors.to_binary(array)
            tensor["parameters"] = {"binary_data_size": len(chunk)}
            chunks.append(chunk)
        else:
            tensor["data"] = _to_json(array, output.name)
        tensors.append(tensor)
    answer: dict[str, Any] = {"model_name": model, "model_version": str(version)}
    if request_id is not None:
        answer["id"] = request_id
    answer["outputs"] = tensors
    header = rest.dumps(answer)
    if not chunks:
        return header, None
    return b"".join([header, *chunks]), len(header)


def _to_json(array: np.ndarray, name: str) -> Any:
    if array.dtype != object:
        return np.ascontiguousarray(array).reshape(-1)
    try:
        return [element.decode("utf-8") for element in array.reshape(-1)]
    except UnicodeDecodeError:
        raise InvalidInput(f"output {name!r} holds bytes that are not UTF-8 text: ask for it "
                           'with "parameters": {"binary_data": true}') from None


