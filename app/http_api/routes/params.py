"""Path and query values shared by the route modules, checked with a clear 400."""

from __future__ import annotations

from starlette.requests import Request

from app.errors import InvalidInput
from app.models.manager import ModelManager

_TRUE = {"1", "true", "t", "yes", "y", "on"}
_FALSE = {"0", "false", "f", "no", "n", "off"}


def parse_version(text: str) -> int:
    if not text.isdigit():
        raise InvalidInput(f"version must be an integer, got {text!r}")
    return int(text)


def resolve_version(manager: ModelManager, model: str, text: str) -> int:
    """A version number, or a version label of the model config (404 naming the known ones)."""
    return int(text) if text.isdigit() else manager.version_for_label(model, text)


def query_flag(request: Request, name: str) -> bool:
    """A boolean query parameter (absent: false), spelled as pydantic accepts booleans."""
    value = request.query_params.get(name)
    if value is None:
        return False
    if value.lower() in _TRUE:
        return True
    if value.lower() in _FALSE:
        return False
    raise InvalidInput(f"query parameter {name!r} must be true or false, got {value!r}")
