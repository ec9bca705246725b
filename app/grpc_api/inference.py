"""The Open Inference Protocol's gRPC API, `inference.GRPCInferenceService`, for tritonclient.grpc
and KServe's InferenceGRPCClient unchanged.

  ServerLive, ServerReady, ServerMetadata     open, like /v2/health/* and /v2
  ModelReady, ModelMetadata                   serving_default's tensors (the request has no
                                              parameters to name another signature)
  ModelInfer        typed contents or raw_input_contents; parameters.signature_name as on REST
  ModelStreamInfer  a stream of ModelInfer requests, answered as each finishes (with its id)

The rest of Triton's service (repository, statistics, shared memory, trace and log settings)
answers UNIMPLEMENTED, as the servicer base class does. A version is a number or a label.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator

import grpc

from app.codecs import v2_grpc
from app.errors import ServingError
from app.grpc_api.calls import Call, check_key, code_of, rpc
from app.grpc_api.protos import V2
from app.models.manager import ModelManager
from app.serving.predict import PredictCore
from app.serving.readiness import readiness
from app.workers import WorkerBoard

SERVICE = "/inference.GRPCInferenceService/"
DEFAULT_SIGNATURE = "serving_default"
PLATFORM = "tensorflow_savedmodel"
SERVER_NAME = "tfserve"
EXTENSIONS = ["binary_tensor_data"]


def version_of(manager: ModelManager, model: str, text: str) -> int | None:
    """"" (the highest), a version number, or a version label of the model config."""
    if not text:
        return None
    return int(text) if text.isdigit() else manager.version_for_label(model, text)


class InferenceService:
    def __init__(self, core: PredictCore, board: WorkerBoard | None, version: str):
        self.core = core
        self.board = board
        self.version = version

    @rpc(SERVICE + "ServerLive", protected=False)
    async def ServerLive(self, request, call: Call):
        return V2.ServerLiveResponse(live=True)

    @rpc(SERVICE + "ServerReady", protected=False)
    async def ServerReady(self, request, call: Call):
        is_ready, _ = readiness(self.core.manager, self.board)
        return V2.ServerReadyResponse(ready=is_ready)

    @rpc(SERVICE + "ServerMetadata", protected=False)
    async def ServerMetadata(self, request, call: Call):
        return V2.ServerMetadataResponse(name=SERVER_NAME, version=self.version,
                                         extensions=EXTENSIONS)

    @rpc(SERVICE + "ModelReady")
    async def ModelReady(self, request, call: Call):
        manager = self.core.manager
        servable = manager.get(request.name, version_of(manager, request.name, request.version))
        return V2.ModelReadyResponse(ready=servable.healthy)

    @rpc(SERVICE + "ModelMetadata")
    async def ModelMetadata(self, request, call: Call):
        manager = self.core.manager
        servable = manager.get(request.name, version_of(manager, request.name, request.version))
        signature = servable.signature(DEFAULT_SIGNATURE)
        return V2.ModelMetadataResponse(
            name=servable.name, platform=PLATFORM,
            versions=[str(v) for v in sorted(manager.servables.get(servable.name, {}))],
            inputs=[v2_grpc.tensor_metadata(s) for s in signature.inputs.values()],
            outputs=[v2_grpc.tensor_metadata(s) for s in signature.outputs.values()])

    @rpc(SERVICE + "ModelInfer")
    async def ModelInfer(self, request, call: Call):
        return await self._infer(request, call.started, call.deadline)

    async def _infer(self, request: V2.ModelInferRequest, started: float,
                     deadline: float | None) -> V2.ModelInferResponse:
        core = self.core
        settings = core.settings
        version = version_of(core.manager, request.model_name, request.model_version)
        signature = v2_grpc.signature_name(request, DEFAULT_SIGNATURE)
        async with core.call(request.model_name, version, signature, started) as predict:
            arrays, rows = v2_grpc.decode_inputs(request, predict.signature,
                                                 settings.max_instances,
                                                 settings.max_image_pixels)
            wanted = v2_grpc.requested_outputs(request, predict.signature)
            outputs = await predict.run(arrays, rows, deadline)
            return v2_grpc.encode_response(predict.servable.name, predict.servable.version,
                                           request, outputs, wanted, predict.signature)

    async def ModelStreamInfer(self, requests: AsyncIterator[V2.ModelInferRequest],
                               context: grpc.aio.ServicerContext
                               ) -> AsyncIterator[V2.ModelStreamInferResponse]:
        """Each request of the stream runs as it arrives (so they batch with each other and
        with other calls); answers go back as they finish, an error as `error_message`."""
        try:
            check_key(self.core, dict(context.invocation_metadata() or ()))
        except ServingError as err:
            await context.abort(code_of(err, False), err.message)
        answers: asyncio.Queue[V2.ModelStreamInferResponse | None] = asyncio.Queue()
        running: set[asyncio.Task] = set()

        async def answer(request: V2.ModelInferRequest, started: float) -> None:
            try:
                response = await self._infer(request, started, None)
                await answers.put(V2.ModelStreamInferResponse(infer_response=response))
            except ServingError as err:
                await answers.put(V2.ModelStreamInferResponse(
                    error_message=f"{code_of(err, False).name}: {err.message}",
                    infer_response=V2.ModelInferResponse(id=request.id)))

        async def read() -> None:
            async for request in requests:
                task = asyncio.get_running_loop().create_task(
                    answer(request, time.perf_counter()))
                running.add(task)
                task.add_done_callback(running.discard)
            if running:
                await asyncio.gather(*running)
            await answers.put(None)

        reader = asyncio.get_running_loop().create_task(read())
        try:
            while (response := await answers.get()) is not None:
                yield response
        finally:
            reader.cancel()
            for task in list(running):
                task.cancel()
