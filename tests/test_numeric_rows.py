"""The numeric row fast path (app.numeric_rows) decides exactly as the general way does.

For every body it takes, decoding must give the very arrays (values and dtype) or the very
error that orjson + `codecs.decode_request` give; every body it cannot prove regular must be
left to the general way (None)."""

from __future__ import annotations

import random

import numpy as np
import orjson
import pytest

from app import codecs
from app.errors import InvalidInput
from app.numeric_rows import numeric_rows
from app.signatures import SignatureInfo, TensorInfo

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
    b'{"instances": [[1e39, 0]]}',  # past float32
    b'{"instances": [[9007199254740993, 0]]}',  # past 2**53: rounds differently
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
    b'{"instances": [[18446744073709551616, 0]]}',
    b'[[1, 2]]',
    b'{"instances": [[1, 2]',
    b'',
]


def general(body: bytes, signature: SignatureInfo):
    try:
        arrays, rows, columnar = codecs.decode_request(orjson.loads(body), signature, LIMIT)
    except InvalidInput as err:
        return str(err)
    return {k: (v.dtype, v.tolist()) for k, v in arrays.items()}, rows, columnar


def fast(body: bytes, signature: SignatureInfo):
    numeric = numeric_rows(body)
    assert numeric is not None
    try:
        decoded = codecs.numeric_rows_for(numeric.values, signature, LIMIT)
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
