"""Open Inference Protocol tensors as both transports carry them: datatypes, shapes, and the
binary form of a tensor (little-endian elements; BYTES as a 4-byte little-endian length then
the bytes). The REST binary extension (app.codecs.oip) and gRPC's raw contents
(app.codecs.v2_grpc) hold the same bytes, so they decode here.
"""

from __future__ import annotations

import math
import struct
from collections.abc import Callable

import numpy as np

from app.codecs.images import check_image_size
from app.errors import InvalidInput
from app.models.signatures import SignatureInfo, TensorInfo

Arrays = dict[str, np.ndarray]
# OIP datatype -> tfserve's dtype name (numpy's, "string" for tf.string)
DATATYPES = {
    "BOOL": "bool", "INT8": "int8", "INT16": "int16", "INT32": "int32", "INT64": "int64",
    "UINT8": "uint8", "UINT16": "uint16", "UINT32": "uint32", "UINT64": "uint64",
    "FP16": "float16", "FP32": "float32", "FP64": "float64", "BYTES": "string",
}
DTYPE_TO_DATATYPE = {dtype: datatype for datatype, dtype in DATATYPES.items()}
_LENGTH = struct.Struct("<I")


def datatype_of(spec: TensorInfo) -> str:
    """The OIP datatype of a tensor; TensorFlow dtypes outside the protocol keep their name."""
    return DTYPE_TO_DATATYPE.get(spec.dtype, spec.dtype.upper())


def shape_of(spec: TensorInfo) -> list[int]:
    return [-1] if spec.shape is None else list(spec.shape)


def tensor_metadata(spec: TensorInfo) -> dict:
    return {"name": spec.name, "datatype": datatype_of(spec), "shape": shape_of(spec)}


def shared_rows(arrays: Arrays) -> int:
    """The first (batch) dimension, which every input must have and share."""
    counts = {array.shape[0] if array.ndim else None for array in arrays.values()}
    if len(counts) != 1 or None in counts:
        rows = {name: array.shape[0] if array.ndim else None for name, array in arrays.items()}
        raise InvalidInput(f"inputs must share their first (batch) dimension: {rows}")
    return next(iter(counts))


def batch_rows(arrays: Arrays, signature: SignatureInfo, max_instances: int,
               takes: Callable[[SignatureInfo], str]) -> int:
    """The rows of a request's decoded inputs, once every input of `signature` is there and
    they share a first dimension within the limit; `takes` words the inputs for the error."""
    if len(arrays) != len(signature.inputs):  # every name in arrays is the signature's
        missing = sorted(set(signature.inputs) - set(arrays))
        raise InvalidInput(f"missing inputs {missing}; signature {signature.name!r} takes "
                           + takes(signature))
    rows = shared_rows(arrays)
    if rows == 0:
        raise InvalidInput("the batch is empty: send at least one row")
    if rows > max_instances:
        raise InvalidInput(f"{rows} rows in one request; the limit is {max_instances}")
    return rows


def describe_inputs(signature: SignatureInfo) -> str:
    return ", ".join(f"{k} ({datatype_of(v)} {shape_of(v)})" for k, v in signature.inputs.items())


def reshaped(flat: np.ndarray, shape: tuple[int, ...], name: str) -> np.ndarray:
    expected = math.prod(shape)
    if flat.size != expected:
        raise InvalidInput(f"input {name!r}: {flat.size} elements for shape {list(shape)}, "
                           f"which holds {expected}")
    return flat.reshape(shape)


def from_binary(chunk: memoryview, shape: tuple[int, ...], spec: TensorInfo,
                 max_image_pixels: int | None) -> np.ndarray:
    if spec.dtype == "string":
        elements = bytes_elements(chunk, math.prod(shape), spec.name)
        if max_image_pixels is not None:
            for element in elements:
                check_image_size(element, max_image_pixels, f"input {spec.name!r}")
        return reshaped(np.array(elements, dtype=object), shape, spec.name)
    dtype = np.dtype(spec.dtype).newbyteorder("<")
    if len(chunk) % dtype.itemsize:
        raise InvalidInput(f"input {spec.name!r}: {len(chunk)} bytes is not a whole number "
                           f"of {datatype_of(spec)} elements")
    flat = np.frombuffer(chunk, dtype=dtype)
    return reshaped(flat.astype(dtype.newbyteorder("="), copy=False), shape, spec.name)


def bytes_elements(chunk: memoryview, count: int, name: str) -> list[bytes]:
    """Length-prefixed BYTES elements; lengths that run past the buffer are refused."""
    elements: list[bytes] = []
    offset, end = 0, len(chunk)
    while offset < end:
        if len(elements) == count:
            raise InvalidInput(f"input {name!r}: more BYTES elements than its shape holds "
                               f"({count})")
        if offset + 4 > end:
            raise InvalidInput(f"input {name!r}: a BYTES element's 4-byte length is cut off")
        (length,) = _LENGTH.unpack_from(chunk, offset)
        offset += 4
        if offset + length > end:
            raise InvalidInput(f"input {name!r}: a BYTES element of {length} bytes runs past "
                               "the end of its binary data")
        elements.append(bytes(chunk[offset:offset + length]))
        offset += length
    return elements


def to_binary(array: np.ndarray) -> bytes:
    if array.dtype != object:
        return np.ascontiguousarray(array, dtype=array.dtype.newbyteorder("<")).tobytes()
    return b"".join(_LENGTH.pack(len(e)) + e for e in array.reshape(-1))
