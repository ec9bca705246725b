"""`make serve` on an empty repository (training.serve): the server answers while the models
it lacks are still training, shows them as such, and loads each one as it is exported."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time

import httpx
import pytest

from app.models import trainer_status
from tests.conftest import ROOT
from tests.server import free_port


@pytest.mark.long
def test_the_server_answers_while_the_other_models_still_train(tmp_path):
    port = free_port()
    models = tmp_path / "models"
    env = {**os.environ, "TFSERVE_PORT": str(port), "TFSERVE_HOST": "127.0.0.1",
           "TFSERVE_POLL_INTERVAL_S": "1", "TFSERVE_LOG_LEVEL": "WARNING"}
    process = subprocess.Popen(
        [sys.executable, "-m", "training.serve", "--profile", "tiny", "--models-dir",
         str(models)],
        cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    output: list[str] = []
    reader = threading.Thread(target=lambda: output.extend(process.stdout), daemon=True)
    reader.start()
    url = f"http://127.0.0.1:{port}"
    seen_while_training = None
    try:
        deadline = time.monotonic() + 400
        while time.monotonic() < deadline:
            assert process.poll() is None, "".join(output)
            try:
                listing = httpx.get(url + "/models", timeout=5).json()["models"]
            except httpx.HTTPError:
                time.sleep(0.2)
                continue
            served = {name for name, m in listing.items() if m["default_version"]}
            # cifar10 trains fourth, after imdb_sentiment and inception_v3: a wide window
            if "mnist" in served and (listing.get("cifar10") or {}).get("trainer"):
                seen_while_training = listing["cifar10"]["trainer"]
                answer = httpx.post(url + "/serving_default/predict", timeout=30,
                                    json={"instances": [{"image_input": [0.0] * 784}]})
                assert answer.status_code == 200, answer.text
                assert httpx.get(url + "/ui/cifar10").status_code == 200
            if len(served) == 5:
                break
            time.sleep(0.2)
        else:
            raise AssertionError("".join(output))
        assert seen_while_training is not None, "".join(output)  # mnist first, fastest first
        assert seen_while_training["state"] in ("queued", "training")
        time.sleep(1)
        assert not (models / trainer_status.STATUS_FILE).exists()  # training is over
        assert httpx.get(url + "/readyz").status_code == 200
    finally:
        process.send_signal(signal.SIGTERM)
        code = process.wait(timeout=60)
        reader.join(timeout=5)
        process.stdout.close()
    text = "".join(output)
    print(text)
    assert code == 0, text
    assert f">> mnist is served (version 1): http://localhost:{port}/ui/mnist" in text
    assert ("training beside it, fastest first: mnist, imdb_sentiment, inception_v3, cifar10, "
            "cifar10_transfer") in text
    assert "training finished: 5 of 5 models exported" in text
