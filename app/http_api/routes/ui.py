"""The model pages for people: `/ui` lists the models, `/ui/{model}` shows one's model card
and a playground.

  GET /ui, /ui/{model}          the page (static HTML; its script reads the card below)
  GET /models/{model}/card      the model card as JSON: task, labels, data, training, signatures
                                (inputs with what they expect), versions, warning, playgrounds

The page is plain HTML, CSS and JavaScript shipped in the package (app/ui/): no CDN, no build
step. It is open, like Swagger UI; the data it reads is behind the API key when one is set,
and the page asks for the key (kept in the tab's sessionStorage only). Which playground a
model gets is decided here, from what its signatures take, so that the page stays generic:
`digit` (one float input of 28x28 values), `photo` (a `predict_image` signature, the upload
route's), `text` (a `predict_text` signature), else `json` (an editor holding the example).
"""

from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter, FastAPI
from fastapi.staticfiles import StaticFiles
from starlette.responses import FileResponse

from app.errors import NotFound
from app.http_api.routes.deps import ManagerDep
from app.http_api.routes.ops import history_url
from app.models import trainer_status
from app.models.servable import Servable
from app.models.signatures import SignatureInfo

UI_FILES = Path(__file__).resolve().parents[2] / "ui"
STATIC = "/static/ui"
DIGIT_ROWS = ([784], [28, 28], [28, 28, 1])  # a 28x28 grey image, flat or not

pages = APIRouter(include_in_schema=False)
router = APIRouter(tags=["models"])


@pages.get("/ui")
async def page() -> FileResponse:
    return FileResponse(UI_FILES / "page.html", media_type="text/html")


@pages.get("/ui/{model}")
async def model_page(model: str, manager: ManagerDep) -> FileResponse:
    """The same page; 404 for a model the server neither serves, failed to load, nor has a
    trainer building (while the first models load, every name may still come)."""
    known = (model in manager.servables or model in manager.failures or not manager.ready
             or model in trainer_status.read(manager.repository.model_dir))
    return FileResponse(UI_FILES / "page.html", media_type="text/html",
                        status_code=200 if known else 404)


def install(app: FastAPI) -> None:
    app.mount(STATIC, StaticFiles(directory=UI_FILES), name="ui")
    app.include_router(pages)


@router.get("/models/{model}/card", summary="Model card")
async def card(model: str, manager: ManagerDep) -> dict:
    """What a person needs to judge and try the model's highest version: the export's own
    model card and metrics, its signatures and the playgrounds they allow."""
    versions = manager.servables.get(model)
    if not versions:
        manager.get(model)  # the same 404 / 503 as every model route
        raise NotFound(f"model {model!r} is not served")
    servable = versions[max(versions)]
    card = servable.card or {}
    return {
        "model": model,
        "version": servable.version,
        "versions": [{"version": v, "state": s.state.value, "warning": s.warning}
                     for v, s in sorted(versions.items(), reverse=True)],
        "task": card.get("task"),
        "data": card.get("data") or {},
        "training": servable.training_metrics or {},
        "labels": servable.labels,
        "warning": servable.warning,
        "training_history": history_url(servable),
        "signatures": {name: _signature(info, servable.input_notes(name))
                       for name, info in sorted(servable.signatures.items())},
        "playgrounds": playgrounds(servable),
    }


def _signature(info: SignatureInfo, notes: dict) -> dict:
    def tensors(found: dict, with_notes: bool) -> list[dict]:
        return [{"name": k, "dtype": t.dtype, "shape": list(t.shape or []),
                 **({"note": notes[k]} if with_notes and k in notes else {})}
                for k, t in found.items()]

    return {"inputs": tensors(info.inputs, True), "outputs": tensors(info.outputs, False),
            "predict": f"/models/{{model}}/{info.name}/predict"}


def playgrounds(servable: Servable) -> list[dict]:
    """The playgrounds the signatures allow, best first; `json` only when none other fits."""
    found = []
    for name, info in sorted(servable.signatures.items()):
        digit = _digit_input(info)
        if digit is not None:
            found.append({"kind": "digit", "signature": name, "input": digit,
                          "shape": list(info.inputs[digit].shape or []),
                          "output": next(iter(info.outputs))})
    if "predict_image" in servable.signatures:
        found.append({"kind": "photo", "signature": "predict_image",
                      "route": f"/models/{servable.name}/predict/image"})
    if "predict_text" in servable.signatures:
        found.append({"kind": "text", "signature": "predict_text",
                      "route": f"/models/{servable.name}/predict/text"})
    if not found:
        name = "serving_default" if "serving_default" in servable.signatures else \
            sorted(servable.signatures)[0]
        found.append({"kind": "json", "signature": name,
                      "example": f"/models/{servable.name}/{name}/example",
                      "route": f"/models/{servable.name}/{name}/predict"})
    return found


def _digit_input(info: SignatureInfo) -> str | None:
    """The one float input of 28x28 values per row ([-1, 784], [-1, 28, 28(, 1)]), if any."""
    if len(info.inputs) != 1:
        return None
    (name, tensor), = info.inputs.items()
    if not tensor.dtype.startswith("float") or not tensor.shape or tensor.shape[0] != -1:
        return None
    return name if list(tensor.shape[1:]) in DIGIT_ROWS else None
