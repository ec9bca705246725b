"""Shared fixtures: a writable Keras cache over the offline data, and tiny exported models.

Keras reads KERAS_HOME once, at import, so it is settled here before anything imports it.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("TFSERVE_SHARED_DIR", ROOT.parent / "shared"))
OFFLINE_KERAS = SHARED / "keras"
SAMPLES = SHARED / "samples"

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
if "KERAS_HOME" not in os.environ and OFFLINE_KERAS.is_dir():
    _cache = Path(tempfile.mkdtemp(prefix="tfserve-keras-home-"))
    subprocess.run([sys.executable, "-m", "training.cache", str(OFFLINE_KERAS)], check=True,
                   env={**os.environ, "KERAS_HOME": str(_cache)}, capture_output=True)
    os.environ["KERAS_HOME"] = str(_cache)


def run_training(*args: str, env: dict[str, str] | None = None,
                 cwd: Path = ROOT) -> subprocess.CompletedProcess:
    """The real command line, in a subprocess (so it may use its own KERAS_HOME)."""
    return subprocess.run([sys.executable, "-m", "training", *args], cwd=cwd, text=True,
                          capture_output=True, timeout=600, env={**os.environ, **(env or {})})


@pytest.fixture(scope="session", autouse=True)
def offline_data() -> Path:
    if not (OFFLINE_KERAS / "datasets").is_dir() or not SAMPLES.is_dir():
        pytest.fail(f"the real data is not at {SHARED} (keras/ and samples/): set "
                    "TFSERVE_SHARED_DIR to the folder holding them")
    return OFFLINE_KERAS


@pytest.fixture(scope="session")
def tiny_exports(offline_data) -> dict:
    """The five models, trained on tiny slices of the real data, still in memory."""
    from tests.tiny_models import train_all

    return train_all()


@pytest.fixture(scope="session")
def shared_server(models_dir, tmp_path_factory):
    """One real server over the five tiny models, for the modules that only send it requests
    (routes, v2, model pages, the README's examples): each started its own, ~15 s apiece.
    Its settings: tests.server.SHARED_SETTINGS; its log: `.log`."""
    from tests.server import SHARED_SETTINGS, running_server

    log = tmp_path_factory.mktemp("shared-server") / "server.log"
    with running_server(models_dir, log=log, **SHARED_SETTINGS) as url:
        url.log = log
        yield url


@pytest.fixture(scope="session")
def models_dir(tmp_path_factory, tiny_exports) -> Path:
    """A model repository holding version 1 of each tiny model."""
    from tests.tiny_models import export_all

    directory = tmp_path_factory.mktemp("models")
    export_all(directory, tiny_exports)
    return directory
