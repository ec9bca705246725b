"""The gRPC server of one server process: grpcio's asyncio server on uvicorn's event loop, so
its calls meet the same predict core, batchers and models as the HTTP routes.

It listens on TFSERVE_GRPC_PORT (8500, TF Serving's; 0: no gRPC) with SO_REUSEPORT, so every
worker of TFSERVE_WORKERS binds the same port and the kernel spreads connections among them.
Message sizes are capped by TFSERVE_GRPC_MAX_MESSAGE_BYTES both ways (RESOURCE_EXHAUSTED past
it); TLS when TFSERVE_TLS_CERT_FILE and TFSERVE_TLS_KEY_FILE are set, as for HTTPS. Besides the
model services: `grpc.health.v1.Health` (SERVING once /readyz would say 200; NOT_SERVING while
loading and from the start of a shutdown) and server reflection, so grpcurl-style tools list
and call everything without the .proto files.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_health.v1.health import aio as health_aio
from grpc_reflection.v1alpha import reflection, reflection_pb2
from tensorflow_serving.apis import (
    model_service_pb2,
    model_service_pb2_grpc,
    prediction_service_pb2,
    prediction_service_pb2_grpc,
)

from app.grpc_api import protos
from app.grpc_api.inference import InferenceService
from app.grpc_api.tfserving import ModelService, PredictionService
from app.serving.predict import PredictCore
from app.settings import Settings
from app.workers import WorkerBoard

log = logging.getLogger(__name__)
SERVICES = ("tensorflow.serving.PredictionService", "tensorflow.serving.ModelService",
            "inference.GRPCInferenceService")


class Health(health_aio.HealthServicer):
    """Check asks the server's readiness each time (a breaker opening, a worker gone); Watch
    streams what `set` was last told (app.main tells it on every readiness change)."""

    def __init__(self, is_ready: Callable[[], bool]):
        super().__init__()
        self.is_ready = is_ready
        self._stopping = False

    async def Check(self, request: health_pb2.HealthCheckRequest, context
                    ) -> health_pb2.HealthCheckResponse:
        if request.service not in ("", *SERVICES):
            await context.abort(grpc.StatusCode.NOT_FOUND,
                                f"unknown service {request.service!r}; services: {SERVICES}")
        serving = self.is_ready() and not self._stopping
        status = health_pb2.HealthCheckResponse.SERVING if serving \
            else health_pb2.HealthCheckResponse.NOT_SERVING
        return health_pb2.HealthCheckResponse(status=status)

    async def follow(self, ready: bool) -> None:
        status = health_pb2.HealthCheckResponse.SERVING if ready \
            else health_pb2.HealthCheckResponse.NOT_SERVING
        for service in ("", *SERVICES):
            await self.set(service, status)

    async def stop(self) -> None:
        self._stopping = True
        await self.enter_graceful_shutdown()


def address(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


class GrpcServer:
    def __init__(self, settings: Settings, core: PredictCore, board: WorkerBoard | None,
                 version: str, is_ready: Callable[[], bool]):
        self.settings = settings
        self.services = (PredictionService(core), ModelService(core),
                         InferenceService(core, board, version))
        self.health = Health(is_ready)
        self.server: grpc.aio.Server | None = None

    def _build(self) -> grpc.aio.Server:
        """The server, made on the running event loop (grpc.aio takes the loop it starts on)."""
        size = self.settings.grpc_max_message_bytes
        server = grpc.aio.server(options=[
            ("grpc.max_receive_message_length", size),
            ("grpc.max_send_message_length", size),
            ("grpc.so_reuseport", 1),
        ])
        prediction, model, inference = self.services
        prediction_service_pb2_grpc.add_PredictionServiceServicer_to_server(prediction, server)
        model_service_pb2_grpc.add_ModelServiceServicer_to_server(model, server)
        protos.add_service(server, protos.V2_SERVICE, inference)
        health_pb2_grpc.add_HealthServicer_to_server(self.health, server)
        for file in (prediction_service_pb2.DESCRIPTOR, model_service_pb2.DESCRIPTOR,
                     health_pb2.DESCRIPTOR, reflection_pb2.DESCRIPTOR):
            protos.add_file(file)  # reflection answers from one pool: tfserve's
        reflection.enable_server_reflection(
            (*SERVICES, health_pb2.DESCRIPTOR.services_by_name["Health"].full_name,
             reflection.SERVICE_NAME), server, pool=protos.POOL)
        return server

    async def start(self) -> None:
        settings = self.settings
        self.server = self._build()
        where = address(settings.host, settings.grpc_port)
        try:
            if settings.tls:
                credentials = grpc.ssl_server_credentials(
                    [(settings.tls_key_file.read_bytes(), settings.tls_cert_file.read_bytes())])
                self.server.add_secure_port(where, credentials)
            else:
                self.server.add_insecure_port(where)
        except RuntimeError as err:
            raise RuntimeError(f"cannot listen for gRPC on {where} ({err}): is the port "
                               "taken? set TFSERVE_GRPC_PORT (0: no gRPC)") from None
        await self.server.start()
        await self.health.follow(self.health.is_ready())
        log.info("gRPC on %s%s", where, " (TLS)" if settings.tls else "")

    async def stop(self, grace_s: float) -> None:
        """No new calls; those in flight get `grace_s` to finish (then they are cancelled)."""
        await self.health.stop()
        if self.server is not None:
            started = time.monotonic()
            await self.server.stop(grace_s)
            log.info("gRPC server stopped: calls in flight finished in %.1f s (grace %.0f s)",
                     time.monotonic() - started, grace_s)
