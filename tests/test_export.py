"""Exports are atomic and versioned, in TensorFlow Serving's layout."""

from __future__ import annotations

import json

import pytest
import tensorflow as tf

from training import export, mnist


@pytest.fixture(scope="module")
def tiny_mnist(offline_data) -> export.Export:
    return mnist.train(mnist.Profile(train_size=500, val_size=100, epochs=1), verbose=0)


def test_versions_are_the_next_free_integer(tmp_path, tiny_mnist):
    first = export.write(tiny_mnist, tmp_path)
    second = export.write(tiny_mnist, tmp_path)
    explicit = export.write(tiny_mnist, tmp_path, version=7)
    after_gap = export.write(tiny_mnist, tmp_path)
    assert [p.name for p in (first, second, explicit, after_gap)] == ["1", "2", "7", "8"]
    assert export.versions(tmp_path / "mnist") == [1, 2, 7, 8]
    assert export.latest_version(tmp_path / "mnist") == after_gap


def test_version_folder_has_serving_layout_and_reports(tmp_path, tiny_mnist):
    path = export.write(tiny_mnist, tmp_path)
    assert (path / "saved_model.pb").is_file()
    assert (path / "variables").is_dir()
    assert (path / "assets" / "labels.txt").read_text().split() == [str(d) for d in range(10)]
    assert (path / "training_history.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert (path / "model.keras").is_file()
    metrics = json.loads((path / "metrics.json").read_text())
    assert metrics["model"] == "mnist" and metrics["version"] == 1
    assert metrics["train_size"] == 500 and metrics["val_size"] == 100
    assert metrics["epochs"] == 1
    assert 0.0 <= metrics["val_accuracy"] <= 1.0 and metrics["val_loss"] > 0
    assert metrics["wall_time_s"] >= 0


def test_existing_version_is_refused_and_left_untouched(tmp_path, tiny_mnist):
    path = export.write(tiny_mnist, tmp_path, version=3)
    before = sorted(p.name for p in path.rglob("*"))
    with pytest.raises(FileExistsError, match="already exists"):
        export.write(tiny_mnist, tmp_path, version=3)
    assert sorted(p.name for p in path.rglob("*")) == before
    assert [p.name for p in (tmp_path / "mnist").iterdir()] == ["3"]


def test_failed_export_leaves_no_version_and_no_partial_folder(tmp_path, tiny_mnist):
    def broken(image_input):
        raise RuntimeError("signature cannot be traced")

    bad = export.Export(
        "mnist", tiny_mnist.model,
        {"serving_default": export.Signature(
            broken, [tf.TensorSpec([None, 784], tf.float32, name="image_input")])},
        tiny_mnist.labels, {})
    with pytest.raises(RuntimeError, match="cannot be traced"):
        export.write(bad, tmp_path)
    assert list((tmp_path / "mnist").iterdir()) == []
    assert export.versions(tmp_path / "mnist") == []


def test_hidden_partial_folders_are_not_versions(tmp_path):
    (tmp_path / "mnist" / ".4.partial-abc").mkdir(parents=True)
    (tmp_path / "mnist" / "notes").mkdir()
    assert export.versions(tmp_path / "mnist") == []
