"""The model manager in-process on real (tiny) exports: states, readiness, versions, releases."""

from __future__ import annotations

import asyncio
import gc
import threading
import time

import numpy as np
import pytest

from app.errors import NotFound, NotReady
from app.metrics import Metrics
from app.models.manager import (
    YOUNG_COLLECTION_THRESHOLD,
    ModelManager,
    freeze_heap,
    started_executor,
)
from app.models.servable import ModelState
from app.settings import Settings
from tests.helpers import copy_version


def manager_for(models, **settings) -> ModelManager:
    return ModelManager(Settings(model_dir=models, poll_interval_s=0, **settings), Metrics())


@pytest.fixture
def repo(models_dir, tmp_path):
    (tmp_path / "mnist").mkdir()
    copy_version(models_dir, tmp_path, "mnist", 1, 1)
    return tmp_path


def test_versions_load_warm_and_serve_and_lookups_name_what_exists(repo):
    async def scenario():
        manager = manager_for(repo)
        with pytest.raises(NotReady, match="models are loading"):
            manager.get("mnist")
        await manager.start()
        servable = manager.get("mnist")
        with pytest.raises(NotFound, match=r"models: \['mnist'\]"):
            manager.get("nope")
        with pytest.raises(NotFound, match=r"versions: \[1\]"):
            manager.get("mnist", 7)
        with pytest.raises(NotFound, match="has no signature 'x'"):
            servable.signature("x")
        batcher = servable.batchers["serving_default"]
        outputs = await batcher.submit({"image_input": np.zeros((2, 784), np.float32)}, 2,
                                       time.monotonic() + 10)
        await manager.close()
        return manager, servable, outputs

    manager, servable, outputs = asyncio.run(scenario())
    assert manager.ready
    assert servable.state == ModelState.END  # closed with the manager
    assert outputs["prediction"].shape == (2, 10)
    assert servable.training_metrics["model"] == "mnist" and len(servable.labels) == 10


def test_polling_loads_new_versions_releases_old_ones_and_records_failures(models_dir, repo):
    async def scenario():
        manager = manager_for(repo, max_versions=1)
        await manager.start()
        first = manager.get("mnist")
        with first.in_use():  # a request in flight holds version 1
            copy_version(models_dir, repo, "mnist", 1, 2)
            (repo / "mnist" / "3").mkdir()  # an empty, broken version
            await manager.poll()
            states = [first.state]
            await asyncio.sleep(0.2)
            states.append(first.state)  # still held
        await asyncio.wait_for(asyncio.gather(*manager._releasing), 10)
        states.append(first.state)
        served = sorted(manager.servables["mnist"])
        failure = manager.failures["mnist"][3]
        await manager.close()
        return states, served, failure, manager.metrics

    states, served, failure, metrics = asyncio.run(scenario())
    assert states == [ModelState.UNLOADING, ModelState.UNLOADING, ModelState.END]
    assert served == [2]  # 3 failed: the highest healthy version serves
    assert failure.error.startswith("OSError") or "SavedModel" in failure.error
    assert metrics.registry.get_sample_value("tfserve_model_load_failures_total",
                                             {"model": "mnist"}) == 1


def test_an_empty_repository_is_not_ready_until_a_model_appears(models_dir, tmp_path):
    async def scenario():
        manager = manager_for(tmp_path)
        await manager.start()
        before = manager.ready, manager.not_ready_reason
        with pytest.raises(NotReady, match="no loadable model"):
            manager.get("mnist")  # a trainer may still be writing the first model
        (tmp_path / "mnist").mkdir()
        copy_version(models_dir, tmp_path, "mnist", 1, 1)
        await manager.poll()
        after = manager.ready
        await manager.close()
        return before, after

    (ready, reason), after = asyncio.run(scenario())
    assert not ready and "no loadable model" in reason
    assert after


def test_the_inference_threads_all_run_from_the_start():
    """A pool that grows at its first rare burst would read as a thread leak in a long run."""
    before = {t.name for t in threading.enumerate()}
    executor = started_executor(3, "pool-under-test")
    try:
        started = {t.name for t in threading.enumerate()} - before
        assert len([name for name in started if name.startswith("pool-under-test")]) == 3
        assert executor.submit(sum, [1, 2]).result() == 3
    finally:
        executor.shutdown(wait=True)


@pytest.fixture
def collections():
    """The collector's runs by generation while the test runs; its thresholds restored."""
    runs = {0: 0, 1: 0, 2: 0}

    def count(phase: str, info: dict) -> None:
        if phase == "stop":
            runs[info["generation"]] += 1

    thresholds = gc.get_threshold()
    gc.callbacks.append(count)
    yield runs
    gc.callbacks.remove(count)
    gc.set_threshold(*thresholds)


def test_requests_in_flight_do_not_set_off_collections_but_cycles_still_get_collected(
        collections):
    """After a load the young generation is collected only past what requests in flight
    hold: 64 requests of ~40 containers each ran a collection every ~18 requests before."""
    freeze_heap()
    in_flight = [[{"row": i}, [i], {"i": i}] for i in range(2_000)]  # ~6,000 containers
    assert collections[0] == 0
    del in_flight

    class Node:
        pass

    for _ in range(YOUNG_COLLECTION_THRESHOLD):  # garbage only a collection frees
        node = Node()
        node.me = node
    del node
    assert collections[0] + collections[1] + collections[2] >= 1


@pytest.mark.parametrize("full_batch", [False, True])
def test_the_warm_up_runs_one_full_batch_per_signature_when_asked(repo, full_batch):
    """TFSERVE_WARMUP_FULL_BATCH: the largest call's memory is taken at load (off: the
    export's example only)."""
    async def scenario():
        manager = manager_for(repo, max_batch_size=48, warmup_full_batch=full_batch)
        await manager.start()
        await manager.close()
        return manager.metrics.registry

    registry = asyncio.run(scenario())
    labels = {"model": "mnist", "version": "1", "signature": "serving_default"}
    calls = registry.get_sample_value("tfserve_batch_size_count", labels)
    rows = registry.get_sample_value("tfserve_batch_size_sum", labels)
    example_rows = 1  # mnist's example is one digit
    if full_batch:
        assert (calls, rows) == (2, example_rows + 48)
    else:
        assert (calls, rows) == (1, example_rows)
