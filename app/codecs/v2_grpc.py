"""The Open Inference Protocol over gRPC: ModelInferRequest tensors to numpy and back.

An input comes either as typed `contents` (`fp32_contents`, `bytes_contents`, ...) or, for
every input at once, as `raw_input_contents` in the inputs' order: the binary form that
tritonclient sends by default, decoded as the REST binary extension is (app.codecs.v2_tensors).
Answers mirror the request: raw outputs (`raw_output_contents`) to a raw request, typed
contents otherwise, so both clients and hand-written requests read what they sent.

The messages come from tfserve's own descriptor pool (app.grpc_api.protos), so that neither
client's copy of them is imported here.
"""

from __future__ import annotations

import numpy as np

from app.codecs import v2_tensors
from app.codecs.rest import check_shape
from app.errors import InvalidInput
from app.grpc_api.protos import V2
from app.models.signatures import SignatureInfo, TensorInfo

Arrays = dict[str, np.ndarray]
# datatype -> the InferTensorContents field that carries it (FP16 travels only raw)
CONTENTS = {
    "BOOL": "bool_contents", "INT8": "int_contents", "INT16": "int_contents",
    "INT32": "int_contents", "INT64": "int64_contents", "UINT8": "uint_contents",
    "UINT16": "uint_contents", "UINT32": "uint_contents", "UINT64": "uint64_contents",
    "FP32": "fp32_contents", "FP64": "fp64_contents", "BYTES": "bytes_contents",
}


def signature_name(request, default: str) -> str:
    """`parameters.signature_name`, as on the REST v2 routes."""
    parameter = request.parameters.get("signature_name")
    if parameter is None:
        return default
    if parameter.WhichOneof("parameter_choice") != "string_param":
        raise InvalidInput("parameters.signature_name must be a string_param")
    return parameter.string_param


def decode_inputs(request, signature: SignatureInfo, max_instances: int,
                  max_image_pixels: int | None = None) -> tuple[Arrays, int]:
    """The request's tensors as arrays for `signature`, and the row count (axis 0)."""
    raw = request.raw_input_contents
    if raw and len(raw) != len(request.inputs):
        raise InvalidInput(f"raw_input_contents has {len(raw)} entries for "
                           f"{len(request.inputs)} inputs: give every input raw, or none")
    if not request.inputs:
        raise InvalidInput("the request has no inputs; signature "
                           f"{signature.name!r} takes {v2_tensors.describe_inputs(signature)}")
    arrays: Arrays = {}
    for position, tensor in enumerate(request.inputs):
        name = tensor.name
        spec = signature.inputs.get(name)
        if spec is None:
            raise InvalidInput(f"unknown input {name!r}; signature {signature.name!r} takes "
                               + v2_tensors.describe_inputs(signature))
        if name in arrays:
            raise InvalidInput(f"input {name!r} is given twice")
        datatype = v2_tensors.datatype_of(spec)
        if tensor.datatype != datatype:
            raise InvalidInput(f"input {name!r} has datatype {tensor.datatype!r}; the model "
                               f"expects {datatype}")
        shape = tuple(tensor.shape)
        if any(d < 0 for d in shape):
            raise InvalidInput(f"input {name!r}: shape {list(shape)} has a negative dimension")
        if raw:
            array = v2_tensors.from_binary(memoryview(raw[position]), shape, spec,
                                           max_image_pixels)
        else:
            array = _from_contents(tensor, shape, spec.dtype, datatype)
        check_shape(array, spec)
        arrays[name] = array
    return arrays, v2_tensors.batch_rows(arrays, signature, max_instances,
                                         v2_tensors.describe_inputs)


def _from_contents(tensor, shape: tuple[int, ...], dtype: str, datatype: str) -> np.ndarray:
    field = CONTENTS.get(datatype)
    if field is None:
        raise InvalidInput(f"input {tensor.name!r}: {datatype} has no typed contents; send it "
                           "as raw_input_contents")
    stray = [f.name for f, _ in tensor.contents.ListFields() if f.name != field]
    if stray:
        raise InvalidInput(f"input {tensor.name!r}: {datatype} travels in contents.{field}, "
                           f"not in {', '.join(stray)}")
    values = getattr(tensor.contents, field)
    if dtype == "string":
        flat = np.array(list(values), dtype=object)
    else:
        try:
            flat = np.array(values, dtype=dtype)
        except OverflowError:
            raise InvalidInput(f"input {tensor.name!r}: a value is out of range for "
                               f"{datatype}") from None
    return v2_tensors.reshaped(flat, shape, tensor.name)


def requested_outputs(request, signature: SignatureInfo) -> list[str]:
    """The outputs to answer, in order: those the request names, else all of them."""
    wanted = [output.name for output in request.outputs] or list(signature.outputs)
    for name in wanted:
        if name not in signature.outputs:
            raise InvalidInput(f"unknown output {name!r}; signature {signature.name!r} has "
                               f"{list(signature.outputs)}")
    return wanted


def encode_response(model: str, version: int, request, outputs: Arrays, wanted: list[str],
                    signature: SignatureInfo):
    """The ModelInferResponse of a ModelInferRequest."""
    raw = bool(request.raw_input_contents)
    response = V2.ModelInferResponse(model_name=model, model_version=str(version),
                                     id=request.id)
    for name in wanted:
        array = outputs[name]
        datatype = v2_tensors.datatype_of(signature.outputs[name])
        tensor = response.outputs.add(name=name, datatype=datatype, shape=array.shape)
        if raw:
            response.raw_output_contents.append(v2_tensors.to_binary(array))
        else:
            _fill_contents(tensor.contents, array, datatype, name)
    return response


def _fill_contents(contents, array: np.ndarray, datatype: str,
                   name: str) -> None:
    field = CONTENTS.get(datatype)
    if field is None:
        raise InvalidInput(f"output {name!r}: {datatype} has no typed contents; send the "
                           "inputs as raw_input_contents to get raw outputs")
    flat = array.reshape(-1)
    getattr(contents, field).extend(flat.tolist() if flat.dtype != object else list(flat))


def tensor_metadata(spec: TensorInfo):
    return V2.ModelMetadataResponse.TensorMetadata(
        name=spec.name, datatype=v2_tensors.datatype_of(spec), shape=v2_tensors.shape_of(spec))
