"""The repository's version policy on plain folders: no TensorFlow, no server."""

from __future__ import annotations

import os
from pathlib import Path

from app.models.repository import Repository, folder_stamp, scan


def make(root: Path, *paths: str) -> Path:
    for path in paths:
        (root / path).mkdir(parents=True)
    return root


def test_scan_lists_integer_versions_ascending_and_skips_the_rest(tmp_path):
    make(tmp_path, "mnist/1", "mnist/10", "mnist/2", "mnist/.3.partial-x", "mnist/latest",
         "cifar10/7", ".hidden/1", "empty", "notes/v1")
    (tmp_path / "mnist" / "4").write_text("a file, not a version")
    assert scan(tmp_path) == {"cifar10": [7], "mnist": [1, 2, 10]}


def test_the_highest_versions_are_wanted(tmp_path):
    assert Repository(tmp_path, max_versions=2).wanted("m", [1, 2, 3]) == [2, 3]
    assert Repository(tmp_path, max_versions=1).wanted("m", [1, 2, 3]) == [3]
    assert Repository(tmp_path, max_versions=0).wanted("m", [1, 2, 3]) == [1, 2, 3]


def test_a_failed_version_is_skipped_until_its_folder_changes(tmp_path):
    make(tmp_path, "m/1", "m/2")
    repository = Repository(tmp_path, max_versions=1)
    repository.record_failure("m", 2, "OSError: broken")
    assert repository.failures["m"][2].error == "OSError: broken"
    assert repository.wanted("m", [1, 2]) == [1]  # the next lower version serves meanwhile
    assert repository.wanted("m", [1, 2]) == [1]  # unchanged folder: still skipped
    (tmp_path / "m" / "2" / "saved_model.pb").write_bytes(b"fixed")
    assert repository.wanted("m", [1, 2]) == [2]  # changed: retried
    assert 2 not in repository.failures["m"]


def test_a_failure_of_a_vanished_version_stays_on_record(tmp_path):
    make(tmp_path, "m/1")
    repository = Repository(tmp_path, max_versions=2)
    repository.record_failure("m", 5, "gone")
    assert repository.wanted("m", [1]) == [1]
    assert 5 in repository.failures["m"]


def test_the_folder_stamp_sees_new_files_and_touches(tmp_path):
    version = make(tmp_path, "m/1") / "m" / "1"
    before = folder_stamp(version)
    (version / "variables").mkdir()
    after_add = folder_stamp(version)
    assert after_add != before
    os.utime(version, ns=(0, 0))
    assert folder_stamp(version) != after_add
    assert folder_stamp(tmp_path / "missing") == ()


def test_paths_follow_tensorflow_servings_layout(tmp_path):
    assert Repository(tmp_path, 2).path("mnist", 3) == tmp_path / "mnist" / "3"


def test_a_model_configs_missing_base_path_is_named(tmp_path, caplog):
    make(tmp_path, "digits/1")
    config = tmp_path / "models.config"
    config.write_text('model_config_list {\n'
                      '  config { name: "mnist" base_path: "digits" '
                      'model_platform: "tensorflow" }\n'
                      '  config { name: "cifar10" base_path: "/nowhere/cifar10" '
                      'model_platform: "tensorflow" }\n}\n')
    repository = Repository(tmp_path, max_versions=2, config_file=config)
    assert repository.scan() == {"mnist": [1]}
    assert repository.empty_sources == ["cifar10: /nowhere/cifar10 does not exist"]
    assert "no version folder under cifar10: /nowhere/cifar10 does not exist" in caplog.text
