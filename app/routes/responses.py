"""A JSON response whose body orjson writes, numpy arrays included."""

from __future__ import annotations

from typing import Any

from starlette.responses import Response

from app import codecs


class JSONBody(Response):
    media_type = "application/json"

    def render(self, content: Any) -> bytes:
        return codecs.dumps(content)
