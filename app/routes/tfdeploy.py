"""tfdeploy's routes (R tfdeploy::serve_savedmodel), outputs always named.

  POST /{signature}/predict                       the default model (TFSERVE_DEFAULT_MODEL)
  POST /models/{model}/{signature}/predict        any model, its highest version
  POST /models/{model}/versions/{version}/{signature}/predict

Body: {"instances": [...], "signature_name"?: ...} (or columnar "inputs"); the body's
signature_name wins over the path's. Answer: {"predictions": [{"<output>": value, ...}, ...]}.
"""

from __future__ import annotations

from fastapi import APIRouter, Request

from app import codecs
from app.predict import predict_json
from app.routes.responses import JSONBody

router = APIRouter(tags=["tfdeploy"])

BODY = {"requestBody": {"required": True, "content": {"application/json": {"schema": {
    "type": "object",
    "properties": {"instances": {"type": "array", "items": {}},
                   "inputs": {}, "signature_name": {"type": "string"}}}}}}}


async def _predict(request: Request, model: str, version: int | None,
                   signature: str) -> JSONBody:
    result = await predict_json(request, model, version, signature)
    return JSONBody({"predictions": codecs.encode_rows(result.outputs, result.rows, named=True)})


@router.post("/models/{model}/versions/{version}/{signature}/predict", openapi_extra=BODY,
             summary="Predict with one version of a model")
async def predict_version(model: str, version: int, signature: str,
                          request: Request) -> JSONBody:
    """Run a signature of a given model version on JSON instances."""
    return await _predict(request, model, version, signature)


@router.post("/models/{model}/{signature}/predict", openapi_extra=BODY,
             summary="Predict with a model")
async def predict_model(model: str, signature: str, request: Request) -> JSONBody:
    """Run a signature of a model's highest version on JSON instances."""
    return await _predict(request, model, None, signature)


@router.post("/{signature}/predict", openapi_extra=BODY,
             summary="Predict with the default model (tfdeploy)")
async def predict_default(signature: str, request: Request) -> JSONBody:
    """tfdeploy's route: a signature of the default model on JSON instances."""
    return await _predict(request, request.app.state.settings.default_model, None, signature)
