"""TFSERVE_WORKERS=2: two real server processes on one port, behind uvicorn's supervisor.

One server for the module (mnist only, an API key, fast polling); the last test stops it.
"""

from __future__ import annotations

import asyncio
import json
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


def monitored_rows(url: str) -> tuple[int, int]:
    """(rows seen by mnist's serving_default monitor, workers sharing) as one worker says."""
    doc = httpx.get(url + "/models/mnist/monitoring", headers=AUTH, timeout=10).json()
    (version,) = doc["versions"]
    return version["signatures"]["serving_default"]["rows_seen"], doc["workers"]


def test_monitoring_adds_up_every_workers_rows(server):
    def settled() -> tuple[int] | None:  # earlier tests' rows shared (every second)
        first = monitored_rows(server.url)[0]
        time.sleep(1.5)
        return (first,) if monitored_rows(server.url)[0] == first else None

    (before,) = wait_for(settled, timeout=30)
    outcomes = asyncio.run(predict_many(server.url, 200, connections=20, keep_alive=False))
    assert outcomes.count(200) == 200
    # each worker shares its counts every second (a worker's own are live, the others' up to
    # a second old); then every worker, whichever takes each new connection, says the sum
    wait_for(lambda: all(monitored_rows(server.url) == (before + 200, 2) for _ in range(6)),
             timeout=15)
    shared = {p.stem for p in (server.shared / "monitoring").glob("*.json")}
    assert {str(pid) for pid in server.worker_pids()} <= shared


def test_api_key_and_limits_hold_in_every_worker(server):
    outcomes = asyncio.run(predict_many(server.url, 40, headers={}))
    assert outcomes == [401] * 40
    too_many = {"instances": [[0.0] * 784] * 1025}
    for _ in range(8):  # fresh connections land on either worker
        response = httpx.post(server.url + PREDICT, json=too_many, headers=AUTH)
        assert response.status_code == 400 and "1024" in response.json()["error"]


def listening_pids(port: int) -> set[int]:
    """Processes holding a socket that listens on TCP `port` (from /proc: Linux)."""
    inodes = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            fields = line.split()
            if int(fields[1].rsplit(":", 1)[1], 16) == port and fields[3] == "0A":
                inodes.add(fields[9])
    pids = set()
    for fd_dir in Path("/proc").glob("[0-9]*/fd"):
        try:
            links = {os.readlink(fd) for fd in fd_dir.iterdir()}
        except OSError:
            continue  # gone, or not ours
        if any(f"socket:[{inode}]" in links for inode in inodes):
            pids.add(int(fd_dir.parent.name))
    return pids


def test_every_worker_serves_grpc_on_the_one_port(server):
    """SO_REUSEPORT: each worker has a listening socket of its own on the gRPC port, the
    kernel spreads new connections over them, and /metrics counts every worker's calls."""
    import grpc
    import numpy as np
    import tensorflow as tf
    from tensorflow_serving.apis import predict_pb2, prediction_service_pb2_grpc

    port = int(server.url.grpc.rsplit(":", 1)[1])
    assert set(server.worker_pids()) <= listening_pids(port)
    request = predict_pb2.PredictRequest()
    request.model_spec.name = "mnist"
    request.inputs["image_input"].CopyFrom(tf.make_tensor_proto(np.zeros((1, 784), np.float32)))
    before, by_worker = requests_counted(server.url), requests_by_worker(server.shared)
    calls = 0

    def both_answered() -> bool:
        nonlocal calls
        for _ in range(8):  # a new connection each: the kernel picks the worker
            with grpc.insecure_channel(server.url.grpc) as channel:
                stub = prediction_service_pb2_grpc.PredictionServiceStub(channel)
                reply = stub.Predict(request, timeout=30, metadata=[("x-api-key", KEY)])
            assert tf.make_ndarray(reply.outputs["prediction"]).shape == (1, 10)
            calls += 1
        now = requests_by_worker(server.shared)
        return all(now.get(str(pid), 0) > by_worker.get(str(pid), 0)
                   for pid in server.worker_pids())

    wait_for(both_answered, timeout=60)
    assert requests_counted(server.url) - before == calls


def requests_by_worker(shared: Path) -> dict[str, float]:
    """mnist's prediction requests counted by each worker, from its own metrics file."""
    from prometheus_client.mmap_dict import MmapedDict

    counts = {}
    for path in shared.glob("counter_*.db"):
        values = MmapedDict.read_all_values_from_file(str(path))
        counts[path.stem.split("_")[1]] = sum(
            value for key, value, *_ in values
            if json.loads(key)[1] == "tfserve_requests_total"
            and json.loads(key)[2].get("model") == "mnist")
    return counts


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
