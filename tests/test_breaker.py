"""A failing model costs one call per batch, and its circuit breaker refuses at once.

Unit tests on the breaker and the batcher, then a real server on a real SavedModel that
counts its own calls (in a file it writes) and breaks while a file it reads is missing, as a
model whose asset vanished would.
"""

from __future__ import annotations

import asyncio
import shutil
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import numpy as np
import pytest
import tensorflow as tf
from prometheus_client.parser import text_string_to_metric_families

from app.errors import ModelFailed
from app.serving.batching import Batcher
from app.serving.breaker import BreakerState, CircuitBreaker, ModelUnavailable
from tests.server import running_server

# the breaker alone ---------------------------------------------------------------------------


def test_the_breaker_opens_after_k_failures_probes_once_and_closes():
    trips = []
    breaker = CircuitBreaker("m/1", failures_to_open=2, cooldown_s=0.2,
                             on_trip=lambda: trips.append(1))
    failure = ModelFailed("m/1: the model failed: NotFoundError")
    breaker.admit()
    breaker.record(failure)
    assert breaker.healthy
    breaker.record(failure)
    assert breaker.state is BreakerState.OPEN and trips == [1]
    with pytest.raises(ModelUnavailable) as refused:
        breaker.admit()
    assert refused.value.status == 503 and refused.value.headers["Retry-After"] == "1"
    assert "2 batches in a row" in refused.value.message and not breaker.may_run()
    time.sleep(0.25)
    breaker.admit()  # cooled down: half-open, one probe
    assert breaker.may_run() and not breaker.may_run()
    with pytest.raises(ModelUnavailable):
        breaker.admit()  # while the probe runs
    breaker.record(failure)  # the probe failed: open again
    assert breaker.state is BreakerState.OPEN and trips == [1, 1]
    time.sleep(0.25)
    breaker.admit()
    assert breaker.may_run()
    breaker.record(None)
    assert breaker.healthy and breaker.failures == 0


def test_a_broken_model_fails_each_batch_once():
    calls = []

    def broken(inputs):
        calls.append(len(inputs["x"]))
        raise RuntimeError("a corrupt variable")

    async def scenario():
        with ThreadPoolExecutor(2) as executor:
            batcher = Batcher(broken, executor, max_batch_size=64, batch_timeout_ms=50,
                              max_queue_rows=1000, name="m/1/s",
                              breaker=CircuitBreaker("m/1", 1000, 10))
            batcher.start()
            deadline = time.monotonic() + 10
            results = await asyncio.gather(
                *(batcher.submit({"x": np.ones((1, 2), np.float32)}, 1, deadline)
                  for _ in range(64)), return_exceptions=True)
            await batcher.close()
            return results

    results = asyncio.run(scenario())
    assert all(isinstance(r, ModelFailed) for r in results)
    assert sum(calls) == 64 and len(calls) <= 2  # one call per batch, no retries alone


# a real SavedModel that breaks ----------------------------------------------------------------


def flaky_model(folder: Path, count_file: Path, flag_file: Path) -> None:
    """x [-1, 2] -> y = 2x. Each call writes its number to `count_file`; a call fails with
    NotFoundError while `flag_file` is missing, and with InvalidArgument for negative x."""

    class Flaky(tf.Module):
        def __init__(self):
            super().__init__()
            self.calls = tf.Variable(0, dtype=tf.int64)

        @tf.function(input_signature=[tf.TensorSpec([None, 2], tf.float32, name="x")])
        def serve(self, x):
            number = tf.strings.as_string(self.calls.assign_add(1))
            written = tf.io.write_file(str(count_file), number)
            # the file name depends on the call (an empty suffix), so that the graph optimiser
            # cannot fold the read into a constant at the first call
            path = tf.strings.join([str(flag_file), tf.strings.substr(number, 0, 0)])
            with tf.control_dependencies([written]):
                check = tf.debugging.assert_non_negative(x, message="x must be >= 0")
                with tf.control_dependencies([check]):
                    flag = tf.io.read_file(path)
            return {"y": x * 2.0 + 0.0 * tf.cast(tf.strings.length(flag), tf.float32)}

    model = Flaky()
    tf.saved_model.save(model, str(folder / "flaky" / "1"),
                        signatures={"serving_default": model.serve})


class Flaky:
    def __init__(self, root: Path, models_dir: Path):
        self.count_file, self.flag_file = root / "calls", root / "flag"
        self.flag_file.write_text("ok")  # present while it loads and warms up
        self.models = root / "models"
        flaky_model(self.models, self.count_file, self.flag_file)
        shutil.copytree(models_dir / "mnist" / "1", self.models / "mnist" / "1")

    def calls(self) -> int:
        return int(self.count_file.read_text())

    def break_(self) -> None:
        self.flag_file.unlink()

    def mend(self) -> None:
        self.flag_file.write_text("ok")


