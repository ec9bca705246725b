"""Every request traceable: X-Request-ID in and out, in error bodies and log lines, and the
request log (real servers over real sockets; the writer's failure modes in-process)."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import signal
import time
from pathlib import Path

import httpx
import numpy as np
import pytest

from app.serving.request_log import PAYLOAD_BYTES, RequestLog, payload
from tests import load
from tests.helpers import wait_for
from tests.server import running_server

DIGIT = {"instances": [[0.5] * 784]}


@pytest.fixture(scope="module")
def mnist_only(models_dir, tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("mnist-only")
    shutil.copytree(models_dir / "mnist", folder / "mnist")
    return folder


def test_the_request_id_comes_back_everywhere_and_names_the_log_lines(mnist_only, tmp_path):
    log = tmp_path / "server.log"
    with running_server(mnist_only, log=log, poll_interval_s=0, log_level="INFO",
                        log_format="json", max_body_bytes=100_000) as url:
        given = httpx.post(url + "/v1/models/mnist:predict", json=DIGIT,
                           headers={"X-Request-ID": "order-42/a"})
        assert given.headers["x-request-id"] == "order-42/a"
        made = httpx.post(url + "/v2/models/mnist/infer", json={"inputs": []})
        assert made.status_code == 400
        assert len(made.headers["x-request-id"]) == 32  # generated
        assert made.json()["request_id"] == made.headers["x-request-id"]
        for bad in ("a b", "x" * 129, "ünï"):
            response = httpx.get(url + "/healthz", headers={"X-Request-ID": bad.encode()})
            assert response.headers["x-request-id"] != bad
        too_big = httpx.post(url + "/v1/models/mnist:predict", content=b"x" * 200_000,
                             headers={"X-Request-ID": "big-1",
                                      "Content-Type": "application/json"})
        assert too_big.status_code == 413 and too_big.json()["request_id"] == "big-1"
        missing = httpx.get(url + "/v1/models/nope", headers={"X-Request-ID": "nf-1"})
        assert missing.json() == {"error": missing.json()["error"], "request_id": "nf-1"}
    lines = [json.loads(line) for line in log.read_text().splitlines()
             if line.startswith("{")]
    access = [x for x in lines if x["logger"] == "uvicorn.access"]
    assert any(x.get("request_id") == "order-42/a" and "/v1/models/mnist" in x["message"]
               for x in access)


def _throughput(url: str, count: int = 3000, prefix: str = "warm") -> float:
    body = json.dumps(DIGIT).encode()
    answers, seconds = asyncio.run(load.run(url, "/v1/models/mnist:predict", body, count, 64,
                                            lambda i: {"X-Request-ID": f"{prefix}-{i}"}))
    assert all(a.status == 200 for a in answers)
    return count / seconds


@pytest.mark.long
def test_the_request_log_costs_little_and_holds_every_request_once(mnist_only, tmp_path):
    request_log = tmp_path / "requests.jsonl"
    with running_server(mnist_only, poll_interval_s=0) as plain, \
            running_server(mnist_only, poll_interval_s=0, request_log=request_log) as logged:
        for url in (plain, logged):  # warm both
            _throughput(url, 200)
        rates = {plain: [], logged: []}
        for run in range(3):  # alternated, best of three: the machine's speed drifts
            for url in (plain, logged):
                rates[url].append(_throughput(url, prefix=f"run{run}"))
        best_plain, best_logged = max(rates[plain]), max(rates[logged])
        print(f"64 clients: {best_plain:.0f} req/s without the request log, "
              f"{best_logged:.0f} with it ({best_logged / best_plain:.2f}x)")
        # issue 13's 10% budget is measured side by side with bench.ab (0.98x, 1.01x); the
        # suite's shared 2-core machine is noisier than that, so it only catches a gross
        # regression, such as writing on the event loop
        assert best_logged >= 0.5 * best_plain
        wait_for(lambda: len(request_log.read_text().splitlines()) >= 9200, timeout=30)
    lines = [json.loads(x) for x in request_log.read_text().splitlines()]
    ids = [x["request_id"] for x in lines if x["request_id"].startswith("run")]
    assert len(lines) == 9200  # the warm-up's 200 too
    # each request the logged server answered, exactly once
    assert sorted(ids) == sorted(f"run{run}-{i}" for run in range(3) for i in range(3000))
    line = lines[0]
    assert {k: line[k] for k in ("model", "version", "signature", "protocol", "rows",
                                 "status")} == {"model": "mnist", "version": 1,
                                                "signature": "serving_default",
                                                "protocol": "tfserving", "rows": 1,
                                                "status": "ok"}
    assert "inputs" not in line and line["latency_ms"] > 0


def test_payloads_sampling_and_sighup_reopen(mnist_only, tmp_path):
    request_log = tmp_path / "requests.jsonl"
    with running_server(mnist_only, poll_interval_s=0, request_log=request_log,
                        request_log_payloads="true") as url:
        httpx.post(url + "/v1/models/mnist:predict", json=DIGIT, headers={"X-Request-ID": "p1"})
        httpx.post(url + "/v1/models/mnist:predict", json={"instances": [[2.0] * 783]},
                   headers={"X-Request-ID": "p2"})  # refused before the model: still logged
        name = httpx.get(url + "/v2/models/mnist").json()["inputs"][0]["name"]
        httpx.post(url + "/v2/models/mnist/infer", headers={"X-Request-ID": "p3"}, json={
            "inputs": [{"name": name, "datatype": "FP32", "shape": [1, 784],
                        "data": [0.5] * 784}]})
        wait_for(lambda: request_log.exists() and request_log.read_text().count("\n") >= 3)
        rotated = tmp_path / "requests.jsonl.old"
        request_log.rename(rotated)  # what logrotate does, then SIGHUP
        os.kill(url.pid, signal.SIGHUP)
        time.sleep(0.3)
        httpx.post(url + "/v1/models/mnist:predict", json=DIGIT, headers={"X-Request-ID": "p4"})
        wait_for(lambda: request_log.exists() and "p4" in request_log.read_text())
    lines = {x["request_id"]: x for x in map(json.loads, rotated.read_text().splitlines())}
    assert lines["p1"]["inputs"]["image_input"] == [[0.5] * 784]  # 3 KiB: under the cut
    assert len(lines["p1"]["outputs"]["prediction"][0]) == 10
    assert lines["p2"]["status"] == "400" and lines["p3"]["protocol"] == "v2"
    assert [json.loads(x)["request_id"] for x in request_log.read_text().splitlines()] == ["p4"]


def test_payload_cuts_large_arrays_and_shows_bytes():
    small = np.zeros((1, 4), np.float32)
    large = np.zeros((1, PAYLOAD_BYTES), np.float32)
    texts = np.array([b"good film", b"\xff\xd8"], dtype=object)
    shown = payload({"a": small, "b": large, "c": texts})
    assert shown["a"] == [[0.0] * 4] and shown["b"]["truncated"] is True
    assert shown["c"] == ["good film", {"b64": "/9g="}]


def test_the_writer_restarts_after_a_failure_and_keeps_its_lines(tmp_path):
    target = tmp_path / "requests.jsonl"
    request_log = RequestLog(str(target), max_bytes=200)
    real_write = request_log._write
    failures = []

    def write_failing_once(data: bytes) -> None:
        if not failures:
            failures.append(data)
            raise OSError("disk hiccup")
        real_write(data)

    request_log._write = write_failing_once
    request_log.start()
    for i in range(20):
        request_log.add({"request_id": f"r{i}", "padding": "x" * 20})
    request_log.close()
    assert request_log.restarts == 1
    # past max_bytes the file was rotated to requests.jsonl.1
    written = (tmp_path / "requests.jsonl.1").read_text() + (
        target.read_text() if target.exists() else "")
    assert sorted(json.loads(x)["request_id"] for x in written.splitlines()) == sorted(
        f"r{i}" for i in range(20))


def test_a_full_queue_drops_lines_and_counts_them(tmp_path):
    dropped = []
    request_log = RequestLog(str(tmp_path / "r.jsonl"), on_drop=lambda: dropped.append(1),
                             max_lines=2)  # the writer is not started: nothing drains
    for i in range(5):
        request_log.add({"request_id": i})
    assert len(dropped) == 3
