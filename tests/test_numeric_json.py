"""The numeric fast paths (app.codecs.numeric_json) decide exactly as the general way does.

For every body it takes, decoding must give the very arrays (values and dtype) or the very
error that orjson + `rest.decode_request` give; every body it cannot prove regular must be
left to the general way (None)."""

from __future__ import annotations

import random

import numpy as np
import orjson
import pytest

from app.codecs import oip, rest
from app.codecs.numeric_json import Doubles, infer_payload, numeric_rows
from app.errors import InvalidInput
from app.models.signatures import SignatureInfo, TensorInfo

OUT = {"y": TensorInfo("y", "float32", (-1,))}
ROWS_OF_2 = SignatureInfo("s", {"x": TensorInfo("x", "float32", (-1, 2))}, OUT)
FLAT = SignatureInfo("s", {"x": TensorInfo("x", "float64", (-1,))}, OUT)
HALF = SignatureInfo("s", {"x": TensorInfo("x", "float16", (-1, 2))}, OUT)
INTS = SignatureInfo("s", {"x": TensorInfo("x", "int32", (-1, 2))}, OUT)
TWO = SignatureInfo("s", {"a": TensorInfo("a", "float32", (-1, 2)),
                          "b": TensorInfo("b", "float32", (-1, 2))}, OUT)
LIMIT = 4

TAKEN = [
    b'{"instances": [[1, 2], [3, 4]]}',
    b'{"instances": [[1.5, -2e-3], [0, -0.0]], "signature_name": "s"}',
    b'{"signature_name": null, "instances": [[1, 2]]}',
    b'{"instances": [1, 2.5, 3]}',
    b'{"instances": [[1, 2, 3]]}',  # the wrong width: the same shape error
    b'{"instances": [1, 2]}',  # the wrong rank: the same shape error
    b'{"instances": [[9007199254740991, 1]]}',  # 2**53 - 1: exact either way
    b'{"instances": [[65504, 1]]}',  # float16's largest
    b'{"instances": [[1, 2], [3, 4], [5, 6], [7, 8], [9, 10]]}',  # over the limit
]
LEFT = [
    b'{"instances": [[1, 2], [3]]}',  # ragged
    b'{"instances": [[1, [2]], [3, 4]]}',  # a nested array of one, counted as one value
    b'{"instances": [[[1], 2]]}',
    b'{"instances": [1, [2]]}',
    b'{"instances": [[1], 2]}',
    b'{"instances": [[1, 2]], "signature_name": "a[b"}',  # a bracket the count would miss
    b'{"instances": [[1, 2]], "signature_name": 3}',
    b'{"instances": [[1, true]]}',
    b'{"instances": [[1, null]]}',
    b'{"instances": [["1", 2]]}',
    b'{"instances": [{"x": [1, 2]}]}',
    b'{"instances": [[1, 2]], "instances": [[3, 4]]}',  # the last one wins in orjson
    b'{"instances": [[1, 2]], "extra": 1}',
    b'{"inputs": [[1, 2]]}',
    b'{"instances": []}',
    b'{"instances": [[]]}',
    b'{"instances": "12"}',
    b'{"instances": [[1e400, 0]]}',
    b'{"instances": [[1e39, 0]]}',  # past 2**53 (and float32): the general way words it
    b'{"instances": [[9007199254740993, 0]]}',  # past 2**53: could round differently
    b'{"instances": [[18446744073709551616, 0]]}',
    b'[[1, 2]]',
    b'{"instances": [[1, 2]',
    b'',
]


def general(body: bytes, signature: SignatureInfo):
    try:
        arrays, rows, columnar = rest.decode_request(orjson.loads(body), signature, LIMIT)
    except InvalidInput as err:
        return str(err)
    return {k: (v.dtype, v.tolist()) for k, v in arrays.items()}, rows, columnar


def fast(body: bytes, signature: SignatureInfo):
    numeric = numeric_rows(body)
    assert numeric is not None
    try:
        decoded = rest.numeric_rows_for(numeric, signature, LIMIT)
    except InvalidInput as err:
        return str(err)
    if decoded is None:  # handed back: the general way decides
        return general(body, signature)
    arrays, rows, columnar = decoded
    return {k: (v.dtype, v.tolist()) for k, v in arrays.items()}, rows, columnar


@pytest.mark.parametrize("signature", [ROWS_OF_2, FLAT, HALF, INTS, TWO],
                         ids=["rows", "flat", "float16", "int32", "two inputs"])
@pytest.mark.parametrize("body", TAKEN)
def test_what_it_takes_decodes_as_the_general_way(body, signature):
    assert fast(body, signature) == general(body, signature)


def test_the_signature_name_comes_through():
    assert numeric_rows(b'{"instances": [[1, 2]], "signature_name": "t"}').signature_name == "t"
    assert numeric_rows(b'{"instances": [[1, 2]]}').signature_name is None


@pytest.mark.parametrize("body", LEFT)
def test_what_it_cannot_prove_regular_goes_the_general_way(body):
    assert numeric_rows(body) is None


def test_random_rows_decode_as_the_general_way():
    chooser = random.Random(14)
    signature = SignatureInfo("s", {"x": TensorInfo("x", "float32", (-1, 7))}, OUT)
    for _ in range(200):
        rows = [[chooser.choice([chooser.uniform(-1e6, 1e6), chooser.randint(-10**6, 10**6),
                                 chooser.random() * 1e-30, 0])
                 for _ in range(7)] for _ in range(chooser.randint(1, LIMIT))]
        body = orjson.dumps({"instances": rows})
        assert fast(body, signature) == general(body, signature)
        assert np.array_equal(numeric_rows(body).values, np.asarray(rows, dtype=np.float64))


