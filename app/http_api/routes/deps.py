"""FastAPI dependencies of the routes (async: a sync one would cost a thread hop)."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from app.models.manager import ModelManager


async def get_manager(request: Request) -> ModelManager:
    return request.app.state.manager


ManagerDep = Annotated[ModelManager, Depends(get_manager)]
