"""TensorFlow Serving's gRPC API (port 8500), for `tensorflow-serving-api`'s stubs unchanged.

  tensorflow.serving.PredictionService
    Predict           TensorProto inputs -> outputs; model_spec name / version / version_label /
                      signature_name (default serving_default), output_filter
    GetModelMetadata  the signature_def map (metadata_field "signature_def"), as TF Serving packs it
    Classify, Regress, MultiInference
                      UNIMPLEMENTED: they need a classify or regress signature (tf.Example in);
                      tfserve's exports and Keras' have predict signatures only
  tensorflow.serving.ModelService
    GetModelStatus    the states GET /v1/models/{model} reports
    HandleReloadConfigRequest   a ModelServerConfig applied like the polled config file

Every call goes through the predict core (app.serving.predict) like the REST routes: same
batchers, admission, breaker, metrics and request log.
"""

from __future__ import annotations

from pathlib import Path

import grpc
from tensorflow_serving.apis import (
    get_model_metadata_pb2,
    get_model_status_pb2,
    model_management_pb2,
    model_service_pb2_grpc,
    predict_pb2,
    prediction_service_pb2_grpc,
)

from app.codecs import tensor_proto, tfserving
from app.errors import Conflict, InvalidInput
from app.grpc_api.calls import Call, rpc
from app.models import model_config
from app.serving.predict import PredictCore

PREDICTION = "/tensorflow.serving.PredictionService/"
MODEL = "/tensorflow.serving.ModelService/"
DEFAULT_SIGNATURE = "serving_default"
PREDICT_ONLY = ("{method} needs a {kind} signature (tf.Example inputs); tfserve serves predict "
                "signatures (Keras exports have no other kind): call Predict")


def version_of(core: PredictCore, spec) -> int | None:
    """The version a ModelSpec asks for: a number, a label of the model config, or None (the
    highest)."""
    if not spec.name:
        raise InvalidInput("model_spec.name is required")
    choice = spec.WhichOneof("version_choice")
    if choice == "version":
        return spec.version.value
    if choice == "version_label":
        return core.manager.version_for_label(spec.name, spec.version_label)
    return None


class PredictionService(prediction_service_pb2_grpc.PredictionServiceServicer):
    def __init__(self, core: PredictCore):
        self.core = core

    @rpc(PREDICTION + "Predict")
    async def Predict(self, request: predict_pb2.PredictRequest, call: Call
                      ) -> predict_pb2.PredictResponse:
        core = self.core
        settings = core.settings
        spec = request.model_spec
        signature = spec.signature_name or DEFAULT_SIGNATURE
        async with core.call(spec.name, version_of(core, spec), signature,
                             call.started) as predict:
            arrays, rows = tensor_proto.decode_inputs(request.inputs, predict.signature,
                                                      settings.max_instances,
                                                      settings.max_image_pixels)
            wanted = tensor_proto.requested_outputs(request.output_filter, predict.signature)
            outputs = await predict.run(arrays, rows, call.deadline)
            response = predict_pb2.PredictResponse()
            response.model_spec.name = predict.servable.name
            response.model_spec.version.value = predict.servable.version
            response.model_spec.signature_name = signature
            for name in wanted:
                response.outputs[name].CopyFrom(tensor_proto.to_proto(outputs[name]))
            return response

    @rpc(PREDICTION + "GetModelMetadata")
    async def GetModelMetadata(self, request: get_model_metadata_pb2.GetModelMetadataRequest,
                               call: Call) -> get_model_metadata_pb2.GetModelMetadataResponse:
        fields = list(request.metadata_field)
        if fields != [tfserving.SIGNATURE_DEF]:
            raise InvalidInput(f"metadata_field must be [{tfserving.SIGNATURE_DEF!r}] (the only "
                               f"metadata served, as in TF Serving), got {fields}")
        spec = request.model_spec
        return tfserving.metadata_proto(self.core.manager, spec.name,
                                        version_of(self.core, spec))

    async def Classify(self, request, context: grpc.aio.ServicerContext):
        await context.abort(grpc.StatusCode.UNIMPLEMENTED,
                            PREDICT_ONLY.format(method="Classify", kind="classify"))

    async def Regress(self, request, context: grpc.aio.ServicerContext):
        await context.abort(grpc.StatusCode.UNIMPLEMENTED,
                            PREDICT_ONLY.format(method="Regress", kind="regress"))

    async def MultiInference(self, request, context: grpc.aio.ServicerContext):
        await context.abort(grpc.StatusCode.UNIMPLEMENTED,
                            PREDICT_ONLY.format(method="MultiInference",
                                                kind="classify or regress"))


class ModelService(model_service_pb2_grpc.ModelServiceServicer):
    def __init__(self, core: PredictCore):
        self.core = core

    @rpc(MODEL + "GetModelStatus")
    async def GetModelStatus(self, request: get_model_status_pb2.GetModelStatusRequest,
                             call: Call) -> get_model_status_pb2.GetModelStatusResponse:
        spec = request.model_spec
        document = tfserving.status(self.core.manager, spec.name, version_of(self.core, spec))
        return tfserving.status_proto(document)

    @rpc(MODEL + "HandleReloadConfigRequest")
    async def HandleReloadConfigRequest(self, request: model_management_pb2.ReloadConfigRequest,
                                        call: Call) -> model_management_pb2.ReloadConfigResponse:
        """Models added to the config load, models left out are released, without a restart.

        Relative base paths start at the config file's folder when the server has one, else
        at the model repository (TFSERVE_MODEL_DIR). With several workers a reload would reach
        only the worker that took the call, so it is refused: edit the polled config file."""
        core = self.core
        settings = core.settings
        if settings.worker_count > 1:
            raise Conflict(
                f"with {settings.worker_count} workers a reload would reach one of them; edit "
                "the model config file (TFSERVE_MODEL_CONFIG, re-read every "
                "TFSERVE_MODEL_CONFIG_POLL_S) instead")
        repository = core.manager.repository
        folder = (repository.config_file.parent if repository.config_file is not None
                  else Path(settings.model_dir))
        try:
            sources = model_config.sources_of(request.config, folder, "the reloaded config")
        except model_config.ModelConfigError as err:
            raise InvalidInput(str(err)) from None
        missing = [f"{s.name!r} ({s.base_path})" for s in sources.values()
                   if not s.base_path.is_dir()]
        if missing:  # TF Serving's reload fails too when a model cannot load
            raise InvalidInput(f"no model folder at the base path of {', '.join(missing)}; "
                               "the config in force is unchanged")
        repository.apply_config(sources)
        await core.manager.poll()
        return model_management_pb2.ReloadConfigResponse()
