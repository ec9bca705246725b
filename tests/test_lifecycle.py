"""Versions, hot reload, broken versions, overload and deadlines, on a real server."""

from __future__ import annotations

import asyncio
import base64
import json
import shutil

import httpx
import pytest

from tests.conftest import SAMPLES
from tests.helpers import copy_version, status, wait_for
from tests.server import running_server


def predict_version(url: str, version: int | None) -> httpx.Response:
    path = "/v1/models/mnist" + (f"/versions/{version}" if version else "") + ":predict"
    return httpx.post(url + path, json={"instances": [[0.0] * 784]}, timeout=30)


def test_versions_are_addressable_and_the_highest_is_default(models_dir, tmp_path):
    copy_version(models_dir, tmp_path, "mnist", 1, 1)
    copy_version(models_dir, tmp_path, "mnist", 1, 2)
    with running_server(tmp_path, poll_interval_s=0) as url:
        assert status(url, "mnist") == {"2": "AVAILABLE", "1": "AVAILABLE"}
        meta = httpx.get(url + "/v1/models/mnist/metadata").json()
        assert meta["model_spec"]["version"] == "2"
        for version in (1, 2, None):
            assert predict_version(url, version).status_code == 200
        tfdeploy = httpx.post(url + "/models/mnist/versions/1/serving_default/predict",
                              json={"instances": [[0.0] * 784]}, timeout=30)
        assert tfdeploy.status_code == 200
        assert predict_version(url, 3).status_code == 404


@pytest.mark.long
def test_new_versions_are_picked_up_and_broken_ones_skipped(models_dir, tmp_path):
    copy_version(models_dir, tmp_path, "mnist", 1, 1)
    with running_server(tmp_path, poll_interval_s=0.3, max_versions=1) as url:
        assert status(url, "mnist") == {"1": "AVAILABLE"}

        copy_version(models_dir, tmp_path, "mnist", 1, 2)
        wait_for(lambda: status(url, "mnist") == {"2": "AVAILABLE"})
        assert predict_version(url, None).status_code == 200
        assert predict_version(url, 1).status_code == 404  # released (max_versions=1)

        broken = tmp_path / "mnist" / "3"
        broken.mkdir()
        (broken / "saved_model.pb").write_bytes(b"half a file")
        wait_for(lambda: status(url, "mnist").get("3") == "END")
        body = httpx.get(url + "/v1/models/mnist").json()["model_version_status"]
        error = next(s for s in body if s["version"] == "3")["status"]
        assert error["error_code"] != "OK" and error["error_message"]
        assert status(url, "mnist")["2"] == "AVAILABLE"
        assert predict_version(url, None).status_code == 200
        assert httpx.get(url + "/readyz").status_code == 200

        shutil.rmtree(broken)  # fixed by a good copy: retried and served
        copy_version(models_dir, tmp_path, "mnist", 1, 3)
        wait_for(lambda: status(url, "mnist") == {"3": "AVAILABLE"})


@pytest.mark.long
def test_in_flight_requests_finish_when_their_version_is_released(models_dir, tmp_path):
    copy_version(models_dir, tmp_path, "inception_v3", 1, 1)
    image = {"b64": base64.b64encode((SAMPLES / "images" / "cat.jpg").read_bytes()).decode()}

    async def load_while_swapping(url: str):
        async with httpx.AsyncClient(timeout=60) as client:
            async def one():
                return await client.post(url + "/v1/models/inception_v3:predict",
                                         json={"signature_name": "predict_image",
                                               "instances": [image] * 4})
            first = [asyncio.create_task(one()) for _ in range(8)]
            await asyncio.sleep(0.2)
            await asyncio.to_thread(copy_version, models_dir, tmp_path, "inception_v3", 1, 2)
            second = [asyncio.create_task(one()) for _ in range(8)]
            return await asyncio.gather(*first, *second)

    with running_server(tmp_path, poll_interval_s=0.2, max_versions=1) as url:
        responses = asyncio.run(load_while_swapping(url))
        assert [r.status_code for r in responses] == [200] * 16
        wait_for(lambda: status(url, "inception_v3") == {"2": "AVAILABLE"})


@pytest.mark.long
def test_a_full_queue_is_refused_fast_with_retry_after(models_dir, tmp_path):
    copy_version(models_dir, tmp_path, "inception_v3", 1, 1)
    image = {"b64": base64.b64encode((SAMPLES / "images" / "koala.jpg").read_bytes()).decode()}

    async def burst(url: str):
        async with httpx.AsyncClient(timeout=60) as client:
            return await asyncio.gather(*[
                client.post(url + "/v1/models/inception_v3:predict",
                            json={"signature_name": "predict_image", "instances": [image]})
                for _ in range(24)])

    with running_server(tmp_path, poll_interval_s=0, max_queue_rows=2,
                        max_batch_size=1) as url:
        responses = asyncio.run(burst(url))
        codes = [r.status_code for r in responses]
        assert set(codes) == {200, 503}, codes
        refused = next(r for r in responses if r.status_code == 503)
        assert refused.headers["retry-after"] == "1"
        assert "queue full" in refused.json()["error"]
        assert httpx.get(url + "/readyz").status_code == 200


