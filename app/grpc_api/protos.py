"""The gRPC messages, in a descriptor pool of tfserve's own.

The Open Inference Protocol's messages (package `inference`) exist in two Python packages,
tritonclient's `grpc_service.proto` and KServe's `grpc_predict_v2.proto`, and importing either
registers them in protobuf's default pool, where the other then fails (`duplicate symbol
'inference.ServerLiveRequest'`). The server takes Triton's definition (a superset of KServe's,
same field numbers, so both clients talk to it) but reads its serialized descriptor out of
tritonclient's generated module without running it, into `POOL`. So the server imports
neither client: any client, or a test process holding one of them, can share a process with
it. TF Serving's and the health service's files join the pool too (copied from the default
pool, where their own modules put them), so reflection answers for every service from one
pool.
"""

from __future__ import annotations

import ast
import importlib.util
from pathlib import Path

import grpc
from google.protobuf import descriptor_pb2, descriptor_pool, message_factory
from google.protobuf.descriptor import FileDescriptor

POOL = descriptor_pool.DescriptorPool()
_added: set[str] = set()


def _serialized_descriptor(module_file: Path) -> bytes:
    """The FileDescriptorProto that a protoc-generated module would add to the default pool."""
    tree = ast.parse(module_file.read_text())
    for node in ast.walk(tree):
        if (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
                and node.func.attr == "AddSerializedFile"
                and isinstance(node.args[0], ast.Constant)):
            return node.args[0].value
    raise RuntimeError(f"{module_file}: no serialized descriptor found")


def _add_serialized(data: bytes) -> None:
    proto = descriptor_pb2.FileDescriptorProto.FromString(data)
    if proto.name not in _added:
        POOL.Add(proto)
        _added.add(proto.name)


def add_file(file: FileDescriptor) -> None:
    """A file of the default pool (and the files it imports) into POOL."""
    for dependency in file.dependencies:
        add_file(dependency)
    _add_serialized(file.serialized_pb)


def _add_triton_files() -> None:
    package = importlib.util.find_spec("tritonclient")  # the bare package: runs nothing
    if package is None or not package.submodule_search_locations:
        raise RuntimeError("tritonclient is not installed: `pip install tritonclient[grpc]`")
    folder = Path(next(iter(package.submodule_search_locations))) / "grpc"
    for module in ("model_config_pb2.py", "service_pb2.py"):  # in import order
        _add_serialized(_serialized_descriptor(folder / module))


_add_triton_files()


class Messages:
    """Message classes of one proto package by their short names: `V2.ModelInferRequest`."""

    def __init__(self, package: str):
        self._package = package

    def __getattr__(self, name: str):
        descriptor = POOL.FindMessageTypeByName(f"{self._package}.{name}")
        cls = message_factory.GetMessageClass(descriptor)
        setattr(self, name, cls)
        return cls


V2 = Messages("inference")
V2_SERVICE = "inference.GRPCInferenceService"


def add_service(server: grpc.aio.Server, name: str, servicer: object) -> None:
    """Serve the methods of service `name` (in POOL) that `servicer` defines; the others
    answer UNIMPLEMENTED, as generated servicer base classes do."""
    service = POOL.FindServiceByName(name)
    handlers = {}
    for method in service.methods:
        function = getattr(servicer, method.name, None)
        if function is None:
            continue
        request = message_factory.GetMessageClass(method.input_type)
        response = message_factory.GetMessageClass(method.output_type)
        if method.client_streaming and method.server_streaming:
            make = grpc.stream_stream_rpc_method_handler
        elif not method.client_streaming and not method.server_streaming:
            make = grpc.unary_unary_rpc_method_handler
        else:
            raise TypeError(f"{name}/{method.name}: only unary and bidirectional methods")
        handlers[method.name] = make(function, request_deserializer=request.FromString,
                                     response_serializer=response.SerializeToString)
    server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(name, handlers),))
