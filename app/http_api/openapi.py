"""The OpenAPI document: the routes, plus one documented operation per model and signature.

The per-model operations are concrete paths of the generic tfdeploy route
(`/models/{model}/{signature}/predict`), each with the export's own request example, so
Swagger UI's "Try it out" works for every loaded model as it is. Built on each request, so
hot-reloaded models show up.
"""

from __future__ import annotations

import copy

import swagger_ui_bundle
from fastapi import FastAPI
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.openapi.utils import get_openapi
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse
from fastapi.staticfiles import StaticFiles
from starlette.requests import Request

from app.codecs import oip
from app.http_api.security import SECURITY_SCHEMES, openapi_security
from app.models.manager import ModelManager
from app.models.servable import Servable
from app.models.signatures import SignatureInfo

STATIC = "/static/swagger"
DESCRIPTION = """Serves every SavedModel of the model repository over HTTP/JSON with dynamic
batching: tfdeploy's routes, TensorFlow Serving's REST API v1, the Open Inference Protocol
(KServe v2, with binary tensors), and upload routes for image files and raw text. Each
model's signatures are listed below with a working example.

People can see each model's card and try it in a playground at [/ui](/ui)."""


ERROR_SCHEMA = {"type": "object", "required": ["error"],
                "properties": {"error": {"type": "string", "description": "what went wrong"}}}
# Every status a route can answer besides 200, by method; FastAPI's 422 is never sent (400 is).
ERRORS_BY_METHOD = {
    "get": {"400": "a malformed path parameter", "404": "no such model or version"},
    "post": {"400": "invalid request or input the model rejected",
             "404": "no such model, version or signature",
             "413": "the body, or an image in it, is over its limit",
             "415": "the body is not JSON (or, for uploads, not multipart)",
             "500": "the model failed while running",
             "503": "the queue is full or the model is loading (see Retry-After)",
             "504": "the request's deadline passed"},
}


def _name_served_models(schema: dict, models: list[str]) -> None:
    """`{model}` path parameters list the served models, so clients and fuzzers can tell."""
    for operations in schema["paths"].values():
        for operation in operations.values():
            for parameter in operation.get("parameters", []):
                if parameter["name"] == "model" and parameter["in"] == "path" and models:
                    parameter["schema"] = {**parameter["schema"], "enum": models}


def _document_errors(schema: dict, security: list[dict]) -> None:
    """Declare the JSON error body, each status a model route may answer, and the API key
    the model routes need when one is configured."""
    components = schema.setdefault("components", {})
    components.setdefault("schemas", {})["Error"] = ERROR_SCHEMA
    if security:
        components["securitySchemes"] = SECURITY_SCHEMES
    error = {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}
    for operations in schema["paths"].values():
        for method, operation in operations.items():
            responses = operation.setdefault("responses", {})
            responses.pop("422", None)
            if "operations" in operation.get("tags", []):
                continue  # health, readiness, metrics: open, and document their own
            statuses = dict(ERRORS_BY_METHOD.get(method, {}))
            if security:
                statuses["401"] = "missing or wrong API key"
                operation["security"] = security
            for status, description in statuses.items():
                responses.setdefault(status, {"description": description, "content": error})


def _describe(info: SignatureInfo, servable: Servable) -> str:
    """Inputs with what the export says each expects, outputs, and its warning if any."""
    notes = servable.input_notes(info.name)
    inputs = "\n".join(f"- `{k}` {v.describe()}" + (f": {notes[k]}" if k in notes else "")
                       for k, v in info.inputs.items())
    outputs = ", ".join(f"`{k}` {v.describe()}" for k, v in info.outputs.items())
    warning = (f"**Warning: {servable.name} version {servable.version} has "
               f"{servable.warning}.**\n\n" if servable.warning else "")
    return f"{warning}Inputs:\n{inputs}\n\nOutputs: {outputs}."


def _example_body(servable: Servable, info: SignatureInfo) -> tuple[dict, str]:
    """The request body's example, or, when it is too large to inline, where to get it."""
    body: dict = {"schema": {"type": "object"}}
    example = info.request_example()
    if len(str(example)) < MAX_EXAMPLE_CHARS:
        body["example"] = example
        return body, ""
    return body, (f"\n\nThe example is too large to show here: `GET /models/{servable.name}/"
                  f"{info.name}/example` returns one to send as it is (`curl .../example | "
                  f"curl -d @- .../predict`).")


def model_operations(manager: ModelManager) -> dict[str, dict]:
    paths = {}
    for model in sorted(manager.servables):
        servable = manager.get(model)
        for name, info in sorted(servable.signatures.items()):
            body, elsewhere = _example_body(servable, info)
            paths[f"/models/{model}/{name}/predict"] = {"post": {
                "tags": [f"model: {model}"],
                "summary": f"{model} (version {servable.version}): {name}",
                "description": _describe(info, servable) + elsewhere,
                "operationId": f"predict__{model}__{name}",
                "requestBody": {"required": True, "content": {"application/json": body}},
                "responses": {"200": {"description": "one prediction per instance",
                                      "content": {"application/json": {"example": {
                                          "predictions": [{k: "..." for k in info.outputs}]}}}}},
            }}
    return paths


