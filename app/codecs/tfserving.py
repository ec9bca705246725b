"""TensorFlow Serving's model status and metadata, as its REST API writes them in JSON and its
gRPC API answers them (the same documents parsed into the protos, by protobuf's JSON mapping,
so the two transports cannot drift apart).
"""

from __future__ import annotations

from google.protobuf import json_format
from tensorflow_serving.apis import get_model_metadata_pb2, get_model_status_pb2

from app.errors import NotFound
from app.models.manager import ModelManager

SIGNATURE_DEF = "signature_def"


def _version_status(version: int, state: str, error: str = "", code: str = "UNKNOWN") -> dict:
    return {"version": str(version), "state": state,
            "status": {"error_code": code if error else "OK", "error_message": error}}


def status(manager: ModelManager, model: str, version: int | None) -> dict:
    loaded = manager.servables.get(model, {})
    failed = manager.failures.get(model, {})
    entries = {v: _version_status(v, s.state.value, "" if s.healthy else s.breaker.reason,
                                  "UNAVAILABLE") for v, s in loaded.items()}
    for v, s in loaded.items():
        if s.warning:  # beside TF Serving's fields: its clients read only those
            entries[v]["warning"] = s.warning
    entries.update({v: _version_status(v, "END", f.error) for v, f in failed.items()
                    if v not in entries})
    if not entries:
        raise NotFound(f"model {model!r} is not served; models: {sorted(manager.servables)}")
    if version is not None:
        if version not in entries:
            raise NotFound(f"model {model!r} has no version {version}; versions: "
                           f"{sorted(entries)}")
        entries = {version: entries[version]}
    return {"model_version_status": [entries[v] for v in sorted(entries, reverse=True)]}


def metadata(manager: ModelManager, model: str, version: int | None) -> dict:
    servable = manager.get(model, version)
    return {
        "model_spec": {"name": servable.name, "signature_name": "",
                       "version": str(servable.version)},
        "metadata": {"signature_def": {
            "signature_def": {k: v.metadata() for k, v in servable.signatures.items()},
            "@type": "type.googleapis.com/tensorflow.serving.SignatureDefMap"}},
        **({"warning": servable.warning} if servable.warning else {}),
    }


def status_proto(document: dict) -> get_model_status_pb2.GetModelStatusResponse:
    """`status()`'s document as GetModelStatus answers it (tfserve's extra fields left out)."""
    return json_format.ParseDict(document, get_model_status_pb2.GetModelStatusResponse(),
                                 ignore_unknown_fields=True)


def metadata_proto(manager: ModelManager, model: str, version: int | None
                   ) -> get_model_metadata_pb2.GetModelMetadataResponse:
    """GetModelMetadata's answer: the model spec, and the SignatureDefMap packed in an Any."""
    document = metadata(manager, model, version)
    signatures = json_format.ParseDict(
        {SIGNATURE_DEF: document["metadata"][SIGNATURE_DEF][SIGNATURE_DEF]},
        get_model_metadata_pb2.SignatureDefMap())
    response = get_model_metadata_pb2.GetModelMetadataResponse()
    response.model_spec.name = document["model_spec"]["name"]
    response.model_spec.version.value = int(document["model_spec"]["version"])
    response.metadata[SIGNATURE_DEF].Pack(signatures)
    return response
