"""`python -m app.score`: in-process and through a server, same rows, in a stable order."""

from __future__ import annotations

import csv
import json
import subprocess
import sys

import numpy as np

from tests.conftest import ROOT, SAMPLES
from tests.server import running_server
from training.data import load_mnist
from training.signatures import png


def score(*args: str, module: str = "app.score") -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", module, *args], cwd=ROOT, text=True,
                          capture_output=True, timeout=300)


def test_batch_scoring_in_process_and_through_the_server_agree(models_dir, tmp_path):
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

    local_images = score("--model", "mnist", str(digits), "--models-dir", str(models_dir),
                         "--batch-size", "2", "-o", str(tmp_path / "local.jsonl"))
    assert local_images.returncode == 0, local_images.stderr
    assert "5/5" in local_images.stderr  # the progress bar
    local_rows = [json.loads(x) for x in (tmp_path / "local.jsonl").read_text().splitlines()]
    assert [r["source"] for r in local_rows] == [str(digits / f"digit{i}.png") for i in range(5)]
    assert all(list(r) == ["source", "classes", "scores"] for r in local_rows)

    local_texts = score("--model", "imdb_sentiment", str(reviews), "--models-dir",
                        str(models_dir), "-o", str(tmp_path / "local.csv"))
    assert local_texts.returncode == 0, local_texts.stderr
    with (tmp_path / "local.csv").open() as handle:
        text_rows = list(csv.DictReader(handle))
    assert [r["source"] for r in text_rows] == [f"{reviews}:{n}" for n in range(2, 6)]
    assert {r["label"] for r in text_rows} <= {"positive", "negative"}

    with running_server(models_dir, poll_interval_s=0) as url:
        remote = score("--model", "mnist", str(digits), "--url", url)
    assert remote.returncode == 0, remote.stderr
    remote_rows = [json.loads(x) for x in remote.stdout.splitlines()]
    assert [list(r) for r in remote_rows] == [list(r) for r in local_rows]
    assert [r["classes"] for r in remote_rows] == [r["classes"] for r in local_rows]
    np.testing.assert_allclose([r["scores"] for r in remote_rows],
                               [r["scores"] for r in local_rows], atol=1e-6)


def test_batch_scoring_refuses_what_it_cannot_score(models_dir, tmp_path):
    (tmp_path / "data.bin").write_bytes(b"\x00")
    result = score("--model", "mnist", str(tmp_path / "data.bin"), "--models-dir",
                   str(models_dir))
    assert result.returncode != 0 and "not an image" in result.stderr
    missing = score("--model", "nope", str(SAMPLES / "images"), "--models-dir",
                    str(models_dir))
    assert missing.returncode != 0 and "no versions of 'nope'" in missing.stderr
    wrong = score("--model", "mnist", str(SAMPLES / "reviews"), "--models-dir",
                  str(models_dir), module="app.batch")  # the former name still works
    assert wrong.returncode != 0 and "no 'predict_text' signature" in wrong.stderr
