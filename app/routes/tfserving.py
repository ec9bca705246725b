"""TensorFlow Serving's REST API v1, so its clients work unchanged.

  GET  /v1/models/{model}                              status of its versions
  GET  /v1/models/{model}/versions/{version}           status of one version
  GET  /v1/models/{model}[/versions/{version}]/metadata  signature_def map
  POST /v1/models/{model}[/versions/{version}]:predict row ("instances") or columnar ("inputs")

Row requests answer {"predictions": ...}, columnar ones {"outputs": ...}; a single output is
unnamed. Errors are {"error": "..."} with TF Serving's status mapping.
"""

from __future__ import annotations

from fastapi import APIRouter, Request

from app import codecs
from app.errors import InvalidInput, NotFound
from app.predict import RegistryDep, predict_json
from app.registry import Registry
from app.routes.responses import JSONBody
from app.routes.tfdeploy import BODY

router = APIRouter(prefix="/v1/models", tags=["TensorFlow Serving REST API"])
DEFAULT_SIGNATURE = "serving_default"


def _version_status(version: int, state: str, error: str = "") -> dict:
    return {"version": str(version), "state": state,
            "status": {"error_code": "UNKNOWN" if error else "OK", "error_message": error}}


def status(registry: Registry, model: str, version: int | None) -> dict:
    loaded = registry.servables.get(model, {})
    failed = registry.failures.get(model, {})
    entries = {v: _version_status(v, s.state) for v, s in loaded.items()}
    entries.update({v: _version_status(v, "END", f.error) for v, f in failed.items()
                    if v not in entries})
    if not entries:
        raise NotFound(f"model {model!r} is not served; models: {sorted(registry.servables)}")
    if version is not None:
        if version not in entries:
            raise NotFound(f"model {model!r} has no version {version}; versions: "
                           f"{sorted(entries)}")
        entries = {version: entries[version]}
    return {"model_version_status": [entries[v] for v in sorted(entries, reverse=True)]}


def metadata(registry: Registry, model: str, version: int | None) -> dict:
    servable = registry.get(model, version)
    return {
        "model_spec": {"name": servable.name, "signature_name": "",
                       "version": str(servable.version)},
        "metadata": {"signature_def": {
            "signature_def": {k: v.metadata() for k, v in servable.signatures.items()},
            "@type": "type.googleapis.com/tensorflow.serving.SignatureDefMap"}},
    }


async def predict(request: Request, model: str, version: int | None) -> JSONBody:
    result = await predict_json(request, model, version, DEFAULT_SIGNATURE)
    if result.columnar:
        return JSONBody({"outputs": codecs.encode_columns(result.outputs)})
    return JSONBody({"predictions": codecs.encode_rows(result.outputs, result.rows,
                                                       named=False)})


def _split_verb(model_and_verb: str) -> str:
    model, _, verb = model_and_verb.partition(":")
    if verb != "predict":
        raise InvalidInput(f"unsupported method {verb!r}: only :predict is served "
                           "(classify and regress are not)" if verb else
                           "POST needs a method: /v1/models/{model}:predict")
    return model


@router.get("/{model}", summary="Model status")
async def model_status(model: str, registry: RegistryDep) -> dict:
    """The state of each version of a model (TensorFlow Serving's GetModelStatus)."""
    return status(registry, model, None)


@router.get("/{model}/versions/{version}", summary="Model version status")
async def version_status(model: str, version: int, registry: RegistryDep) -> dict:
    return status(registry, model, version)


@router.get("/{model}/metadata", summary="Model metadata")
async def model_metadata(model: str, registry: RegistryDep) -> dict:
    """The signature_def map of the highest version (GetModelMetadata)."""
    return metadata(registry, model, None)


@router.get("/{model}/versions/{version}/metadata", summary="Model version metadata")
async def version_metadata(model: str, version: int, registry: RegistryDep) -> dict:
    return metadata(registry, model, version)


@router.post("/{model_and_verb}", openapi_extra=BODY, summary="Predict (model:predict)")
async def model_predict(model_and_verb: str, request: Request) -> JSONBody:
    """POST /v1/models/{model}:predict with "instances" (row) or "inputs" (columnar)."""
    return await predict(request, _split_verb(model_and_verb), None)


@router.post("/{model}/versions/{version_and_verb}", openapi_extra=BODY,
             summary="Predict with one version (model/versions/N:predict)")
async def version_predict(model: str, version_and_verb: str, request: Request) -> JSONBody:
    version = _split_verb(version_and_verb)
    if not version.isdigit():
        raise InvalidInput(f"version must be an integer, got {version!r}")
    return await predict(request, model, int(version))