# the Open Inference Protocol's JSON ---------------------------------------------------------

V2_SIGNATURE = SignatureInfo("s", {"x": TensorInfo("x", "float32", (-1, 2)),
                                   "n": TensorInfo("n", "int32", (-1,))}, OUT)


def v2(*tensors: str, extra: str = "") -> bytes:
    return ('{"id": "r1", "inputs": [' + ", ".join(tensors) + "]" + extra + "}").encode()


X_FLAT = '{"name": "x", "datatype": "FP32", "shape": [2, 2], "data": [1, 2.5, 3, 4]}'
X_ROWS = '{"name": "x", "datatype": "FP32", "shape": [2, 2], "data": [[1, 2.5], [3, 4]]}'
N = '{"name": "n", "datatype": "INT32", "shape": [2], "data": [7, 8]}'
V2_TAKEN = [
    v2(X_FLAT, N),
    v2(X_ROWS, N),
    v2(N, X_ROWS, extra=', "outputs": [{"name": "y"}], "parameters": {"a": [1, [2]]}'),
    v2(X_FLAT.replace("[2, 2]", "[4, 1]"), N),  # the wrong shape: the same error
    v2(X_FLAT.replace("[2, 2]", "[3, 2]"), N),  # too few elements: the same error
    v2(X_FLAT.replace("FP32", "FP64"), N),  # the wrong datatype: the same error
    v2(X_FLAT),  # a missing input: the same error
]
V2_LEFT = [
    v2(X_FLAT.replace("[1, 2.5, 3, 4]", "[[1, 2.5], [3]]"), N),  # ragged
    v2(X_FLAT.replace("[1, 2.5, 3, 4]", "[[1, [2.5]], [3, 4]]"), N),  # nested deeper
    v2(X_FLAT.replace("[1, 2.5, 3, 4]", "[1, true, 3, 4]"), N),
    v2(X_FLAT.replace("[1, 2.5, 3, 4]", '[1, "2", 3, 4]'), N),
    v2(X_FLAT.replace("[1, 2.5, 3, 4]", "[]"), N),
    v2(X_FLAT, N).replace(b'"r1"', b'"r[1"'),
    v2(X_FLAT, N).replace(b'"id": "r1"', b'"id": "r1", "id": "r2"'),
    v2(X_FLAT.replace('"data"', '"data": [0, 0, 0, 0], "data"'), N),
    v2(X_FLAT.replace("[1, 2.5, 3, 4]", "[1, 2.5, 3, 1e400]"), N),
    b'[1]',
    b'{"inputs": [',
]


def v2_decode(payload: dict):
    request = oip.InferRequest(payload, memoryview(b""), "s")
    try:
        arrays, rows = oip.decode_inputs(request, V2_SIGNATURE, LIMIT)
    except InvalidInput as err:
        return str(err)
    return {k: (v.dtype, v.tolist()) for k, v in arrays.items()}, rows


@pytest.mark.parametrize("header", V2_TAKEN)
def test_v2_tensors_it_takes_decode_as_the_general_way(header):
    payload = infer_payload(header)
    assert payload is not None
    assert {k: v for k, v in payload.items() if k != "inputs"} == \
        {k: v for k, v in orjson.loads(header).items() if k != "inputs"}
    assert v2_decode(payload) == v2_decode(orjson.loads(header))


def test_v2_float_data_arrives_as_one_array():
    (x, n) = infer_payload(v2(X_ROWS, N))["inputs"]
    assert isinstance(x["data"], Doubles) and x["data"].values.shape == (2, 2)
    assert x["data"].largest == 4
    assert n["data"] == [7, 8]  # not a floating-point tensor: as orjson reads it


@pytest.mark.parametrize("header", V2_LEFT)
def test_v2_headers_it_cannot_prove_go_the_general_way(header):
    assert infer_payload(header) is None


def test_the_reused_parser_survives_every_refusal_and_keeps_earlier_results():
    """The thread's parser refuses to parse while a document of its last parse is alive,
    which would send every later request the general way without a word: after each body
    either form refuses, the next plain body must still be taken."""
    kept = numeric_rows(b'{"instances": [[1, 2]]}')
    for body in LEFT + V2_LEFT:
        numeric_rows(body)
        assert numeric_rows(b'{"instances": [[5, 6]]}') is not None, body
        infer_payload(body)
        assert infer_payload(v2(X_FLAT, N)) is not None, body
    assert kept.values.tolist() == [[1, 2]]  # its own copy, not the parser's buffers


def test_a_body_past_the_reused_parsers_size_is_parsed_too(monkeypatch):
    monkeypatch.setattr("app.codecs.numeric_json.REUSED_PARSER_BYTES", 16)
    assert numeric_rows(b'{"instances": [[1, 2], [3, 4]]}').values.tolist() == [[1, 2], [3, 4]]
    assert numeric_rows(b'{"instances": [[5, 6]]}').values.tolist() == [[5, 6]]


def test_the_vectorized_bracket_count_decides_as_bytes_count(monkeypatch):
    """Bodies past VECTOR_COUNT_BYTES count their `[` with numpy: the tables again, every body
    counted that way."""
    monkeypatch.setattr("app.codecs.numeric_json.VECTOR_COUNT_BYTES", 0)
    for body in LEFT:
        assert numeric_rows(body) is None, body
    for body in TAKEN:
        assert fast(body, ROWS_OF_2) == general(body, ROWS_OF_2), body
    for header in V2_LEFT:
        assert infer_payload(header) is None, header
    assert infer_payload(v2(X_FLAT, N)) is not None
