"""JSON requests whose numbers go straight into numpy: no Python float per value.

Parsed the general way (orjson to Python lists, then numpy), a request's numbers cost the
event loop more than anything else in it: a float object made, converted and freed per value
(docs/PROFILING.md). simdjson parses the body and hands a list of numbers over as one buffer
of doubles. Two request forms take this way:

- `numeric_rows()`: TF Serving's and tfdeploy's row format, `{"instances": [[x, ...], ...],
  "signature_name"?: "..."}`, what a dense model's clients send;
- `infer_payload()`: an Open Inference Protocol JSON request, whose FP16/FP32/FP64 tensors'
  "data" become float64 arrays (`Doubles`) in an otherwise ordinary payload.

Each takes only bodies whose structure it can prove: every key once in every object, the
numbers' lists flat, or rows of one length, and no array anywhere that it has not accounted
for (the body's `[` count must equal the arrays seen, so no list hides a nested one and no
string holds a bracket). Anything else (ragged or deeper nesting, booleans, nulls, strings
among numbers, invalid JSON, numbers past a double or integers past 2**53, whose rounding
to float32 could differ) returns None and goes the general way (orjson, app.codecs.rest), which
accepts it or words the error. What they do take, the general way would have read as the
same values: an integer becomes the double numpy makes of it for a float input.
"""

from __future__ import annotations

import threading
from typing import Any, NamedTuple

import numpy as np
import simdjson

# A parser keeps the buffers of the largest document it parsed (about 7x its size); a new one
# per request paid for allocating and faulting them in each time (16-row bodies: 274 vs 119 µs
# parsed). Bodies up to this size reuse their thread's parser, larger ones get their own.
REUSED_PARSER_BYTES = 1 << 20
_parsers = threading.local()
# `bytes.count` walks a byte at a time; numpy's comparison is vectorized, and past its fixed
# cost faster (8 rows of mnist, 34 KB: 9.5 vs 3.4 µs; 32 rows, 136 KB: 38 vs 8.8 µs)
VECTOR_COUNT_BYTES = 8 << 10
_BRACKET = ord("[")

_ROW_KEYS = {"instances", "signature_name"}
_FLOAT_DATATYPES = {"FP16", "FP32", "FP64"}
_EXACT = 2.0 ** 53  # integers below it are doubles exactly


class NumericRows(NamedTuple):
    signature_name: str | None
    values: np.ndarray  # float64, shape (rows,) or (rows, columns)
    largest: float  # the largest magnitude among them, for the input's range check


class Doubles(NamedTuple):
    """A tensor's "data" parsed straight into float64, and its largest magnitude."""

    values: np.ndarray  # flat, or rows x columns
    largest: float


class _Unsure(Exception):
    """The body is not provably of the form taken here."""


def _parse(body: bytes) -> Any:
    """The body's document. The reused parser raises (RuntimeError, read as unsure) should a
    document of its last parse still be alive: none outlives the functions below."""
    if len(body) > REUSED_PARSER_BYTES:
        return simdjson.Parser().parse(body)
    parser = getattr(_parsers, "parser", None)
    if parser is None:
        parser = _parsers.parser = simdjson.Parser()
    return parser.parse(body)


def _brackets(body: bytes) -> int:
    """How many `[` the body holds: what its arrays must account for."""
    if len(body) < VECTOR_COUNT_BYTES:
        return body.count(b"[")
    return int(np.count_nonzero(np.frombuffer(body, dtype=np.uint8) == _BRACKET))


def numeric_rows(body: bytes) -> NumericRows | None:
    """The row-format body's rows as float64, or None when it is not that form."""
    try:
        document = _parse(body)
        if not isinstance(document, simdjson.Object):
            return None
        keys = _keys(document)
        # not .get(): simdjson's raises and catches a KeyError for a missing key
        name = document["signature_name"] if "signature_name" in keys else None
        if not set(keys) <= _ROW_KEYS or "instances" not in keys or \
                (name is not None and not isinstance(name, str)):
            return None
        values, arrays, largest = _numbers(document["instances"])
        if _brackets(body) != arrays:
            return None
        return NumericRows(name, values, largest)
    except (_Unsure, ValueError, RuntimeError, TypeError, KeyError):
        return None


def infer_payload(header: bytes) -> dict | None:
    """The Open Inference Protocol JSON header as Python, each floating-point tensor's "data"
    `Doubles` instead of a list; None when unsure."""
    try:
        document = _parse(header)
        if not isinstance(document, simdjson.Object):
            return None
        counted = [0]
        payload = {key: _python(document[key], counted) for key in _keys(document)
                   if key != "inputs"}
        if "inputs" in document:
            inputs = document["inputs"]
            if not isinstance(inputs, simdjson.Array):
                return None
            counted[0] += 1
            payload["inputs"] = [_tensor(tensor, counted) for tensor in inputs]
        if _brackets(header) != counted[0]:
            return None
        return payload
    except (_Unsure, ValueError, RuntimeError, TypeError, KeyError):
        return None


def _tensor(tensor: Any, counted: list[int]) -> Any:
    if not isinstance(tensor, simdjson.Object):
        return _python(tensor, counted)
    keys = _keys(tensor)
    floats = "datatype" in keys and tensor["datatype"] in _FLOAT_DATATYPES  # not .get()
    fields = {}
    for key in keys:
        value = tensor[key]
        if key == "data" and floats and isinstance(value, simdjson.Array):
            values, arrays, largest = _numbers(value)
            fields[key] = Doubles(values, largest)
            counted[0] += arrays
        else:
            fields[key] = _python(value, counted)
    return fields


def _python(value: Any, counted: list[int]) -> Any:
    """A small JSON value as Python (orjson's types), its arrays counted."""
    if isinstance(value, simdjson.Object):
        return {key: _python(value[key], counted) for key in _keys(value)}
    if isinstance(value, simdjson.Array):
        counted[0] += 1
        return [_python(item, counted) for item in value]
    if isinstance(value, str) and "[" in value:
        raise _Unsure  # a bracket the count would take for an array
    return value


def _keys(document: simdjson.Object) -> list[str]:
    keys = list(document.keys())
    if len(keys) != len(set(keys)):
        raise _Unsure  # simdjson reads the first of a repeated key, orjson the last
    return keys


def _numbers(array: Any) -> tuple[np.ndarray, int, float]:
    """A non-empty list of numbers, or of equally long non-empty lists of numbers, as float64
    (flat or rows x columns), how many arrays it is made of, and its largest magnitude."""
    if not isinstance(array, simdjson.Array) or len(array) == 0:
        raise _Unsure
    rows = len(array)
    first = array[0]
    if isinstance(first, simdjson.Array):
        columns = len(first)
        if columns == 0 or any(not isinstance(row, simdjson.Array) or len(row) != columns
                               for row in array):
            raise _Unsure
        shape, arrays = (rows, columns), 1 + rows
    else:
        shape, arrays = (rows,), 1
    # raises on anything but numbers; rows nesting deeper still flatten, and the caller's
    # bracket count then finds the arrays not accounted for
    values = np.frombuffer(array.as_buffer(of_type="d"), dtype=np.float64)
    if values.size != rows * (shape[1] if len(shape) == 2 else 1):
        raise _Unsure
    largest = float(np.abs(values).max())
    if not largest < _EXACT:
        raise _Unsure
    return values.reshape(shape), arrays, largest
