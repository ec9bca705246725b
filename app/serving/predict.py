"""The predict core: every predict route, whatever its protocol, runs through here.

A route parses its body and names a model, version and signature; `PredictCore.call()` looks
the version up once and holds it while the request runs (a released version waits for it),
`PredictCall.run()` takes decoded arrays to the signature's batcher with the request's
deadline, and leaving the call counts the request and its latency, from parsing to the
encoded answer, in one place. `predict_json()` is the whole path of the JSON routes; routes
that decode otherwise (uploads, binary tensors) use the call directly.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
from starlette.requests import Request
from starlette.responses import Response

from app import tracing
from app.codecs import rest
from app.codecs.numeric_json import numeric_rows
from app.errors import ServingError, UnsupportedMediaType
from app.metrics import Metrics
from app.models.manager import ModelManager
from app.models.servable import Servable
from app.models.signatures import SignatureInfo
from app.serving import request_log as request_log_module
from app.serving.request_log import RequestLog
from app.settings import Settings

Arrays = dict[str, np.ndarray]


class JSONBody(Response):
    """A JSON answer whose body orjson writes, numpy arrays included."""

    media_type = "application/json"

    def render(self, content: Any) -> bytes:
        return rest.dumps(content)


@dataclass(slots=True)
class Prediction:
    """What a route encodes: the outputs of one request, and how it was asked."""

    model: str
    version: int
    signature: SignatureInfo
    outputs: Arrays
    rows: int
    columnar: bool = False


class PredictCore:
    """The models, the limits and the request metrics, as every predict route needs them."""

    def __init__(self, manager: ModelManager, settings: Settings, metrics: Metrics,
                 request_log: RequestLog | None = None):
        self.manager = manager
        self.settings = settings
        self.metrics = metrics
        self.request_log = request_log

    def call(self, model: str, version: int | None, signature: str,
             started: float | None = None) -> PredictCall:
        """`async with core.call(...) as call:` one request on one signature; `started`
        (perf_counter) is when its parsing began, for the latency metric."""
        return PredictCall(self, model, version, signature,
                           time.perf_counter() if started is None else started)


class PredictCall:
    """One request's hold on a model version, from lookup to its encoded answer."""

    __slots__ = ("core", "model", "version", "signature_name", "started", "servable",
                 "signature", "rows", "inputs", "outputs")

    def __init__(self, core: PredictCore, model: str, version: int | None, signature: str,
                 started: float):
        self.core = core
        self.model = model
        self.version = version
        self.signature_name = signature
        self.started = started
        self.servable: Servable | None = None
        self.signature: SignatureInfo | None = None
        self.rows = 0
        self.inputs: Arrays | None = None
        self.outputs: Arrays | None = None

    async def __aenter__(self) -> PredictCall:
        servable = self.core.manager.get(self.model, self.version)
        self.signature = servable.signature(self.signature_name)
        self.servable = servable
        servable.users += 1
        return self

    async def run(self, arrays: Arrays, rows: int, deadline: float | None = None) -> Arrays:
        """The signature's outputs for `rows` rows of decoded `arrays`, within the deadline:
        the server's request timeout, or the client's own (`deadline`, monotonic) if sooner."""
        ours = time.monotonic() + self.core.settings.request_timeout_s
        deadline = ours if deadline is None else min(ours, deadline)
        batcher = self.servable.batchers[self.signature_name]
        self.rows, self.inputs = rows, arrays
        self.outputs = await batcher.submit(arrays, rows, deadline)
        return self.outputs

    async def __aexit__(self, kind, error, _) -> None:
        servable = self.servable
        servable.users -= 1
        if error is None:
            status = "ok"
        else:
            status = (str(error.status) if isinstance(error, ServingError)
                      else "cancelled" if isinstance(error, asyncio.CancelledError)  # client gone
                      else "error")
        latency = time.perf_counter() - self.started
        self.core.metrics.observe_request(
            (servable.name, str(servable.version), self.signature_name), status, latency)
        request_log = self.core.request_log
        if request_log is not None and request_log.sampled():
            request_log.add(self._log_line(request_log, status, latency))

    def _log_line(self, request_log: RequestLog, status: str, latency: float) -> dict:
        context = tracing.CURRENT.get()
        line = {"time": time.time(), "request_id": context.id if context else None,
                "model": self.servable.name, "version": self.servable.version,
                "signature": self.signature_name,
                "protocol": request_log_module.protocol_of(context.path) if context else None,
                "rows": self.rows, "status": status, "latency_ms": round(latency * 1000, 3)}
        if request_log.payloads:
            line["inputs"] = request_log_module.payload(self.inputs or {})
            line["outputs"] = request_log_module.payload(self.outputs or {})
        return line


def require_json(request: Request) -> None:
    content_type = request.headers.get("content-type", "application/json")
    media = content_type.split(";")[0].strip().lower()
    if media != "application/json" and not media.endswith("+json"):
        raise UnsupportedMediaType(f"content type {media!r} is not supported here; send "
                                   "JSON with Content-Type: application/json")


async def read_json(request: Request) -> tuple[Any, float]:
    """The JSON body (size capped by app.http_api.middleware.BodyLimit), and when parsing began."""
    body, started = await read_body(request)
    return rest.parse_json(body), started


async def read_body(request: Request) -> tuple[bytes, float]:
    """A JSON request's bytes, and when they were all in (parsing begins)."""
    require_json(request)
    body = await request.body()
    return body, time.perf_counter()


Encoder = Callable[[Prediction], Any]


async def predict_json(request: Request, model: str, version: int | None,
                       path_signature: str, encode: Encoder) -> Response:
    """The JSON predict routes' whole path: parse, decode for the signature, batch, encode.

    The body's `signature_name` wins over the path's.
    """
    body, started = await read_body(request)
    numeric = numeric_rows(body)  # the commonest request, straight to numpy; else None
    if numeric is None:
        payload = rest.parse_json(body)
        name = rest.requested_signature(payload, path_signature)
    else:
        payload = None
        name = path_signature if numeric.signature_name is None else numeric.signature_name
    core: PredictCore = request.app.state.core
    settings = core.settings
    async with core.call(model, version, name, started) as call:
        decoded = None if numeric is None else rest.numeric_rows_for(
            numeric, call.signature, settings.max_instances)
        if decoded is None:  # not that request, or not for this signature: the general way
            decoded = rest.decode_request(
                rest.parse_json(body) if payload is None else payload, call.signature,
                settings.max_instances, settings.max_image_pixels)
        arrays, rows, columnar = decoded
        outputs = await call.run(arrays, rows)
        prediction = Prediction(call.servable.name, call.servable.version, call.signature,
                                outputs, rows, columnar)
        return JSONBody(encode(prediction), headers=call.servable.answer_headers)
