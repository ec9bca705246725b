"""TensorFlow Serving's REST API v1, so its clients work unchanged.

  GET  /v1/models/{model}                              status of its versions
  GET  /v1/models/{model}/versions/{version}           status of one version
  GET  /v1/models/{model}[/versions/{version}]/metadata  signature_def map
  POST /v1/models/{model}[/versions/{version}]:predict row ("instances") or columnar ("inputs")
  and /labels/{label} wherever /versions/{version} goes (labels come from the model config)

Row requests answer {"predictions": ...}, columnar ones {"outputs": ...}; a single output is
unnamed. Errors are {"error": "..."} with TF Serving's status mapping.
"""

from __future__ import annotations

from fastapi import APIRouter
from starlette.requests import Request
from starlette.responses import Response

from app.codecs import rest
from app.codecs.tfserving import metadata, status
from app.errors import InvalidInput
from app.http_api.routes.deps import ManagerDep
from app.http_api.routes.params import parse_version
from app.http_api.routes.table import PredictRoute
from app.http_api.routes.tfdeploy import BODY
from app.serving.predict import Prediction, predict_json

TAGS = ("TensorFlow Serving REST API",)
router = APIRouter(prefix="/v1/models", tags=list(TAGS))
DEFAULT_SIGNATURE = "serving_default"


def _tf_serving_answer(result: Prediction) -> dict:
    """Row requests answer "predictions", columnar ones "outputs"; one output is unnamed."""
    if result.columnar:
        return {"outputs": rest.encode_columns(result.outputs)}
    return {"predictions": rest.encode_rows(result.outputs, result.rows, named=False)}


def _split_verb(model_and_verb: str) -> str:
    model, _, verb = model_and_verb.partition(":")
    if verb != "predict":
        raise InvalidInput(f"unsupported method {verb!r}: only :predict is served "
                           "(classify and regress are not)" if verb else
                           "POST needs a method: /v1/models/{model}:predict")
    return model


@router.get("/{model}", summary="Model status")
async def model_status(model: str, manager: ManagerDep) -> dict:
    """The state of each version of a model (TensorFlow Serving's GetModelStatus)."""
    return status(manager, model, None)


@router.get("/{model}/versions/{version}", summary="Model version status")
async def version_status(model: str, version: int, manager: ManagerDep) -> dict:
    return status(manager, model, version)


@router.get("/{model}/metadata", summary="Model metadata")
async def model_metadata(model: str, manager: ManagerDep) -> dict:
    """The signature_def map of the highest version (GetModelMetadata)."""
    return metadata(manager, model, None)


@router.get("/{model}/versions/{version}/metadata", summary="Model version metadata")
async def version_metadata(model: str, version: int, manager: ManagerDep) -> dict:
    return metadata(manager, model, version)


@router.get("/{model}/labels/{label}", summary="Model version status, by label")
async def label_status(model: str, label: str, manager: ManagerDep) -> dict:
    return status(manager, model, manager.version_for_label(model, label))


@router.get("/{model}/labels/{label}/metadata", summary="Model version metadata, by label")
async def label_metadata(model: str, label: str, manager: ManagerDep) -> dict:
    return metadata(manager, model, manager.version_for_label(model, label))


async def model_predict(request: Request, model_and_verb: str) -> Response:
    """POST /v1/models/{model}:predict with "instances" (row) or "inputs" (columnar)."""
    return await predict_json(request, _split_verb(model_and_verb), None, DEFAULT_SIGNATURE,
                              _tf_serving_answer)


async def version_predict(request: Request, model: str, version_and_verb: str) -> Response:
    version = parse_version(_split_verb(version_and_verb))
    return await predict_json(request, model, version, DEFAULT_SIGNATURE, _tf_serving_answer)


async def label_predict(request: Request, model: str, label_and_verb: str) -> Response:
    version = request.app.state.manager.version_for_label(model, _split_verb(label_and_verb))
    return await predict_json(request, model, version, DEFAULT_SIGNATURE, _tf_serving_answer)


predict_routes = [
    PredictRoute("/v1/models/{model_and_verb}", model_predict, "Predict (model:predict)",
                 TAGS, BODY),
    PredictRoute("/v1/models/{model}/versions/{version_and_verb}", version_predict,
                 "Predict with one version (model/versions/N:predict)", TAGS, BODY),
    PredictRoute("/v1/models/{model}/labels/{label_and_verb}", label_predict,
                 "Predict with a labelled version (model/labels/L:predict)", TAGS, BODY),
]
