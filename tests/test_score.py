"""`python -m app.score`: in-process and through a server, same rows, in a stable order."""

from __future__ import annotations

import csv
import json
import subprocess
import sys

import numpy as np
import pytest

from app.score import main
from tests.conftest import ROOT, SAMPLES
from tests.helpers import only
from tests.server import running_server
from training.data import load_mnist
from training.signatures import png


def score(*args: str, module: str = "app.score") -> subprocess.CompletedProcess:
    """The command as a user runs it, in a subprocess."""
    return subprocess.run([sys.executable, "-m", module, *args], cwd=ROOT, text=True,
                          capture_output=True, timeout=300)


def refusal(capsys, *args: str) -> str:
    """The command's error, run in-process (TensorFlow is loaded already)."""
    with pytest.raises(SystemExit) as caught:
        main(list(args))
    return str(caught.value.code) + capsys.readouterr().err


def test_batch_scoring_in_process_and_through_the_server_agree(models_dir, tmp_path, capsys):
    _, (x_test, _) = load_mnist()
    digits = tmp_path / "digits"
    digits.mkdir()
    for i in range(5):
        (digits / f"digit{i}.png").write_bytes(png(x_test[i]))
    reviews = tmp_path / "reviews.csv"
    with reviews.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["id", "text"])
        for i, path in enumerate(sorted((SAMPLES / "reviews").glob("*.txt"))[:4]):
            writer.writerow([i, path.read_text()])

    assert main(["--model", "mnist", str(digits), "--models-dir", str(models_dir),
                 "--batch-size", "2", "-o", str(tmp_path / "local.jsonl")]) == 0
    assert "5/5" in capsys.readouterr().err  # the progress bar
    local_rows = [json.loads(x) for x in (tmp_path / "local.jsonl").read_text().splitlines()]
    assert [r["source"] for r in local_rows] == [str(digits / f"digit{i}.png") for i in range(5)]
    assert all(list(r) == ["source", "classes", "scores"] for r in local_rows)

    assert main(["--model", "imdb_sentiment", str(reviews), "--models-dir", str(models_dir),
                 "-o", str(tmp_path / "local.csv")]) == 0
    with (tmp_path / "local.csv").open() as handle:
        text_rows = list(csv.DictReader(handle))
    assert [r["source"] for r in text_rows] == [f"{reviews}:{n}" for n in range(2, 6)]
    assert {r["label"] for r in text_rows} <= {"positive", "negative"}

    with running_server(only(models_dir, tmp_path / "served", "mnist"),
                        poll_interval_s=0) as url:
        remote = score("--model", "mnist", str(digits), "--url", url)
    assert remote.returncode == 0, remote.stderr
    remote_rows = [json.loads(x) for x in remote.stdout.splitlines()]
    assert [list(r) for r in remote_rows] == [list(r) for r in local_rows]
    assert [r["classes"] for r in remote_rows] == [r["classes"] for r in local_rows]
    np.testing.assert_allclose([r["scores"] for r in remote_rows],
                               [r["scores"] for r in local_rows], atol=1e-6)


def test_batch_scoring_refuses_what_it_cannot_score(models_dir, tmp_path, capsys):
    (tmp_path / "data.bin").write_bytes(b"\x00")
    assert "not an image" in refusal(capsys, "--model", "mnist", str(tmp_path / "data.bin"),
                                     "--models-dir", str(models_dir))
    assert "no versions of 'nope'" in refusal(capsys, "--model", "nope",
                                              str(SAMPLES / "images"), "--models-dir",
                                              str(models_dir))
    assert "no 'predict_text' signature" in refusal(capsys, "--model", "mnist",
                                                    str(SAMPLES / "reviews"), "--models-dir",
                                                    str(models_dir))
    missing = refusal(capsys, "--model", "mnist", str(SAMPLES / "images"), "--models-dir",
                      str(tmp_path / "nowhere"))
    assert f"models folder {tmp_path / 'nowhere'} does not exist: pass --models-dir" in missing


def test_the_former_name_app_batch_still_works():
    alias = score("--help", module="app.batch")
    assert alias.returncode == 0 and "python -m app.score" in alias.stdout


def test_rows_keep_one_key_order_and_carry_the_exports_warning(models_dir, tmp_path, capsys):
    out = tmp_path / "scores.jsonl"
    assert main(["--model", "inception_v3", "--models-dir", str(models_dir), "-o", str(out),
                 "--probabilities", str(SAMPLES / "images" / "umbrella.jpg")]) == 0
    (row,) = [json.loads(line) for line in out.read_text().splitlines()]
    assert list(row) == ["source", "classes", "probabilities", "scores", "warning"]
    assert row["warning"].startswith("inception_v3/1: random weights")
    assert "WARNING: inception_v3/1: random weights" in capsys.readouterr().err
