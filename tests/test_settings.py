"""Settings come from TFSERVE_* variables; per-model batching overrides win over defaults."""

from __future__ import annotations

import os

import pytest
from pydantic import ValidationError

from app.settings import Settings


def test_environment_and_per_model_overrides(monkeypatch):
    monkeypatch.setenv("TFSERVE_MAX_BATCH_SIZE", "32")
    monkeypatch.setenv("TFSERVE_MODEL_OVERRIDES",
                       '{"inception_v3": {"max_batch_size": 8, "batching_enabled": false}}')
    settings = Settings(_env_file=None)
    default = settings.batching_for("mnist")
    assert (default.enabled, default.max_batch_size, default.batch_timeout_ms) == (True, 32, 2.0)
    special = settings.batching_for("inception_v3")
    assert (special.enabled, special.max_batch_size, special.max_queue_rows) == (False, 8, 4096)


@pytest.mark.parametrize("name,value", [
    ("TFSERVE_PORT", "0"), ("TFSERVE_MAX_BATCH_SIZE", "0"),
    ("TFSERVE_MODEL_OVERRIDES", '{"m": {"max_batch_size": -1}}'), ("TFSERVE_LOG_LEVEL", "LOUD"),
    ("TFSERVE_WORKERS", "0"), ("TFSERVE_WORKERS", "many")])
def test_bad_values_fail_at_startup_naming_the_setting(monkeypatch, name, value):
    monkeypatch.setenv(name, value)
    with pytest.raises(ValidationError) as error:
        Settings(_env_file=None)
    assert name.removeprefix("TFSERVE_").lower() in str(error.value)


def test_workers_share_the_cores_between_their_tensorflow_pools(monkeypatch):
    monkeypatch.setattr("app.settings.available_cpus", lambda: 8)
    assert Settings(_env_file=None).tf_threads() == (0, 0)  # one worker: TensorFlow's own
    monkeypatch.setenv("TFSERVE_WORKERS", "auto")
    auto = Settings(_env_file=None)
    assert auto.worker_count == 8 and auto.tf_threads() == (1, 1)
    monkeypatch.setenv("TFSERVE_WORKERS", "3")
    assert Settings(_env_file=None).tf_threads() == (2, 2)
    monkeypatch.setenv("TFSERVE_INTRA_OP_THREADS", "4")
    assert Settings(_env_file=None).tf_threads() == (4, 4)
    monkeypatch.setenv("TFSERVE_INTER_OP_THREADS", "1")
    assert Settings(_env_file=None).tf_threads() == (4, 1)


def test_available_cpus_follows_a_cgroup_quota(monkeypatch):
    from app import workers

    monkeypatch.setattr(workers, "_cgroup_quota", lambda: 1.5)  # `docker run --cpus 1.5`
    assert workers.available_cpus() == min(2, len(os.sched_getaffinity(0)))
    monkeypatch.setattr(workers, "_cgroup_quota", lambda: None)
    assert workers.available_cpus() == len(os.sched_getaffinity(0))
