"""The Open Inference Protocol (KServe v2) over REST, with the binary tensor data extension,
so Triton's and KServe's clients work unchanged.

  GET  /v2                                             server name, version, extensions
  GET  /v2/health/live, /v2/health/ready               {"live": true}, {"ready": ...}
  GET  /v2/models/{model}[/versions/{version}]         metadata of a signature's tensors
  GET  /v2/models/{model}[/versions/{version}]/ready   200 when the version serves
  POST /v2/models/{model}[/versions/{version}]/infer   run a signature (app.codecs.oip)

The signature is `serving_default` unless the request's `parameters.signature_name` names
another (TF Serving's name for it); metadata takes the same as a query parameter,
`?signature_name=predict_text`, and lists every signature in its `parameters`. A version is a
number or a label (app.http_api.routes.params). Errors are {"error": "..."} with tfserve's statuses.
"""

from __future__ import annotations

import time

from fastapi import APIRouter
from starlette.requests import Request
from starlette.responses import Response

from app.codecs import oip, v2_tensors
from app.errors import UnsupportedMediaType
from app.http_api.routes.deps import ManagerDep
from app.http_api.routes.params import resolve_version
from app.http_api.routes.table import PredictRoute
from app.models.manager import ModelManager
from app.serving.predict import JSONBody, PredictCore, require_json
from app.serving.readiness import readiness

TAGS = ("Open Inference Protocol (KServe v2)",)
DEFAULT_SIGNATURE = "serving_default"
PLATFORM = "tensorflow_savedmodel"  # Triton's name for a SavedModel backend
EXTENSIONS = ["binary_tensor_data"]
SERVER_NAME = "tfserve"

health = APIRouter(tags=["operations"])  # open, like /healthz
router = APIRouter(prefix="/v2/models", tags=list(TAGS))


@health.get("/v2", summary="Server metadata (v2)")
async def server_metadata(request: Request) -> dict:
    return {"name": SERVER_NAME, "version": request.app.version, "extensions": EXTENSIONS}


@health.get("/v2/health/live", summary="Liveness (v2)")
async def live() -> dict:
    return {"live": True}


@health.get("/v2/health/ready", summary="Readiness (v2)")
async def ready(manager: ManagerDep, request: Request) -> Response:
    """200 {"ready": true} when every model (and every worker) is; 503 otherwise."""
    is_ready, body = readiness(manager, request.app.state.worker_board)
    return JSONBody({"ready": is_ready, **body}, status_code=200 if is_ready else 503)


def model_metadata(manager: ModelManager, model: str, version: int | None,
                   signature_name: str | None) -> dict:
    servable = manager.get(model, version)
    info = servable.signature(signature_name or DEFAULT_SIGNATURE)
    return {
        "name": servable.name,
        "versions": [str(v) for v in sorted(manager.servables.get(model, {}))],
        "platform": PLATFORM,
        "inputs": [v2_tensors.tensor_metadata(spec) for spec in info.inputs.values()],
        "outputs": [v2_tensors.tensor_metadata(spec) for spec in info.outputs.values()],
        "parameters": {"signature_name": info.name, "signatures": sorted(servable.signatures)},
    }


@router.get("/{model}", summary="Model metadata (v2)")
async def metadata(model: str, manager: ManagerDep, signature_name: str | None = None) -> dict:
    """The tensors of the highest version's `serving_default`, or of `signature_name`."""
    return model_metadata(manager, model, None, signature_name)


@router.get("/{model}/versions/{version}", summary="Model version metadata (v2)")
async def version_metadata(model: str, version: str, manager: ManagerDep,
                           signature_name: str | None = None) -> dict:
    return model_metadata(manager, model, resolve_version(manager, model, version),
                          signature_name)


def _ready(manager: ModelManager, model: str, version: int | None) -> dict:
    servable = manager.get(model, version)  # only serving versions are found
    if not servable.healthy:
        raise servable.breaker.unavailable()
    return {"name": servable.name, "version": str(servable.version), "ready": True}


@router.get("/{model}/ready", summary="Model readiness (v2)")
async def model_ready(model: str, manager: ManagerDep) -> dict:
    return _ready(manager, model, None)


@router.get("/{model}/versions/{version}/ready", summary="Model version readiness (v2)")
async def version_ready(model: str, version: str, manager: ManagerDep) -> dict:
    return _ready(manager, model, resolve_version(manager, model, version))


def _check_encoding(request: Request) -> None:
    encoding = request.headers.get("content-encoding", "identity").strip().lower()
    if encoding != "identity":
        raise UnsupportedMediaType(f"Content-Encoding {encoding!r} is not accepted; send the "
                                   "body uncompressed")


async def infer(request: Request, model: str, version: int | None) -> Response:
    header_length = request.headers.get(oip.HEADER_LENGTH)
    if header_length is None:  # all JSON; with the binary extension any content type goes
        require_json(request)
    _check_encoding(request)
    body = await request.body()
    started = time.perf_counter()
    parsed = oip.parse_request(*oip.split_body(body, header_length), DEFAULT_SIGNATURE)
    core: PredictCore = request.app.state.core
    settings = core.settings
    async with core.call(model, version, parsed.signature_name, started) as call:
        arrays, rows = oip.decode_inputs(parsed, call.signature, settings.max_instances,
                                         settings.max_image_pixels)
        wanted = oip.requested_outputs(parsed, call.signature)
        outputs = await call.run(arrays, rows)
        answer, json_length = oip.encode_response(call.servable.name, call.servable.version,
                                                  parsed.id, outputs, wanted, call.signature)
    if json_length is None:
        return Response(answer, media_type="application/json",
                        headers=call.servable.answer_headers)
    headers = {**call.servable.answer_headers, "Inference-Header-Content-Length": str(json_length)}
    return Response(answer, media_type="application/octet-stream", headers=headers)


async def model_infer(request: Request, model: str) -> Response:
    """Run a signature of the model's highest version."""
    return await infer(request, model, None)


async def version_infer(request: Request, model: str, version: str) -> Response:
    return await infer(request, model,
                       resolve_version(request.app.state.manager, model, version))


TENSOR = {"type": "object", "required": ["name", "shape", "datatype"], "properties": {
    "name": {"type": "string"}, "shape": {"type": "array", "items": {"type": "integer"}},
    "datatype": {"type": "string", "enum": list(v2_tensors.DATATYPES)},
    "parameters": {"type": "object"}, "data": {}}}
BODY = {"requestBody": {"required": True, "content": {
    "application/json": {"schema": {
        "type": "object", "required": ["inputs"],
        "properties": {"id": {"type": "string"},
                       "parameters": {"type": "object", "properties": {
                           "signature_name": {"type": "string", "default": DEFAULT_SIGNATURE},
                           "binary_data_output": {"type": "boolean"}}},
                       "inputs": {"type": "array", "items": TENSOR},
                       "outputs": {"type": "array", "items": {"type": "object", "properties": {
                           "name": {"type": "string"}, "parameters": {"type": "object"}}}}}}},
    "application/octet-stream": {"schema": {
        "type": "string", "format": "binary",
        "description": "binary tensor data extension: Inference-Header-Content-Length bytes "
                       "of JSON, then the binary inputs"}}}}}

predict_routes = [
    PredictRoute("/v2/models/{model}/versions/{version}/infer", version_infer,
                 "Inference with one version (v2)", TAGS, BODY),
    PredictRoute("/v2/models/{model}/infer", model_infer, "Inference (v2)", TAGS, BODY),
]