@pytest.mark.long
def test_batching_can_be_switched_off(models_dir, tmp_path):
    copy_version(models_dir, tmp_path, "mnist", 1, 1)

    async def fire(url: str):
        async with httpx.AsyncClient(timeout=60) as client:
            return await asyncio.gather(*[
                client.post(url + "/v1/models/mnist:predict", json={"instances": [[0.0] * 784]})
                for _ in range(32)])

    with running_server(tmp_path, poll_interval_s=0, batching_enabled="false") as url:
        assert all(r.status_code == 200 for r in asyncio.run(fire(url)))
        metrics = httpx.get(url + "/metrics").text
        line = next(m for m in metrics.splitlines() if m.startswith("tfserve_batch_size_bucket")
                    and 'signature="serving_default"' in m and 'le="1.0"' in m)
        count = next(m for m in metrics.splitlines() if m.startswith("tfserve_batch_size_count")
                     and 'signature="serving_default"' in m)
        assert float(line.split()[-1]) == float(count.split()[-1]) == 33  # with the warm-up


def test_missing_model_directory_is_a_clear_startup_error(tmp_path):
    log = tmp_path / "server.log"
    with pytest.raises(RuntimeError, match="exited"), running_server(
            tmp_path / "absent", log=log):
        pass
    assert "model directory" in log.read_text() and "does not exist" in log.read_text()


def test_json_logs_have_one_object_per_line_and_one_line_per_request(models_dir, tmp_path):
    copy_version(models_dir, tmp_path, "mnist", 1, 1)
    log = tmp_path / "server.log"
    with running_server(tmp_path, log=log, poll_interval_s=0, log_format="json",
                        log_level="INFO") as url:
        predict_version(url, None)
    ours = [line for line in log.read_text().splitlines() if line.startswith("{")]
    entries = [json.loads(line) for line in ours]  # TensorFlow's C++ lines are not ours
    assert {"time", "level", "logger", "message"} <= set(entries[0])
    assert any("loaded mnist version 1" in e["message"] for e in entries)
    assert any(e["logger"] == "uvicorn.access" and "POST /v1/models/mnist" in e["message"]
               for e in entries)


def test_an_empty_repository_is_not_ready_until_a_model_appears(models_dir, tmp_path):
    with running_server(tmp_path, wait_ready=False, poll_interval_s=0.3) as url:
        not_ready = httpx.get(url + "/readyz")
        assert not_ready.status_code == 503
        assert "no loadable model" in not_ready.json()["error"]
        busy = predict_version(url, None)
        assert busy.status_code == 503 and "not ready" in busy.json()["error"]
        copy_version(models_dir, tmp_path, "mnist", 1, 1)
        wait_for(lambda: httpx.get(url + "/readyz").status_code == 200)
        assert predict_version(url, None).status_code == 200


@pytest.mark.long
def test_a_hot_reload_under_64_clients_loses_nothing_and_mixes_no_versions(models_dir,
                                                                           tmp_path):
    import threading

    from tests import load

    repository = tmp_path / "models"
    copy_version(models_dir, repository, "mnist", 1, 1)
    with running_server(repository, poll_interval_s=0.2, max_versions=1) as url:
        body = json.dumps({"instances": [[0.5] * 784]}).encode()
        reloaded = threading.Timer(1.0, copy_version, (models_dir, repository, "mnist", 1, 2))
        reloaded.start()
        answers, seconds = asyncio.run(load.run(url, "/v1/models/mnist:predict", body,
                                                12_000, 64))
        reloaded.join()
        statuses = [a.status for a in answers]
        versions = [a.headers["x-model-version"] for a in answers]
        print(f"hot reload under 64 clients: {len(answers)} requests in {seconds:.1f}s, "
              f"{versions.count('1')} answered by version 1, {versions.count('2')} by 2")
        assert statuses == [200] * len(answers)
        assert set(versions) == {"1", "2"}  # each answer names exactly one version
        # the last answers all come from the new version, and the old one is released
        assert set(versions[-1000:]) == {"2"}
        wait_for(lambda: status(url, "mnist") == {"2": "AVAILABLE"})
        batches = httpx.get(url + "/metrics").text
        assert 'tfserve_batch_size_count{model="mnist",signature="serving_default",version="2"}' \
            in batches  # batches are per version: a batch never mixes them
