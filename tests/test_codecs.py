"""The wire format, table-driven (app/rest.py's docstring is the spec)."""

from __future__ import annotations

import numpy as np
import pytest

from app.codecs import rest
from app.errors import InvalidInput
from app.models.signatures import SignatureInfo, TensorInfo

ONE_INPUT = SignatureInfo("s", {"x": TensorInfo("x", "float32", (-1, 2))},
                          {"y": TensorInfo("y", "float32", (-1,))})
TWO_INPUTS = SignatureInfo("t", {"a": TensorInfo("a", "int32", (-1,)),
                                 "b": TensorInfo("b", "string", (-1,))},
                           {"y": TensorInfo("y", "float32", (-1,))})


@pytest.mark.parametrize("payload,signature,expected,columnar", [
    ({"instances": [[1, 2], [3, 4]]}, ONE_INPUT, {"x": [[1, 2], [3, 4]]}, False),
    ({"instances": [{"x": [1, 2]}]}, ONE_INPUT, {"x": [[1, 2]]}, False),
    ({"inputs": [[1, 2]]}, ONE_INPUT, {"x": [[1, 2]]}, True),
    ({"inputs": {"x": [[1, 2]]}}, ONE_INPUT, {"x": [[1, 2]]}, True),
    ({"instances": [{"a": 1, "b": "hé"}, {"a": 2, "b": {"b64": "AAE="}}]}, TWO_INPUTS,
     {"a": [1, 2], "b": [b"h\xc3\xa9", b"\x00\x01"]}, False),
    ({"inputs": {"a": [7], "b": ["z"]}, "signature_name": "t"}, TWO_INPUTS,
     {"a": [7], "b": [b"z"]}, True),
])
def test_requests_decode(payload, signature, expected, columnar):
    arrays, rows, was_columnar = rest.decode_request(payload, signature, max_instances=10)
    assert was_columnar is columnar
    assert rows == len(next(iter(expected.values())))
    for name, values in expected.items():
        assert arrays[name].tolist() == values
        assert arrays[name].dtype == (object if signature.inputs[name].dtype == "string"
                                      else np.dtype(signature.inputs[name].dtype))


@pytest.mark.parametrize("payload,signature,fragment", [
    ([1, 2], ONE_INPUT, "JSON object"),
    ({"instances": [[1, 2]], "inputs": [[1, 2]]}, ONE_INPUT, "exactly one of"),
    ({"instances": [[1, 2]], "extra": 1}, ONE_INPUT, "unknown request keys"),
    ({"instances": {"x": 1}}, ONE_INPUT, "must be a list"),
    ({"instances": []}, ONE_INPUT, "empty"),
    ({"instances": [[1, 2, 3]]}, ONE_INPUT, "expected [rows, 2]"),
    ({"instances": [1, 2]}, ONE_INPUT, "got shape [2]"),
    ({"instances": [[1, 2], [3]]}, ONE_INPUT, "ragged"),
    ({"instances": [["a", "b"]]}, ONE_INPUT, "expects float32"),
    ({"instances": [[1e39, 0]]}, ONE_INPUT, "out of float32 range"),
    ({"instances": [{"a": 1}]}, TWO_INPUTS, "missing ['b']"),
    ({"instances": [{"a": 1, "b": "x", "c": 2}]}, TWO_INPUTS, "unknown ['c']"),
    ({"instances": [1, 2]}, TWO_INPUTS, "must be an object keyed by input name"),
    ({"inputs": {"a": [1, 2], "b": ["x"]}}, TWO_INPUTS, "disagree on the number of rows"),
    ({"inputs": {"a": [1.5], "b": ["x"]}}, TWO_INPUTS, "expects integers"),
    ({"inputs": {"a": [2**31], "b": ["x"]}}, TWO_INPUTS, "out of int32 range"),
    ({"inputs": {"a": [1], "b": [{"b64": "***"}]}}, TWO_INPUTS, "invalid base64"),
    ({"inputs": {"a": [1], "b": [3]}}, TWO_INPUTS, "expects strings"),
    ({"instances": [[0, 0]] * 11}, ONE_INPUT, "limit is 10"),
])
def test_bad_requests_say_what_was_expected(payload, signature, fragment):
    with pytest.raises(InvalidInput) as error:
        rest.decode_request(payload, signature, max_instances=10)
    assert fragment in error.value.message


def test_malformed_and_non_finite_json_is_refused():
    for body in (b"", b"{", b'{"instances": [NaN]}', b'{"instances": [Infinity]}'):
        with pytest.raises(InvalidInput):
            rest.parse_json(body)


def test_responses_encode_in_both_formats():
    outputs = {"scores": np.array([[0.5, 0.25], [1.0, 0.0]], np.float32),
               "classes": np.array([[b"cat", b"dog"], [b"a", b"b"]], dtype=object),
               "image_bytes": np.array([b"\x00"], dtype=object)[[0, 0]]}
    rows = rest.encode_rows(outputs, 2, named=True)
    assert rest.dumps(rows) == (b'[{"scores":[0.5,0.25],"classes":["cat","dog"],'
                                  b'"image_bytes":{"b64":"AA=="}},{"scores":[1.0,0.0],'
                                  b'"classes":["a","b"],"image_bytes":{"b64":"AA=="}}]')
    single = {"y": np.array([1.5, 2.5], np.float32)}
    assert rest.dumps(rest.encode_rows(single, 2, named=False)) == b"[1.5,2.5]"
    assert rest.dumps(rest.encode_rows(single, 2, named=True)) == b'[{"y":1.5},{"y":2.5}]'
    assert rest.dumps(rest.encode_columns(single)) == b"[1.5,2.5]"
    assert rest.dumps(rest.encode_columns(outputs))[:30] == b'{"scores":[[0.5,0.25],[1.0,0.0'
