"""A real server for tests: `python -m app` (uvicorn) in a subprocess, on a free port."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]


class ServerURL(str):
    """The base URL, carrying the server's process id (for memory readings) and its log."""

    pid: int
    log: Path | None = None
    grpc: str  # host:port of its gRPC server ("" when off)


# The settings of the session's shared server (tests/conftest.py: shared_server)
SHARED_SETTINGS = {"batch_timeout_ms": 10, "max_body_bytes": 3_000_000, "poll_interval_s": 0}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start_server(models_dir: Path, log: Path | None = None, env: dict[str, str] | None = None,
                 **settings: object) -> tuple[subprocess.Popen, ServerURL]:
    """`python -m app` with TFSERVE_* settings (and other variables in `env`) on a free port,
    its output to `log`; returns the process and its base URL, without waiting. gRPC listens
    on a free port of its own (`url.grpc`) unless `grpc_port` says otherwise."""
    port = free_port()
    grpc_port = int(settings.pop("grpc_port", free_port()))
    full_env = {**os.environ, "TFSERVE_MODEL_DIR": str(models_dir), "TFSERVE_PORT": str(port),
                "TFSERVE_HOST": "127.0.0.1", "TFSERVE_LOG_LEVEL": "WARNING",
                "TFSERVE_GRPC_PORT": str(grpc_port),
                **{f"TFSERVE_{k.upper()}": str(v) for k, v in settings.items()}, **(env or {})}
    out = open(log, "w") if log else subprocess.DEVNULL  # noqa: SIM115
    try:
        process = subprocess.Popen([sys.executable, "-m", "app"], cwd=ROOT, env=full_env,
                                   stdout=out, stderr=subprocess.STDOUT)
    finally:
        if log:
            out.close()  # the child has its own descriptor
    url = ServerURL(f"http://127.0.0.1:{port}")
    url.pid = process.pid
    url.grpc = f"127.0.0.1:{grpc_port}" if grpc_port else ""
    return process, url


@contextlib.contextmanager
def running_server(models_dir: Path, wait_ready: bool = True, log: Path | None = None,
                   env: dict[str, str] | None = None, **settings: object) -> Iterator[ServerURL]:
    """Start the service with TFSERVE_* settings (and other variables in `env`); yield its
    base URL; SIGTERM it after."""
    process, url = start_server(models_dir, log, env, **settings)
    try:
        wait_until(url, process, "/readyz" if wait_ready else "/healthz")
        yield url
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()


def wait_until(url: str, process: subprocess.Popen, path: str, timeout: float = 180) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"server exited with {process.returncode} before {path} was OK")
        with contextlib.suppress(httpx.HTTPError):
            if httpx.get(url + path, timeout=2).status_code == 200:
                return
        time.sleep(0.2)
    raise TimeoutError(f"{url}{path} not OK within {timeout}s")
