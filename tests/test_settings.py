"""Settings come from TFSERVE_* variables; per-model batching overrides win over defaults."""

from __future__ import annotations

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
    ("TFSERVE_MODEL_OVERRIDES", '{"m": {"max_batch_size": -1}}'), ("TFSERVE_LOG_LEVEL", "LOUD")])
def test_bad_values_fail_at_startup_naming_the_setting(monkeypatch, name, value):
    monkeypatch.setenv(name, value)
    with pytest.raises(ValidationError) as error:
        Settings(_env_file=None)
    assert name.removeprefix("TFSERVE_").lower() in str(error.value)
