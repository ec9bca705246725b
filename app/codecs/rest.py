"""JSON <-> tensors: TensorFlow Serving's REST request/response format, and tfdeploy's.

Request (one of):
  row format       {"signature_name"?: str, "instances": [instance, ...]}
                   an instance is an object {input_name: value} or, when the signature has a
                   single input, the bare value; every instance is one row of every input.
  columnar format  {"signature_name"?: str, "inputs": {input_name: value} | value}
                   each value holds all rows of that input (leading dimension = rows).
Values are (nested) JSON lists of numbers, booleans or strings, matching the input's dtype and
shape. Binary strings are written {"b64": "<standard base64>"}; plain JSON strings are UTF-8.

Response:
  tfdeploy         {"predictions": [{output_name: value, ...}, ...]}    outputs always named
  TF Serving row   {"predictions": [value, ...]} for a single output,
                   {"predictions": [{output_name: value, ...}, ...]} otherwise
  TF Serving cols  {"outputs": value} for a single output, {"outputs": {name: value}} otherwise
String outputs are UTF-8 strings, or {"b64": ...} when the output name ends in "_bytes".
Every violation raises `InvalidInput` with a message naming the input and what was expected;
an image file over the pixel limit raises `PayloadTooLarge`.
"""

from __future__ import annotations

import base64
import binascii
from typing import Any

import numpy as np
import orjson

from app.codecs.images import check_image_size
from app.codecs.numeric_json import NumericRows
from app.errors import InvalidInput
from app.models.signatures import SignatureInfo, TensorInfo

Arrays = dict[str, np.ndarray]


def parse_json(body: bytes) -> Any:
    if not body:
        raise InvalidInput("empty request body; expected a JSON object")
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError as err:
        raise InvalidInput(f"malformed JSON: {err}") from None


def dumps(content: Any) -> bytes:
    return orjson.dumps(content, option=orjson.OPT_SERIALIZE_NUMPY)


def requested_signature(payload: Any, default: str) -> str:
    """The body's `signature_name` wins over the route's."""
    name = payload.get("signature_name") if isinstance(payload, dict) else None
    if name is None:
        return default
    if not isinstance(name, str):
        raise InvalidInput("signature_name must be a string")
    return name


def decode_request(payload: Any, signature: SignatureInfo, max_instances: int,
                   max_image_pixels: int | None = None) -> tuple[Arrays, int, bool]:
    """Request JSON -> (arrays by input name, row count, whether it was columnar).

    Binary values that are image files larger than `max_image_pixels` are refused (413).
    """
    if not isinstance(payload, dict):
        raise InvalidInput('expected a JSON object with "instances" or "inputs"')
    has_rows, has_columns = "instances" in payload, "inputs" in payload
    if has_rows == has_columns:
        raise InvalidInput('the request must have exactly one of "instances" (row format) '
                           'or "inputs" (columnar format)')
    unknown = set(payload) - {"instances", "inputs", "signature_name"}
    if unknown:
        raise InvalidInput(f"unknown request keys {sorted(unknown)}; expected "
                           '"instances" or "inputs", and optionally "signature_name"')
    if has_rows:
        columns = _rows_to_columns(payload["instances"], signature)
    else:
        columns = _named_columns(payload["inputs"], signature)
    arrays = {name: to_array(value, signature.inputs[name], max_image_pixels)
              for name, value in columns.items()}
    rows = _common_rows(arrays, signature)
    if rows == 0:
        raise InvalidInput("no instances: send at least one")
    if rows > max_instances:
        raise InvalidInput(f"{rows} instances in one request; the limit is {max_instances}")
    return arrays, rows, has_columns


def _rows_to_columns(instances: Any, signature: SignatureInfo) -> dict[str, list]:
    if not isinstance(instances, list):
        raise InvalidInput('"instances" must be a list, one entry per instance')
    if not instances:
        raise InvalidInput('"instances" is empty: send at least one instance')
    names = list(signature.inputs)
    if all(isinstance(i, dict) and not _is_b64(i) for i in instances):
        columns: dict[str, list] = {name: [] for name in names}
        for position, instance in enumerate(instances):
            _check_names(instance.keys(), signature, f"instance {position}")
            for name in names:
                columns[name].append(instance[name])
        return columns
    if len(names) != 1:
        raise InvalidInput(f"signature {signature.name!r} has inputs {names}: each instance "
                           "must be an object keyed by input name")
    return {names[0]: instances}


