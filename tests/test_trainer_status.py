"""What a trainer beside the server says (app.models.trainer_status), read by GET /models
and /ui."""

from __future__ import annotations

import asyncio
import json
import time

from app.models import trainer_status
from tests.helpers import in_process, only


def write(models_dir, models: dict, updated: float | None = None) -> None:
    status = {"updated": time.time() if updated is None else updated, "models": models}
    (models_dir / trainer_status.STATUS_FILE).write_text(json.dumps(status))


def test_a_fresh_file_is_read_and_only_its_documented_keys_kept(tmp_path):
    write(tmp_path, {"cifar10": {"state": "training", "epoch": 2, "epochs": 6, "x": 1},
                     "imdb_sentiment": {"state": "queued"},
                     "odd": {"state": "sleeping"},
                     "broken": {"state": "failed", "error": "no data" * 200}})
    found = trainer_status.read(tmp_path)
    assert found["cifar10"] == {"state": "training", "epoch": 2, "epochs": 6}
    assert found["imdb_sentiment"] == {"state": "queued"}
    assert "odd" not in found and len(found["broken"]["error"]) == 500


def test_a_stale_missing_or_malformed_file_says_nothing(tmp_path):
    assert trainer_status.read(tmp_path) == {}
    write(tmp_path, {"mnist": {"state": "training"}},
          updated=time.time() - trainer_status.STALE_S - 1)
    assert trainer_status.read(tmp_path) == {}  # its trainer is gone
    (tmp_path / trainer_status.STATUS_FILE).write_text("{not json")
    assert trainer_status.read(tmp_path) == {}
    (tmp_path / trainer_status.STATUS_FILE).write_text('{"updated": "soon", "models": []}')
    assert trainer_status.read(tmp_path) == {}


def test_models_in_training_are_listed_and_have_a_page(models_dir, tmp_path):
    models = only(models_dir, tmp_path / "models", "mnist")

    async def scenario() -> None:
        async with in_process(models) as client:
            assert (await client.get("/ui/cifar10")).status_code == 404
            write(models, {"cifar10": {"state": "training", "epoch": 1, "epochs": 6}})
            listing = (await client.get("/models")).json()["models"]
            assert listing["cifar10"]["trainer"] == {"state": "training", "epoch": 1,
                                                     "epochs": 6}
            assert listing["cifar10"]["versions"] == [] and listing["mnist"]["trainer"] is None
            assert (await client.get("/ui/cifar10")).status_code == 200
            assert (await client.get("/models/cifar10/card")).status_code == 404
            assert (await client.get("/readyz")).status_code == 200  # what is on disk serves
            (models / trainer_status.STATUS_FILE).unlink()
            assert (await client.get("/ui/cifar10")).status_code == 404

    asyncio.run(scenario())
