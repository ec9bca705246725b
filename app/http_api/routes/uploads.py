"""Friendly upload routes on the raw-input signatures.

  POST /models/{model}/predict/image   multipart files (field "file") -> `predict_image`
  POST /models/{model}/predict/text    {"texts": [...]} -> `predict_text`

Each answers {"predictions": [{"file"|"text": ..., <outputs>}, ...]}, one entry per file or
text, with the signature's summary outputs as its export declares them (for exports that
declare none: every output but the full `probabilities` vector); `?probabilities=true` adds
every output. The uploaded bytes go to the model as they are: no JSON or base64 on the way.

An upload of several files of which some cannot be used (not an image the model decodes)
still answers 200: the good files get their results, each bad one an entry
`{"file": name, "error": "file 'name': why"}` in its place. A lone bad file, or all of them
bad, answer 400 naming the files.
"""

from __future__ import annotations

import time

import numpy as np
from fastapi import APIRouter
from pydantic import BaseModel, Field, ValidationError
from starlette.datastructures import UploadFile
from starlette.requests import Request
from starlette.responses import Response

from app.codecs import rest
from app.codecs.images import check_image_size
from app.errors import InvalidInput, ServingError, UnsupportedMediaType
from app.http_api.routes.params import query_flag
from app.http_api.routes.table import PredictRoute
from app.models.signatures import SignatureInfo
from app.serving.predict import JSONBody, PredictCall, PredictCore, read_json

TAGS = ("uploads",)
FULL = {"name": "probabilities", "in": "query", "required": False,
        "schema": {"type": "boolean", "default": False},
        "description": "every output of the signature, the full probability vector included"}


class TextRequest(BaseModel):
    texts: list[str] = Field(min_length=1, examples=[["A wonderful, moving film."]])


def _string_input(signature: SignatureInfo) -> str:
    """The name of the signature's one string input, else 400 naming the generic route."""
    if len(signature.inputs) != 1 or next(iter(signature.inputs.values())).dtype != "string":
        raise InvalidInput(f"signature {signature.name!r} does not take one string input; use "
                           "/models/{model}/{signature}/predict")
    return next(iter(signature.inputs))


async def _predict_strings(call: PredictCall, values: list[bytes], full: bool) -> list[dict]:
    """Run `values` as the rows of the signature's string input; rows of summary outputs."""
    name = _string_input(call.signature)
    array = np.array(values, dtype=object)
    rest.check_shape(array, call.signature.inputs[name])
    outputs = await call.run({name: array}, len(values))
    return rest.encode_rows(outputs if full else call.signature.summary(outputs),
                              len(values), named=True)


async def _uploaded_files(request: Request, limit: int) -> list[tuple[str, bytes]]:
    """(file name, bytes) of each file in the multipart field "file", at most `limit`."""
    media = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if media != "multipart/form-data":
        raise UnsupportedMediaType(f"content type {media!r} is not supported here; upload "
                                   'files as multipart/form-data in the field "file"')
    try:
        form = await request.form(max_files=limit, max_fields=limit)
    except ServingError:  # the body limit
        raise
    except Exception as err:  # python-multipart's and Starlette's parse errors
        detail = getattr(err, "detail", None) or getattr(err, "message", None) or str(err)
        raise InvalidInput(f"unreadable multipart body (at most {limit} files): "
                           f"{detail}") from None
    try:
        files = [f for f in form.getlist("file") if isinstance(f, UploadFile)]
        if not files:
            raise InvalidInput('no file: upload one or more files in the multipart field '
                               '"file"')
        return [(f.filename or "", await f.read()) for f in files]
    finally:
        await form.close()


async def predict_image(request: Request, model: str) -> Response:
    """JPEG/PNG/GIF/BMP files, any size -> top classes and scores per file."""
    core: PredictCore = request.app.state.core
    settings = core.settings
    full = query_flag(request, "probabilities")
    files = await _uploaded_files(request, settings.max_images_per_upload)
    started = time.perf_counter()
    for name, data in files:
        if not data:
            raise InvalidInput(f"file {name!r} is empty")
        check_image_size(data, settings.max_image_pixels, f"file {name!r}")
    async with core.call(model, None, "predict_image", started) as call:
        try:
            rows = await _predict_strings(call, [data for _, data in files], full)
        except InvalidInput as err:
            if len(files) == 1:
                raise InvalidInput(f"file {files[0][0]!r}: {_reason(err)}") from None
            rows = await _predict_each(call, files, full)
        return JSONBody({"predictions": [{"file": name, **row}
                                         for (name, _), row in zip(files, rows, strict=True)]},
                        headers=call.servable.answer_headers)


async def _predict_each(call: PredictCall, files: list[tuple[str, bytes]],
                        full: bool) -> list[dict]:
    """After a multi-file upload was rejected: each file alone, so that the good ones still
    get their results and each bad one an `error` naming it; 400 when none is good."""
    rows: list[dict] = []
    for name, data in files:
        try:
            rows += await _predict_strings(call, [data], full)
        except InvalidInput as err:
            rows.append({"error": f"file {name!r}: {_reason(err)}"})
    if all("error" in row for row in rows):
        raise InvalidInput("no file could be used: " + "; ".join(r["error"] for r in rows))
    return rows


def _reason(err: InvalidInput) -> str:
    return err.message.removeprefix("the model rejected the input: ")


async def predict_text(request: Request, model: str) -> Response:
    """{"texts": ["a review", ...]} -> the `predict_text` outputs per text."""
    core: PredictCore = request.app.state.core
    full = query_flag(request, "probabilities")
    payload, started = await read_json(request)
    try:
        texts = TextRequest.model_validate(payload).texts
    except ValidationError as err:
        first = err.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "body"
        raise InvalidInput('expected {"texts": ["...", ...]} with at least one string; '
                           f"{where}: {first['msg']}") from None
    async with core.call(model, None, "predict_text", started) as call:
        rows = await _predict_strings(call, [t.encode("utf-8") for t in texts], full)
        return JSONBody({"predictions": [{"text": t, **row}
                                         for t, row in zip(texts, rows, strict=True)]},
                        headers=call.servable.answer_headers)


IMAGE_BODY = {"requestBody": {"required": True, "content": {"multipart/form-data": {"schema": {
    "type": "object", "required": ["file"],
    "properties": {"file": {"type": "array", "description": "one or more image files",
                            "items": {"type": "string",
                                      "contentMediaType": "application/octet-stream"}}}}}}},
              "parameters": [FULL]}
TEXT_BODY = {"requestBody": {"required": True, "content": {"application/json": {
    "schema": TextRequest.model_json_schema()}}}, "parameters": [FULL]}

router = APIRouter(tags=list(TAGS))
predict_routes = [
    PredictRoute("/models/{model}/predict/image", predict_image,
                 "Classify uploaded image files", TAGS, IMAGE_BODY),
    PredictRoute("/models/{model}/predict/text", predict_text, "Score raw texts", TAGS,
                 TEXT_BODY),
]