def _named_columns(inputs: Any, signature: SignatureInfo) -> dict[str, Any]:
    names = list(signature.inputs)
    if isinstance(inputs, dict) and not _is_b64(inputs):
        _check_names(inputs.keys(), signature, '"inputs"')
        return dict(inputs)
    if len(names) != 1:
        raise InvalidInput(f'signature {signature.name!r} has inputs {names}: "inputs" must '
                           "be an object keyed by input name")
    return {names[0]: inputs}


def _check_names(given, signature: SignatureInfo, where: str) -> None:
    expected = set(signature.inputs)
    given = set(given)
    if given != expected:
        parts = []
        if expected - given:
            parts.append(f"missing {sorted(expected - given)}")
        if given - expected:
            parts.append(f"unknown {sorted(given - expected)}")
        raise InvalidInput(f"{where}: {', '.join(parts)}; signature {signature.name!r} takes "
                           + ", ".join(f"{k} ({v.describe()})"
                                       for k, v in signature.inputs.items()))


def _common_rows(arrays: Arrays, signature: SignatureInfo) -> int:
    counts = {name: array.shape[0] if array.ndim else None for name, array in arrays.items()}
    if None in counts.values() or len(set(counts.values())) != 1:
        raise InvalidInput(f"inputs disagree on the number of rows: {counts}")
    return next(iter(counts.values()))


def _is_b64(value: Any) -> bool:
    return isinstance(value, dict) and len(value) == 1 and "b64" in value


_INT_KINDS = "iu"


def to_array(value: Any, spec: TensorInfo, max_image_pixels: int | None = None) -> np.ndarray:
    """A JSON value holding all rows of one input -> a numpy array checked against `spec`."""
    if spec.dtype == "string":
        array = _string_array(value, spec, max_image_pixels)
    else:
        array = numeric_array(value, spec)
    check_shape(array, spec)
    return array


def numeric_array(value: Any, spec: TensorInfo) -> np.ndarray:
    try:
        array = np.asarray(value)
    except (ValueError, TypeError):
        raise InvalidInput(f"input {spec.name!r}: ragged or mixed nested lists; expected a "
                           f"regular {spec.describe()} array") from None
    kind = array.dtype.kind
    if kind not in "biuf":
        raise InvalidInput(f"input {spec.name!r} expects {spec.dtype} numbers ({spec.describe()}),"
                           f" got {_sample(value)}")
    target = np.dtype(spec.dtype)
    if target.kind in _INT_KINDS:
        if kind == "f" and not np.all(np.mod(array, 1) == 0):
            raise InvalidInput(f"input {spec.name!r} expects integers ({spec.dtype})")
        if kind == "f" and target.itemsize == 8 and array.size and \
                np.abs(array).max() >= 2 ** 53:
            array, kind = _exact_64bit(value, array, spec), target.kind
        info = np.iinfo(target)
        if array.size and (array.min() < info.min or array.max() > info.max):
            raise InvalidInput(f"input {spec.name!r}: values out of {spec.dtype} range "
                               f"[{info.min}, {info.max}]")
    elif target.kind == "f" and array.size:
        largest = np.abs(array).max()  # one pass: NaN and infinities surface here too
        if not np.isfinite(largest):
            raise InvalidInput(f"input {spec.name!r}: values must be finite numbers")
        if largest > np.finfo(target).max:
            raise InvalidInput(f"input {spec.name!r}: values out of {spec.dtype} range")
    return array.astype(target, copy=False)


def numeric_rows_for(numeric: NumericRows, signature: SignatureInfo,
                     max_instances: int) -> tuple[Arrays, int, bool] | None:
    """`decode_request()`'s answer for rows that app.codecs.numeric_json parsed as doubles, or None
    when the general way must decide: a signature of several inputs or of a non-float one,
    too many rows, or values out of the input's range (its error is worded there).
    numeric_json already left finite values below 2**53 only, which round as numpy's would."""
    if len(signature.inputs) != 1:
        return None
    (spec,) = signature.inputs.values()
    values = numeric.values
    rows = len(values)
    if rows > max_instances:
        return None
    array = doubles_as(values, numeric.largest, spec)
    if array is None:
        return None
    check_shape(array, spec)
    return {spec.name: array}, rows, False


