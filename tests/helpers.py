"""Helpers shared by test modules: model folders, status reads, waiting, in-process apps."""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import time
from collections.abc import AsyncIterator
from pathlib import Path

import httpx


def copy_version(models_dir: Path, target: Path, model: str, version: int,
                 as_version: int) -> Path:
    """Copy like a deployment tool should: to a hidden folder, then rename into place."""
    staging = target / model / f".{as_version}.incoming"
    shutil.copytree(models_dir / model / str(version), staging)
    final = target / model / str(as_version)
    staging.rename(final)
    return final


def status(url: str, model: str) -> dict[str, str]:
    body = httpx.get(f"{url}/v1/models/{model}").json()
    return {s["version"]: s["state"] for s in body["model_version_status"]}


def wait_for(condition, timeout: float = 60.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.2)
    raise AssertionError("condition not met in time")


def only(models_dir: Path, target: Path, *models: str) -> Path:
    """A repository of links to some models of `models_dir` (loads in a fraction of the time)."""
    target.mkdir(parents=True, exist_ok=True)
    for model in models:
        (target / model).symlink_to(models_dir / model, target_is_directory=True)
    return target


@contextlib.asynccontextmanager
async def in_process(models_dir: Path, **settings: object) -> AsyncIterator[httpx.AsyncClient]:
    """The app of `create_app` with its lifespan, called in-process through
    httpx.ASGITransport: for tests where a real socket adds nothing. Ready on entry."""
    from app.main import create_app
    from app.settings import Settings

    settings.setdefault("grpc_port", 0)  # in the test process: no gRPC listener
    app = create_app(Settings(model_dir=models_dir, poll_interval_s=0, **settings))
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://tfserve",
                                     timeout=60) as client:
            deadline = time.monotonic() + 120
            while (await client.get("/readyz")).status_code != 200:
                if time.monotonic() > deadline:
                    raise TimeoutError("the in-process app did not become ready")
                await asyncio.sleep(0.05)
            client.app = app  # type: ignore[attr-defined]
            yield client
