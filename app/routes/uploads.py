"""Friendly upload routes on the raw-input signatures.

  POST /models/{model}/predict/image   multipart files -> the `predict_image` signature
  POST /models/{model}/predict/text    {"texts": [...]} -> the `predict_text` signature

Each answers {"predictions": [{"file"|"text": ..., <outputs>}, ...]}, one entry per file or
text, with every output of the signature except the full `probabilities` vector (add
`?probabilities=true` for it).
"""

from __future__ import annotations

import base64
from typing import Annotated

from fastapi import APIRouter, File, Query, Request, UploadFile
from pydantic import BaseModel, Field

from app import codecs
from app.errors import InvalidInput
from app.predict import RegistryDep, SettingsDep, read_json, run_signature
from app.registry import Registry
from app.routes.responses import JSONBody

router = APIRouter(prefix="/models/{model}/predict", tags=["uploads"])
FULL_OUTPUT = "probabilities"


class TextRequest(BaseModel):
    texts: list[str] = Field(min_length=1, examples=[["A wonderful, moving film."]])


def _single_string_input(registry: Registry, model: str, signature: str) -> str:
    info = registry.get(model).signature(signature)
    if len(info.inputs) != 1 or next(iter(info.inputs.values())).dtype != "string":
        raise InvalidInput(f"signature {signature!r} of {model!r} does not take one string "
                           "input; use /models/{model}/{signature}/predict")
    return next(iter(info.inputs))


async def _run(registry, settings, model: str, signature: str, values: list,
               probabilities: bool) -> list[dict]:
    input_name = _single_string_input(registry, model, signature)
    payload = {"inputs": {input_name: values}}
    result = await run_signature(registry, settings, model, None, signature, payload)
    outputs = {k: v for k, v in result.outputs.items() if probabilities or k != FULL_OUTPUT}
    return codecs.encode_rows(outputs, result.rows, named=True)


@router.post("/image", summary="Classify uploaded image files")
async def predict_image(
        model: str, registry: RegistryDep, settings: SettingsDep,
        file: Annotated[list[UploadFile], File(description="one or more image files")],
        probabilities: Annotated[bool, Query(description="include the full vector")] = False,
) -> JSONBody:
    """JPEG/PNG/GIF/BMP files, any size -> top classes and scores per file."""
    if len(file) > settings.max_images_per_upload:
        raise InvalidInput(f"{len(file)} files in one upload; the limit is "
                           f"{settings.max_images_per_upload}")
    images = []
    for upload in file:
        data = await upload.read()
        if not data:
            raise InvalidInput(f"file {upload.filename!r} is empty")
        images.append({"b64": base64.b64encode(data).decode("ascii")})
    rows = await _run(registry, settings, model, "predict_image", images, probabilities)
    return JSONBody({"predictions": [{"file": u.filename, **row}
                                     for u, row in zip(file, rows, strict=True)]})


@router.post("/text", summary="Score raw texts",
             openapi_extra={"requestBody": {"required": True, "content": {"application/json": {
                 "schema": TextRequest.model_json_schema()}}}})
async def predict_text(model: str, request: Request, registry: RegistryDep,
                       settings: SettingsDep,
                       probabilities: Annotated[bool, Query()] = False) -> JSONBody:
    """{"texts": ["a review", ...]} -> the `predict_text` outputs per text."""
    payload = await read_json(request)
    try:
        texts = TextRequest.model_validate(payload).texts
    except ValueError as err:
        raise InvalidInput('expected {"texts": ["...", ...]} with at least one string: '
                           f"{str(err).splitlines()[0]}") from None
    rows = await _run(registry, settings, model, "predict_text", texts, probabilities)
    return JSONBody({"predictions": [{"text": t, **row}
                                     for t, row in zip(texts, rows, strict=True)]})

