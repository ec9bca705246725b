"""TensorFlow Serving's gRPC tensors: where a TensorProto becomes numpy, and numpy a TensorProto.

TensorFlow's own converters do the reading and writing (`tf.make_ndarray` takes
`tensor_content` as one buffer or the typed `*_val` fields, a lone value broadcast as TensorFlow
does; `tf.make_tensor_proto` writes numeric outputs as `tensor_content`), so a tensor that TF
Serving reads is read the same here. The checks are the signature's, as on the REST routes:
known names, every input given, the dtype the signature declares (TF Serving refuses a
float64 tensor for a float32 input too; the message names both), the non-batch dimensions,
a shared first dimension, the row limit, and the pixel limit of image bytes.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

import numpy as np
import tensorflow as tf
from tensorflow.core.framework import tensor_pb2

from app.codecs import rest, v2_tensors
from app.codecs.images import check_image_size
from app.errors import InvalidInput
from app.models.signatures import SignatureInfo

Arrays = dict[str, np.ndarray]


def dtype_name(proto: tensor_pb2.TensorProto) -> str:
    """The tensor's dtype as tfserve names it (numpy's names, "string" for tf.string)."""
    try:
        return tf.dtypes.as_dtype(proto.dtype).name
    except TypeError:
        raise InvalidInput(f"unknown TensorProto dtype {proto.dtype}") from None


def to_array(proto: tensor_pb2.TensorProto, name: str) -> np.ndarray:
    try:
        array = tf.make_ndarray(proto)
    except (TypeError, ValueError) as err:
        raise InvalidInput(f"input {name!r}: not a readable TensorProto: {err}") from None
    return array


def decode_inputs(inputs: Mapping[str, tensor_pb2.TensorProto], signature: SignatureInfo,
                  max_instances: int, max_image_pixels: int | None = None
                  ) -> tuple[Arrays, int]:
    """The request's tensors as arrays for `signature`, and the row count (axis 0)."""
    if not inputs:
        raise InvalidInput("the request has no inputs; signature "
                           f"{signature.name!r} takes {describe(signature)}")
    arrays: Arrays = {}
    for name, proto in inputs.items():
        spec = signature.inputs.get(name)
        if spec is None:
            raise InvalidInput(f"unknown input {name!r}; signature {signature.name!r} takes "
                               + describe(signature))
        given = dtype_name(proto)
        if given != spec.dtype:
            raise InvalidInput(f"input {name!r} is {given}; the model expects {spec.dtype} "
                               f"({spec.describe()})")
        array = to_array(proto, name)
        if array.ndim == 0:
            raise InvalidInput(f"input {name!r} is a scalar; send a batch: shape [rows, ...]")
        if spec.dtype == "string" and max_image_pixels is not None:
            for element in array.reshape(-1):
                check_image_size(element, max_image_pixels, f"input {name!r}")
        rest.check_shape(array, spec)
        arrays[name] = array
    return arrays, v2_tensors.batch_rows(arrays, signature, max_instances, describe)


def describe(signature: SignatureInfo) -> str:
    return ", ".join(f"{k} ({v.describe()})" for k, v in signature.inputs.items())


def requested_outputs(output_filter: Iterable[str], signature: SignatureInfo) -> list[str]:
    """`output_filter`'s outputs (all of them when it is empty), each known to the signature."""
    wanted = list(output_filter) or list(signature.outputs)
    for name in wanted:
        if name not in signature.outputs:
            raise InvalidInput(f"output_filter names {name!r}, which signature "
                               f"{signature.name!r} does not have; its outputs: "
                               f"{list(signature.outputs)}")
    return wanted


def to_proto(array: np.ndarray) -> tensor_pb2.TensorProto:
    """One output as TF Serving answers it (numeric arrays as `tensor_content`)."""
    return tf.make_tensor_proto(array)
