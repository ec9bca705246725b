"""The predict core in-process: every route's requests counted once, by outcome, with their
latency, and a version held while its request runs."""

from __future__ import annotations

import asyncio

import numpy as np
import pytest

from app.errors import NotFound
from tests.conftest import SAMPLES
from tests.helpers import in_process, only

DIGIT = [0.0] * 784


def sample(app, name: str, **labels: str) -> float:
    return app.state.core.metrics.registry.get_sample_value(name, labels) or 0.0


@pytest.fixture(scope="module")
def counted(models_dir, tmp_path_factory):
    """Requests through three protocols, and what the metrics counted for them."""
    models = only(models_dir, tmp_path_factory.mktemp("models"), "mnist")
    koala = (SAMPLES / "images" / "koala.jpg").read_bytes()

    async def scenario():
        async with in_process(models) as client:
            app = client.app
            statuses = [
                (await client.post("/serving_default/predict",
                                   json={"instances": [DIGIT]})).status_code,
                (await client.post("/v1/models/mnist:predict",
                                   json={"instances": [DIGIT, DIGIT]})).status_code,
                (await client.post("/v1/models/mnist:predict",
                                   json={"instances": [[1.0]]})).status_code,
                (await client.post("/models/mnist/predict/image",
                                   files=[("file", ("k.jpg", koala))])).status_code,
                (await client.post("/models/mnist/nope/predict",
                                   json={"instances": [DIGIT]})).status_code,
            ]
            core = app.state.core
            async with core.call("mnist", None, "serving_default") as call:
                held = call.servable.users
                outputs = await call.run({"image_input": np.zeros((3, 784), np.float32)}, 3)
            after = call.servable.users
            with pytest.raises(NotFound):
                async with core.call("mnist", None, "nope"):
                    pass
            return app, statuses, held, after, outputs

    return asyncio.run(scenario())


def test_each_request_is_counted_once_by_outcome(counted):
    app, statuses, *_ = counted
    assert statuses == [200, 200, 400, 200, 404]
    tensor = {"model": "mnist", "version": "1", "signature": "serving_default"}
    assert sample(app, "tfserve_requests_total", **tensor, status="ok") == 3  # + the direct call
    assert sample(app, "tfserve_requests_total", **tensor, status="400") == 1
    image = {"model": "mnist", "version": "1", "signature": "predict_image"}
    assert sample(app, "tfserve_requests_total", **image, status="ok") == 1
    assert sample(app, "tfserve_request_latency_seconds_count", **tensor) == 4
    assert sample(app, "tfserve_request_latency_seconds_sum", **tensor) > 0


def test_a_call_holds_its_version_and_takes_arrays(counted):
    _, _, held, after, outputs = counted
    assert (held, after) == (1, 0)
    assert outputs["prediction"].shape == (3, 10)
