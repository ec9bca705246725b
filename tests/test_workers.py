"""TFSERVE_WORKERS=2: two real server processes on one port, behind uvicorn's supervisor.

One server for the module (mnist only, an API key, fast polling); the last test stops it.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import time
from pathlib import Path

import httpx
import pytest

from tests.helpers import copy_version, wait_for
from tests.server import start_server, wait_until

KEY = "s3cret-workers"
AUTH = {"Authorization": f"Bearer {KEY}"}
PREDICT = "/v1/models/mnist:predict"
BODY = {"instances": [[0.0] * 784]}


class Supervised:
    def __init__(self, process: subprocess.Popen, url: str, shared, repository, log):
        self.process, self.url, self.shared = process, url, shared
        self.repository, self.log = repository, log

    def readiness(self) -> httpx.Response:
        return httpx.get(self.url + "/readyz", timeout=5)

    def worker_pids(self) -> list[int]:
        return [w["pid"] for w in self.readiness().json()["workers"]]


@pytest.fixture(scope="module")
def server(models_dir, tmp_path_factory):
    root = tmp_path_factory.mktemp("workers")
    repository = root / "models"
    copy_version(models_dir, repository, "mnist", 1, 1)
    shared = root / "shared"
    log = root / "server.log"
    process, url = start_server(repository, log, env={"PROMETHEUS_MULTIPROC_DIR": str(shared)},
                                workers=2, api_key=KEY, poll_interval_s=0.5, log_level="INFO")
    wait_until(url, process, "/readyz")
    yield Supervised(process, url, shared, repository, log)
    if process.poll() is None:
        process.kill()
        process.wait()


async def predict_many(url: str, count: int, connections: int = 16,
                       headers: dict | None = None, keep_alive: bool = True) -> list:
    """`count` predictions over `connections` keep-alive connections (or a new connection
    each): status codes, or the transport error's name for a request that got no answer."""
    limits = httpx.Limits(max_connections=connections,
                          max_keepalive_connections=connections if keep_alive else 0)
    async with httpx.AsyncClient(base_url=url, timeout=30, limits=limits) as client:
        gate = asyncio.Semaphore(connections)

        async def one() -> int | str:
            async with gate:
                try:
                    response = await client.post(PREDICT, json=BODY,
                                                 headers=AUTH if headers is None else headers)
                    return response.status_code
                except httpx.HTTPError as err:
                    return type(err).__name__

        return await asyncio.gather(*(one() for _ in range(count)))


def requests_counted(url: str) -> float:
    text = httpx.get(url + "/metrics").text
    return sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines()
               if line.startswith("tfserve_requests_total{") and 'model="mnist"' in line)


def test_ready_only_with_every_worker_and_requests_counted_once(server):
    body = server.readiness().json()
    assert body["status"] == "ready"
    assert len(body["workers"]) == 2 and all(w["ready"] for w in body["workers"])
    before = requests_counted(server.url)
    outcomes = asyncio.run(predict_many(server.url, 400))
    assert outcomes.count(200) == 400
    # whichever worker answered /metrics, it counts every worker's requests, once
    assert requests_counted(server.url) - before == 400
    # and both workers serve: each writes its own counter file. The kernel hands a new
    # connection to whichever worker accepts first, so keep-alive connections may all land
    # on one worker; new connections, batch after batch, reach both.
    workers = {str(pid) for pid in server.worker_pids()}

    def served_by() -> set[str]:
        return {p.stem.split("_")[1] for p in server.shared.glob("counter_*.db")}

    def both_served() -> bool:
        if workers <= served_by():
            return True
        asyncio.run(predict_many(server.url, 32, connections=32, keep_alive=False))
        return workers <= served_by()

    wait_for(both_served, timeout=60)


def test_api_key_and_limits_hold_in_every_worker(server):
    outcomes = asyncio.run(predict_many(server.url, 40, headers={}))
    assert outcomes == [401] * 40
    too_many = {"instances": [[0.0] * 784] * 1025}
    for _ in range(8):  # fresh connections land on either worker
        response = httpx.post(server.url + PREDICT, json=too_many, headers=AUTH)
        assert response.status_code == 400 and "1024" in response.json()["error"]


def test_hot_reload_reaches_every_worker(server, models_dir):
    copy_version(models_dir, server.repository, "mnist", 1, 2)

    def every_answer_serves_v2() -> bool:
        for _ in range(12):  # fresh connections, either worker
            states = {s["version"]: s["state"] for s in httpx.get(
                server.url + "/v1/models/mnist", headers=AUTH).json()["model_version_status"]}
            if states.get("2") != "AVAILABLE":
                return False
        return True

    wait_for(every_answer_serves_v2, timeout=60)


@pytest.mark.long
def test_a_killed_worker_is_replaced_and_costs_only_its_in_flight_requests(server):
    victim = server.worker_pids()[0]

    async def load_and_kill() -> list:
        task = asyncio.create_task(predict_many(server.url, 3000, connections=16))
        await asyncio.sleep(1.0)
        os.kill(victim, signal.SIGKILL)
        return await task

    outcomes = asyncio.run(load_and_kill())
    lost = [o for o in outcomes if o != 200]
    print(f"worker killed under 16 connections: {len(lost)} of {len(outcomes)} requests "
          f"failed: {sorted(set(map(str, lost)))}")
    # only requests on the dead worker's connections (at most one each) can fail
    assert len(lost) <= 16 and all(isinstance(o, str) for o in lost), lost
    assert not server.readiness().is_success or victim not in server.worker_pids()
    replaced = wait_for(lambda: server.readiness().is_success and server.worker_pids(),
                        timeout=120)
    assert victim not in replaced and len(replaced) == 2
    assert asyncio.run(predict_many(server.url, 200)).count(200) == 200


def test_sigterm_drains_every_worker_and_exits_0(server):
    async def load_and_stop() -> list:
        task = asyncio.create_task(predict_many(server.url, 600, connections=32))
        await asyncio.sleep(0.3)
        server.process.send_signal(signal.SIGTERM)
        return await task

    started = time.monotonic()
    outcomes = asyncio.run(load_and_stop())
    assert server.process.wait(timeout=60) == 0
    assert time.monotonic() - started < 60
    # answered requests were all answered properly; the rest never reached a worker
    # (refused connections once the socket closed, or the keep-alive race)
    assert all(o == 200 or isinstance(o, str) for o in outcomes), set(map(str, outcomes))
    assert outcomes.count(200) > 0
    log = server.log.read_text()
    assert log.count("Application shutdown complete") == 2
    assert not any(server.shared.glob("workers/*.json"))  # every worker withdrew


def test_a_dead_worker_not_yet_reaped_counts_as_dead():
    import sys

    from app.workers import alive

    child = subprocess.Popen([sys.executable, "-c", "pass"])
    wait_for(lambda: Path(f"/proc/{child.pid}/stat").read_text().split(") ")[1][0] == "Z",
             timeout=30)  # exited, not yet waited for: a zombie
    assert not alive(child.pid)
    child.wait()
    assert not alive(child.pid) and alive(os.getpid())


def test_a_withdrawn_worker_publishes_nothing_more(tmp_path):
    # at shutdown the board is left first, then the models are released, which changes
    # readiness again: that publish left a stopped worker's file on the board
    from app.workers import WorkerBoard

    board = WorkerBoard(tmp_path, expected=2)
    board.publish(True, "")
    assert board.mine.exists()
    board.withdraw()
    board.publish(False, "not ready: models are loading")
    assert not board.mine.exists() and board.workers() == []
