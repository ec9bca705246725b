"""`python -m training`, run as a user runs it: exit codes, messages, versions on disk."""

from __future__ import annotations

import json

import pytest

from tests.conftest import run_training
from training.data import ACLIMDB_URL, MNIST_URL

# Any download attempt fails at once and the same way with or without internet.
NO_NETWORK = {"https_proxy": "http://127.0.0.1:9", "http_proxy": "http://127.0.0.1:9",
              "HTTPS_PROXY": "http://127.0.0.1:9", "HTTP_PROXY": "http://127.0.0.1:9"}


def test_bad_local_data_path_names_the_path_and_the_url(tmp_path):
    missing = tmp_path / "nowhere" / "mnist.npz"
    result = run_training("mnist", "--data", str(missing), "--models-dir", str(tmp_path))
    assert result.returncode == 1
    assert f"MNIST: {missing} does not exist" in result.stderr
    assert MNIST_URL in result.stderr
    assert not (tmp_path / "mnist").exists()


def test_data_that_is_not_the_expected_format_is_a_clear_error(tmp_path):
    bogus = tmp_path / "mnist.npz"
    bogus.write_text("not a numpy archive")
    result = run_training("mnist", "--data", str(bogus), "--models-dir", str(tmp_path))
    assert result.returncode == 1
    assert "is not a Keras mnist.npz" in result.stderr
    assert "Traceback" not in result.stderr


def test_folder_without_class_folders_is_refused(tmp_path):
    result = run_training("cifar10", "--data", str(tmp_path), "--models-dir", str(tmp_path))
    assert result.returncode == 1
    assert "has no train/ and test/ class folders" in result.stderr


@pytest.mark.parametrize("model,file,url", [("mnist", "mnist.npz", MNIST_URL),
                                            ("imdb_sentiment", "aclImdb_v1.tar.gz",
                                             ACLIMDB_URL)])
def test_offline_without_cached_data_says_which_file_to_put_where(tmp_path, model, file, url):
    empty_cache = tmp_path / "keras-home"
    empty_cache.mkdir()
    if model == "imdb_sentiment":  # the word index is present; the reviews are not
        (empty_cache / "datasets").mkdir()
        from tests.conftest import OFFLINE_KERAS

        index = OFFLINE_KERAS / "datasets" / "imdb_word_index.json"
        (empty_cache / "datasets" / "imdb_word_index.json").symlink_to(index)
    result = run_training(model, "--models-dir", str(tmp_path / "models"),
                          env={"KERAS_HOME": str(empty_cache), **NO_NETWORK})
    assert result.returncode == 1
    assert url in result.stderr
    assert f"put it at {empty_cache / 'datasets' / file}" in result.stderr


def test_transfer_without_a_trained_base_asks_for_cifar10_first(tmp_path):
    result = run_training("cifar10_transfer", "--models-dir", str(tmp_path))
    assert result.returncode == 1
    assert "run `python -m training cifar10` first" in result.stderr


@pytest.mark.long
def test_quick_mnist_exports_versions_and_prints_the_summary(tmp_path, offline_data):
    models = tmp_path / "models"
    first = run_training("mnist", "--profile", "quick", "--models-dir", str(models))
    assert first.returncode == 0, first.stderr
    assert "Epoch 5/5" in first.stdout
    summary = first.stdout[first.stdout.index("model "):]
    assert "mnist" in summary and str(models / "mnist" / "1") in summary
    metrics = json.loads((models / "mnist" / "1" / "metrics.json").read_text())
    assert metrics["profile"] == "quick" and metrics["train_size"] == 60_000
    assert metrics["val_accuracy"] >= 0.95
    assert f"{metrics['val_accuracy']:.4f}" in summary

    again = run_training("mnist", "--version", "1", "--models-dir", str(models))
    assert again.returncode == 1 and "already exists" in again.stderr

    skipped = run_training("all", "--missing-only", "--models-dir", str(models),
                           env={"KERAS_HOME": str(tmp_path / "empty"), **NO_NETWORK})
    assert "mnist: a version exists, skipped" in skipped.stderr
    assert sorted(p.name for p in (models / "mnist").iterdir()) == ["1"]


def test_all_refuses_per_model_options(tmp_path):
    result = run_training("all", "--version", "3", "--models-dir", str(tmp_path))
    assert result.returncode == 2
    assert "apply to one model" in result.stderr


def test_offline_cache_links_files_into_writable_folders(tmp_path):
    import os
    import stat

    from training.cache import link_offline_cache

    source = tmp_path / "offline"
    (source / "datasets" / "mnist").mkdir(parents=True)
    (source / "datasets" / "mnist" / "a.gz").write_bytes(b"x")
    (source / "datasets" / "mnist.npz").write_bytes(b"y")
    for folder in (source / "datasets" / "mnist", source / "datasets"):
        folder.chmod(0o555)  # a read-only offline copy, like ../shared
    cache = tmp_path / "cache"
    assert link_offline_cache(source, cache) == 2
    assert link_offline_cache(source, cache) == 0  # idempotent
    assert (cache / "datasets" / "mnist.npz").is_symlink()
    assert (cache / "datasets" / "mnist" / "a.gz").read_bytes() == b"x"
    for folder in (cache / "datasets", cache / "datasets" / "mnist"):
        assert os.stat(folder).st_mode & stat.S_IWUSR
    result = run_training_cache(str(tmp_path / "absent"))
    assert result.returncode == 1 and "does not exist" in result.stderr


def run_training_cache(*args: str):
    import subprocess
    import sys

    from tests.conftest import ROOT

    return subprocess.run([sys.executable, "-m", "training.cache", *args], cwd=ROOT,
                          capture_output=True, text=True, timeout=60)


def test_report_writes_the_models_results_as_json_and_markdown(models_dir, tmp_path):
    from training.model_report import FIELDS

    earlier = {**dict.fromkeys(FIELDS), "model": "mnist", "profile": "full", "version": 3,
               "train_size": 55000, "epochs": 10, "val_accuracy": 0.9838}
    (tmp_path / "models.json").write_text(json.dumps([earlier]))
    result = run_training("report", "--models-dir", str(models_dir), "--docs", str(tmp_path))
    assert result.returncode == 0, result.stderr
    rows = json.loads((tmp_path / "models.json").read_text())
    assert sorted({r["model"] for r in rows}) == ["cifar10", "cifar10_transfer", "imdb_sentiment",
                                                "inception_v3", "mnist"]
    mnist = next(r for r in rows if r["model"] == "mnist" and r["profile"] == "unknown")
    assert mnist["version"] == 1 and 0 < mnist["val_accuracy"] <= 1
    page = (tmp_path / "MODELS.md").read_text()
    assert "| mnist | unknown | 2000 |" in page  # tiny exports carry no profile
    assert "](models/mnist-unknown.png)" in page
    assert "| mnist | full | 55000 | 10 | 98.38% | - | 98.00% met |" in page  # kept
    assert (tmp_path / "models" / "mnist-unknown.png").stat().st_size > 0
