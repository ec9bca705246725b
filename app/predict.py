"""The one predict path every route shares: body -> signature -> batcher -> outputs.

Routes differ only in how they address the model and encode the answer; reading the body
within its limit, choosing the signature, decoding, batching, deadlines and metrics live here.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Annotated, Any

import numpy as np
from fastapi import Depends, Request

from app import codecs
from app.errors import ServingError, UnsupportedMediaType
from app.metrics import Metrics
from app.registry import Registry
from app.settings import Settings
from app.signatures import SignatureInfo


# async: FastAPI would run a sync dependency in a worker thread, a thread hop per request
async def get_registry(request: Request) -> Registry:
    return request.app.state.registry


async def get_settings(request: Request) -> Settings:
    return request.app.state.settings


RegistryDep = Annotated[Registry, Depends(get_registry)]
SettingsDep = Annotated[Settings, Depends(get_settings)]


@dataclass
class Prediction:
    model: str
    version: int
    signature: SignatureInfo
    outputs: dict[str, np.ndarray]
    rows: int
    columnar: bool


def require_json(request: Request) -> None:
    content_type = request.headers.get("content-type", "application/json")
    media = content_type.split(";")[0].strip().lower()
    if media != "application/json" and not media.endswith("+json"):
        raise UnsupportedMediaType(f"content type {media!r} is not supported here; send "
                                   "JSON with Content-Type: application/json")


async def read_json(request: Request) -> Any:
    require_json(request)
    return codecs.parse_json(await request.body())  # size capped by BodyLimit


async def predict_json(request: Request, model: str, version: int | None,
                       path_signature: str) -> Prediction:
    """The JSON predict routes' common path. It reads app.state itself: FastAPI's dependency
    resolution costs more per request than the rest of this path (profiled, bench/)."""
    payload = await read_json(request)
    name = codecs.requested_signature(payload, path_signature)
    return await run_signature(request.app.state.registry, request.app.state.settings, model,
                               version, name, payload)


async def run_signature(registry: Registry, settings: Settings, model: str,
                        version: int | None, signature_name: str, payload: Any) -> Prediction:
    """Decode `payload` for the signature, batch it, and wait for its outputs."""
    started = time.perf_counter()
    servable = registry.get(model, version)
    metrics: Metrics = registry.metrics
    labels = (servable.name, str(servable.version), signature_name)
    status = "error"
    try:
        with servable.in_use():
            signature = servable.signature(signature_name)
            arrays, rows, columnar = codecs.decode_request(
                payload, signature, settings.max_instances, settings.max_image_pixels)
            deadline = time.monotonic() + settings.request_timeout_s
            outputs = await servable.batchers[signature_name].submit(arrays, rows, deadline)
        status = "ok"
        return Prediction(servable.name, servable.version, signature, outputs, rows, columnar)
    except ServingError as err:
        status = str(err.status)
        raise
    finally:
        if signature_name in servable.signatures:
            metrics.requests.labels(*labels, status).inc()
            metrics.latency.labels(*labels).observe(time.perf_counter() - started)
