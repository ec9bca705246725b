"""Servers under test, each its own process on a free loopback port."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx

from bench import wrk

ROOT = Path(__file__).resolve().parents[1]


@dataclass
class Running:
    url: str
    pid: int
    ready_s: float  # from process start to its readiness path answering 200


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextlib.contextmanager
def serve(command: list[str], port: int, ready_path: str, env: dict[str, str] | None = None,
          timeout: float = 300, cwd: Path = ROOT) -> Iterator[Running]:
    """Start `command`, wait until GET `ready_path` answers 200, yield it, stop it (SIGTERM)
    with every process it started: LitServe's workers outlived their parent's SIGKILL and
    kept polling, a load on every later measurement."""
    started = time.perf_counter()
    process = subprocess.Popen(command, cwd=cwd, env={**os.environ, **(env or {})},
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                               start_new_session=True)  # its own process group
    url = f"http://127.0.0.1:{port}"
    try:
        while True:
            if process.poll() is not None:
                raise RuntimeError(f"{command} exited with {process.returncode}")
            if time.perf_counter() - started > timeout:
                raise TimeoutError(f"{command} not ready within {timeout}s")
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(url + ready_path, timeout=2).status_code == 200:
                    break
            time.sleep(0.05)
        yield Running(url, process.pid, time.perf_counter() - started)
    finally:
        _signal_group(process.pid, signal.SIGTERM)
        with contextlib.suppress(subprocess.TimeoutExpired):
            process.wait(timeout=30)
        _signal_group(process.pid, signal.SIGKILL)  # whatever is left of the group
        process.wait()


def _signal_group(group: int, number: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(group, number)


@contextlib.contextmanager
def our_server(models_dir: Path, source: Path = ROOT, **settings: object) -> Iterator[Running]:
    """`python -m app` of the tree at `source` (default: this one) with TFSERVE_* settings."""
    port = free_port()
    env = {"TFSERVE_MODEL_DIR": str(models_dir), "TFSERVE_PORT": str(port),
           "TFSERVE_HOST": "127.0.0.1", "TFSERVE_LOG_LEVEL": "WARNING",
           "TFSERVE_POLL_INTERVAL_S": "0",
           **{f"TFSERVE_{k.upper()}": str(v) for k, v in settings.items()}}
    with serve([sys.executable, "-m", "app"], port, "/readyz", env, cwd=source) as running:
        yield running


def rss_mib(pid: int) -> float:
    """Resident memory of a process and its children (LitServe runs workers)."""
    total = 0.0
    for process in [pid, *descendants(pid)]:
        with contextlib.suppress(OSError):
            for line in Path(f"/proc/{process}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1]) / 1024
    return total


def event_loop_cpu_s(pid: int) -> float:
    """CPU time (user + system) of the main threads of a server and its worker processes,
    where their event loops run: what a Python server runs out of first (Linux /proc)."""
    total = 0.0
    for process in [pid, *descendants(pid)]:
        with contextlib.suppress(OSError):
            stat = Path(f"/proc/{process}/task/{process}/stat").read_text()
            fields = stat.rsplit(")", 1)[1].split()
            total += (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    return total


def drive(pid: int, url: str, body: wrk.Body, connections: int, seconds: float) -> wrk.Load:
    """`wrk.drive` against the server of process `pid`, with its event-loop time per request."""
    before = event_loop_cpu_s(pid)
    load = wrk.drive(url, body, connections, seconds)
    if load.requests:
        load.loop_us = 1e6 * (event_loop_cpu_s(pid) - before) / load.requests
    return load


def descendants(pid: int) -> list[int]:
    """The process ids below `pid`, children and theirs."""
    found = []
    with contextlib.suppress(OSError):
        for task in Path(f"/proc/{pid}/task").iterdir():
            for child in map(int, (task / "children").read_text().split()):
                found += [child, *descendants(child)]
    return found
