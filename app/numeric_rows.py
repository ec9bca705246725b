"""The commonest JSON predict request, parsed straight into numpy: no Python float per value.

`{"instances": [[x, ...], ...], "signature_name"?: "..."}` with numbers only (one row per
instance, one input) is what a dense model's clients send. Parsed the general way (orjson to
Python lists, then numpy), its values cost the event loop more than anything else in a
request: a float object made, converted and freed per value (docs/PROFILING.md). simdjson
parses the body and hands the numbers over as one buffer of doubles.

`numeric_rows()` takes only bodies whose structure it can prove: a JSON object with
"instances" and at most a string "signature_name", each key once; instances a non-empty list
of numbers, or of non-empty lists of numbers all of one length, and no other array anywhere
in the body. Anything else (objects per instance, strings, booleans, nulls, ragged or deeper
nesting, invalid JSON, numbers past a double) returns None and goes the general way
(app.codecs), which accepts or words the error. What it does take, the general way would
have read as the same values: an integer becomes a double here, as numpy makes it when the
input is a float tensor; `codecs.numeric_rows_for()` leaves to the general way any value that
would round differently (integers past 2**53).
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
import simdjson

_KEYS = {"instances", "signature_name"}


class NumericRows(NamedTuple):
    signature_name: str | None
    values: np.ndarray  # float64, shape (rows,) or (rows, columns)


def numeric_rows(body: bytes) -> NumericRows | None:
    """The body's rows as float64, or None when it is not of the one shape taken here."""
    try:
        document = simdjson.Parser().parse(body)
    except (ValueError, RuntimeError, TypeError):  # invalid JSON, numbers out of range
        return None
    if not isinstance(document, simdjson.Object):
        return None
    keys = list(document.keys())
    if len(keys) != len(set(keys)) or not set(keys) <= _KEYS or "instances" not in keys:
        return None
    name = document.get("signature_name")
    instances = document["instances"]
    if (name is not None and not isinstance(name, str)) or \
            not isinstance(instances, simdjson.Array) or len(instances) == 0:
        return None
    shape = _regular_shape(instances, body)
    if shape is None:
        return None
    try:
        flat = instances.as_buffer(of_type="d")  # raises on anything but numbers
    except (TypeError, ValueError, RuntimeError):
        return None
    values = np.frombuffer(flat, dtype=np.float64)
    if values.size != int(np.prod(shape)):
        return None
    return NumericRows(name, values.reshape(shape))


def _regular_shape(instances: simdjson.Array, body: bytes) -> tuple[int, ...] | None:
    """(rows,) or (rows, columns) when `instances` is regular and the body holds no other
    array: its brackets are those of `instances` and its rows, so no row nests another."""
    rows = len(instances)
    first = instances[0]
    if not isinstance(first, simdjson.Array):
        return (rows,) if body.count(b"[") == 1 else None
    columns = len(first)
    if columns == 0 or body.count(b"[") != 1 + rows:
        return None
    for row in instances:
        if not isinstance(row, simdjson.Array) or len(row) != columns:
            return None
    return rows, columns