def doubles_as(values: np.ndarray, largest: float, spec: TensorInfo) -> np.ndarray | None:
    """float64 `values` from app.codecs.numeric_json (finite, below 2**53, `largest` the largest
    magnitude) as `spec`'s floating-point type, or None when the general way must decide:
    not a floating-point input, or values out of its range."""
    if spec.dtype == "string":
        return None
    target = np.dtype(spec.dtype)
    if target.kind != "f" or largest > float(np.finfo(target).max):
        return None
    return values.astype(target)


def _exact_64bit(value: Any, approximate: np.ndarray, spec: TensorInfo) -> np.ndarray:
    """JSON integers past 2**53 (float's precision) parse exactly only straight into a
    64-bit integer type; values that do not survive that are out of range."""
    try:
        with np.errstate(invalid="ignore"):
            exact = np.array(value, dtype=spec.dtype)
    except (OverflowError, ValueError, TypeError):
        exact = None
    if exact is None or not np.allclose(exact.astype(np.float64), approximate, rtol=1e-12,
                                        atol=0):
        raise InvalidInput(f"input {spec.name!r}: values out of {spec.dtype} range")
    return exact


def _string_array(value: Any, spec: TensorInfo, max_image_pixels: int | None) -> np.ndarray:
    def convert(item: Any):
        if isinstance(item, list):
            return [convert(x) for x in item]
        if isinstance(item, str):
            return item.encode("utf-8")
        if _is_b64(item):
            try:
                data = base64.b64decode(item["b64"], validate=True)
            except (binascii.Error, ValueError, TypeError):
                raise InvalidInput(f"input {spec.name!r}: invalid base64 in "
                                   '{"b64": ...}; use standard base64') from None
            if max_image_pixels is not None:
                check_image_size(data, max_image_pixels, f"input {spec.name!r}")
            return data
        raise InvalidInput(f"input {spec.name!r} expects strings or {{\"b64\": ...}} objects, "
                           f"got {_sample(item)}")

    converted = convert(value)
    try:
        array = np.array(converted, dtype=object)
    except ValueError:
        raise InvalidInput(f"input {spec.name!r}: ragged nested lists") from None
    if array.dtype != object or any(isinstance(x, list) for x in array.flat):
        raise InvalidInput(f"input {spec.name!r}: ragged nested lists")
    return array


def check_shape(array: np.ndarray, spec: TensorInfo) -> None:
    if spec.shape is None:
        return
    expected = spec.shape
    actual = array.shape
    if len(actual) != len(expected) or any(
            e >= 0 and e != a for e, a in zip(expected[1:], actual[1:], strict=False)):
        want = "[rows" + "".join(f", {d if d >= 0 else '?'}" for d in expected[1:]) + "]"
        raise InvalidInput(f"input {spec.name!r}: got shape {list(actual)}, expected {want} "
                           f"({spec.describe()})")


def _sample(value: Any) -> str:
    try:
        text = orjson.dumps(value, default=str).decode()
    except TypeError:  # integers past 64 bits
        text = str(value)
    return text if len(text) <= 40 else text[:37] + "..."


# responses --------------------------------------------------------------------------------


def _jsonable(name: str, array: np.ndarray):
    """numpy output -> something orjson writes (it writes numeric arrays natively)."""
    if array.dtype != object:
        return array
    if name.endswith("_bytes"):
        return _map_nested(array.tolist(), lambda b: {"b64": base64.b64encode(b).decode()})
    return _map_nested(array.tolist(), lambda b: b.decode("utf-8", errors="replace"))


def _map_nested(value, fn):
    if isinstance(value, list):
        return [_map_nested(v, fn) for v in value]
    return fn(value)


def encode_rows(outputs: Arrays, rows: int, named: bool) -> list:
    """Row-format predictions; `named=False` leaves a single output unnamed (TF Serving)."""
    values = {name: _jsonable(name, array) for name, array in outputs.items()}
    if not named and len(values) == 1:
        (only,) = values.values()
        return [only[i] for i in range(rows)]
    return [{name: v[i] for name, v in values.items()} for i in range(rows)]


def encode_columns(outputs: Arrays) -> Any:
    values = {name: _jsonable(name, array) for name, array in outputs.items()}
    if len(values) == 1:
        return next(iter(values.values()))
    return values
