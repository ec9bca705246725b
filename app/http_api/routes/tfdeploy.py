"""tfdeploy's routes (R tfdeploy::serve_savedmodel), outputs always named.

  POST /{signature}/predict                       the default model (TFSERVE_DEFAULT_MODEL)
  POST /models/{model}/{signature}/predict        any model, its highest version
  POST /models/{model}/versions/{version}/{signature}/predict
  POST /models/{model}/labels/{label}/{signature}/predict    a version label (model config)

Body: {"instances": [...], "signature_name"?: ...} (or columnar "inputs"); the body's
signature_name wins over the path's. Answer: {"predictions": [{"<output>": value, ...}, ...]}.
"""

from __future__ import annotations

from fastapi import APIRouter
from starlette.requests import Request
from starlette.responses import Response

from app.codecs import rest
from app.http_api.routes.params import parse_version
from app.http_api.routes.table import PredictRoute
from app.serving.predict import Prediction, predict_json

TAGS = ("tfdeploy",)
BODY = {"requestBody": {"required": True, "content": {"application/json": {"schema": {
    "type": "object",
    "properties": {"instances": {"type": "array", "items": {}},
                   "inputs": {}, "signature_name": {"type": "string"}}}}}}}


def _named_rows(result: Prediction) -> dict:
    return {"predictions": rest.encode_rows(result.outputs, result.rows, named=True)}


async def predict_version(request: Request, model: str, version: str,
                          signature: str) -> Response:
    """Run a signature of a given model version on JSON instances."""
    return await predict_json(request, model, parse_version(version), signature, _named_rows)


async def predict_label(request: Request, model: str, label: str, signature: str) -> Response:
    """Run a signature of the version a label names (TFSERVE_MODEL_CONFIG's version_labels)."""
    version = request.app.state.manager.version_for_label(model, label)
    return await predict_json(request, model, version, signature, _named_rows)


async def predict_model(request: Request, model: str, signature: str) -> Response:
    """Run a signature of a model's highest version on JSON instances."""
    return await predict_json(request, model, None, signature, _named_rows)


async def predict_default(request: Request, signature: str) -> Response:
    """tfdeploy's route: a signature of the default model on JSON instances."""
    model = request.app.state.settings.default_model
    return await predict_json(request, model, None, signature, _named_rows)


router = APIRouter(tags=list(TAGS))
# the catch-all /{signature}/predict last (app.http_api.routes lists this module last, too)
predict_routes = [
    PredictRoute("/models/{model}/versions/{version}/{signature}/predict", predict_version,
                 "Predict with one version of a model", TAGS, BODY),
    PredictRoute("/models/{model}/labels/{label}/{signature}/predict", predict_label,
                 "Predict with a labelled version of a model", TAGS, BODY),
    PredictRoute("/models/{model}/{signature}/predict", predict_model,
                 "Predict with a model", TAGS, BODY),
    PredictRoute("/{signature}/predict", predict_default,
                 "Predict with the default model (tfdeploy)", TAGS, BODY),
]