# Larger examples go by reference (GET /models/{model}/{signature}/example): inlined, the
# CIFAR-10 images alone (~60 KB each, in three operations per model) made the document 399 KB
# and Swagger UI's first paint seconds long. mnist's 784 pixels stay inline.
MAX_EXAMPLE_CHARS = 16_000


def v2_operations(manager: ModelManager) -> dict[str, dict]:
    """`/v2/models/{model}/infer` per model, with a JSON example per signature that has one
    (image files go binary: the README shows tritonclient and curl doing that)."""
    paths = {}
    for model in sorted(manager.servables):
        servable = manager.get(model)
        examples, too_large = {}, []
        for name, info in sorted(servable.signatures.items()):
            example = oip.example_request(info)
            if example is not None and len(str(example)) < MAX_EXAMPLE_CHARS:
                examples[name] = {"summary": f"signature {name}", "value": example}
            elif example is not None:
                too_large.append(name)
        described = "\n\n".join(f"`{name}`: {_describe(info, servable)}"
                                 for name, info in sorted(servable.signatures.items()))
        paths[f"/v2/models/{model}/infer"] = {"post": {
            "tags": [f"model: {model}"],
            "summary": f"{model} (version {servable.version}): Open Inference Protocol",
            "description": "Choose a signature with `parameters.signature_name` (default "
                           "`serving_default`); binary tensors need the binary data "
                           f"extension (not Swagger UI).\n\n{described}"
                           + "".join(f"\n\nThe `{name}` example is too large to show here: "
                                     f"`GET /models/{model}/{name}/example` has its values "
                                     "(in tfdeploy's row format)." for name in too_large),
            "operationId": f"infer__{model}",
            "requestBody": {"required": True, "content": {"application/json": {
                "schema": {"type": "object"}, "examples": examples}}},
            "responses": {"200": {"description": "the outputs, as v2 tensors"}},
        }}
    return paths


def _v1_examples(schema: dict, manager: ModelManager) -> None:
    """The generic TF Serving predict routes get each model's default example (the path names
    the model: `mnist:predict`)."""
    examples = {}
    for model in sorted(manager.servables):
        info = manager.get(model).signatures.get("serving_default")
        if info is None:
            continue
        example = info.request_example()
        if len(str(example)) < MAX_EXAMPLE_CHARS:
            examples[model] = {"summary": f"{model}:predict (serving_default)", "value": example}
    for path, operations in schema["paths"].items():
        operation = operations.get("post")
        if path.startswith("/v1/models/") and operation and examples:
            # FastAPI hands the route's own (shared) dicts over: copy before changing them
            operation["requestBody"] = copy.deepcopy(operation.get("requestBody", {}))
            content = operation["requestBody"].setdefault("content", {}).setdefault(
                "application/json", {"schema": {"type": "object"}})
            content.pop("example", None)
            content["examples"] = examples


def install(app: FastAPI) -> None:
    def build() -> dict:
        schema = get_openapi(title=app.title, version=app.version, description=DESCRIPTION,
                             routes=app.routes)
        manager = app.state.manager
        schema["paths"] = {**model_operations(manager), **v2_operations(manager),
                           **schema["paths"]}
        _v1_examples(schema, manager)
        _document_errors(schema, openapi_security(app.state.settings))
        _name_served_models(schema, sorted(app.state.manager.servables))
        return schema

    app.openapi = build  # type: ignore[method-assign]

    @app.get("/swagger.json", include_in_schema=False)
    async def swagger_json(_: Request) -> JSONResponse:
        return JSONResponse(build())

    # Swagger UI's files come from the swagger-ui-bundle-v2 package: no CDN, works offline.
    app.mount(STATIC, StaticFiles(directory=swagger_ui_bundle.swagger_ui_path), name="swagger")

    @app.get("/favicon.ico", include_in_schema=False)
    async def favicon() -> RedirectResponse:
        return RedirectResponse(f"{STATIC}/favicon-32x32.png", status_code=301)

    @app.get("/", include_in_schema=False)
    @app.get("/docs", include_in_schema=False)
    async def swagger_ui() -> HTMLResponse:
        return get_swagger_ui_html(openapi_url="/openapi.json", title=f"{app.title} API",
                                   swagger_js_url=f"{STATIC}/swagger-ui-bundle.js",
                                   swagger_css_url=f"{STATIC}/swagger-ui.css",
                                   swagger_favicon_url=f"{STATIC}/favicon-32x32.png")