def _post(url: str, x: list, client: httpx.Client | None = None) -> httpx.Response:
    return (client or httpx).post(url + "/v1/models/flaky:predict", json={"instances": [x]},
                                  timeout=30)


def _metric(url: str, name: str, **labels: str) -> float:
    text = httpx.get(url + "/metrics").text
    return sum(s.value for family in text_string_to_metric_families(text) for s in family.samples
               if s.name == name and all(s.labels.get(k) == v for k, v in labels.items()))


def _concurrent(url: str, xs: list[list[float]]) -> list[httpx.Response]:
    async def run():
        async with httpx.AsyncClient(timeout=30) as client:
            return await asyncio.gather(*(client.post(url + "/v1/models/flaky:predict",
                                                      json={"instances": [x]}) for x in xs))

    return asyncio.run(run())


@pytest.mark.long
def test_a_model_that_always_fails_costs_one_call_per_batch(models_dir, tmp_path):
    flaky = Flaky(tmp_path, models_dir)
    with running_server(flaky.models, poll_interval_s=0, batch_timeout_ms=50,
                        breaker_failures=1000) as url:
        flaky.break_()
        calls, batches = flaky.calls(), _metric(url, "tfserve_batch_size_count", model="flaky")
        answers = _concurrent(url, [[1.0, 2.0]] * 64)
        assert [r.status_code for r in answers] == [500] * 64
        assert "NotFoundError" in answers[0].json()["error"]
        new_batches = _metric(url, "tfserve_batch_size_count", model="flaky") - batches
        assert flaky.calls() - calls == new_batches <= 4  # not 64 + 1


@pytest.mark.long
def test_one_bad_input_fails_alone_and_its_batch_mates_are_answered(models_dir, tmp_path):
    flaky = Flaky(tmp_path, models_dir)
    with running_server(flaky.models, poll_interval_s=0, batch_timeout_ms=50) as url:
        xs = [[float(i), 1.0] for i in range(16)]
        xs[5] = [-1.0, 1.0]
        answers = _concurrent(url, xs)
        assert answers[5].status_code == 400 and "x must be >= 0" in answers[5].json()["error"]
        for i, answer in enumerate(answers):
            if i != 5:
                assert answer.json()["predictions"] == [[2.0 * i, 2.0]]


@pytest.mark.long
def test_the_breaker_of_a_broken_version_refuses_at_once_and_recovers(models_dir, tmp_path):
    flaky = Flaky(tmp_path, models_dir)
    with running_server(flaky.models, poll_interval_s=0, breaker_failures=3,
                        breaker_cooldown_s=1.5) as url:
        flaky.break_()
        assert [_post(url, [1.0, 1.0]).status_code for _ in range(3)] == [500] * 3
        calls = flaky.calls()
        started = time.perf_counter()
        refused = _post(url, [1.0, 1.0])
        assert refused.status_code == 503 and refused.headers["Retry-After"] in {"1", "2"}
        assert time.perf_counter() - started < 0.5 and flaky.calls() == calls
        assert "3 batches in a row" in refused.json()["error"]
        # seen as unhealthy, with the reason; other models untouched
        ready = httpx.get(url + "/readyz")
        assert ready.status_code == 200 and "flaky/1" in ready.json()["unhealthy"]
        status = httpx.get(url + "/v1/models/flaky").json()["model_version_status"][0]
        assert status["status"]["error_code"] == "UNAVAILABLE"
        assert httpx.get(url + "/v2/models/flaky/ready").status_code == 503
        assert httpx.post(url + "/v1/models/mnist:predict",
                          json={"instances": [[0.0] * 784]}).status_code == 200
        assert _metric(url, "tfserve_breaker_trips_total", model="flaky") == 1
        # after the cool-down one probe runs; it fails, so the breaker opens again
        time.sleep(1.6)
        assert _post(url, [1.0, 1.0]).status_code == 500 and flaky.calls() == calls + 1
        assert _post(url, [1.0, 1.0]).status_code == 503
        assert _metric(url, "tfserve_breaker_trips_total", model="flaky") == 2
        # mended: the next probe succeeds and the version serves again
        flaky.mend()
        time.sleep(1.6)
        assert _post(url, [1.0, 1.0]).json() == {"predictions": [[2.0, 2.0]]}
        assert _post(url, [3.0, 1.0]).json() == {"predictions": [[6.0, 2.0]]}
        assert "unhealthy" not in httpx.get(url + "/readyz").json()
        assert httpx.get(url + "/v2/models/flaky/ready").status_code == 200
