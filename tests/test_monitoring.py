"""Prediction monitoring end to end: real data through a real server, drift read back from
GET /models/{model}/monitoring and /metrics.

The scenarios are bench.drift's (`python -m bench.drift` runs them on any models): each gets
a version of its own (the same export served as versions 1..N, each with its own window):
version 1 receives what the model was trained on, the others what production should not
send it.
"""

from __future__ import annotations

import re

import httpx
import pytest

from bench import drift
from tests.server import ROOT, running_server

MIN_ROWS = 300


@pytest.fixture(scope="module")
def server(models_dir, tmp_path_factory):
    served = drift.repository(models_dir, tmp_path_factory.mktemp("monitored"))
    settings = {"max_versions": 0, "monitoring_min_rows": MIN_ROWS,
                "monitoring_window_rows": 1000, "poll_interval_s": 0, "grpc_port": 0}
    with (running_server(served, **settings) as url,
          httpx.Client(base_url=url, timeout=60) as client):
        drift.send_scenarios(client)
        yield client


def signature(client: httpx.Client, model: str, version: int, name: str) -> dict:
    doc = client.get(f"/models/{model}/monitoring", params={"version": version})
    assert doc.status_code == 200, doc.text
    (entry,) = doc.json()["versions"]
    return entry["signatures"][name]


def psi(report: dict, summary: str) -> float:
    return next(s["psi"] for s in report["summaries"] if s["name"] == summary)


def test_mnist_test_digits_stay_ok(server):
    report = signature(server, "mnist", 1, "serving_default")
    assert report["state"] == "ok", [(s["name"], s["psi"]) for s in report["summaries"]]
    assert report["rows_seen"] == 2000
    assert 1000 <= report["rows_in_window"] < 1050  # the window: 1,000 rows, to a segment
    assert report["baseline"]["source"] == "training profile"
    assert all(s["psi"] < 0.1 for s in report["summaries"]), report["summaries"]


@pytest.mark.parametrize("version, what", [(2, "inverted"), (3, "raw 0-255"), (4, "noise")])
def test_mnist_digits_far_from_training_drift(server, version, what):
    report = signature(server, "mnist", version, "serving_default")
    assert report["state"] == "drift", what
    assert psi(report, "image_input.pixels") >= 0.25, what
    assert psi(report, "image_input.brightness") >= 0.25, what
    pixels = next(s for s in report["summaries"] if s["name"] == "image_input.pixels")
    if what == "raw 0-255":  # above the trained range: the open last bin
        assert pixels["live"][-1] > 0.1 and pixels["training"][-1] == 0
        assert psi(report, "prediction.confidence") >= 0.25  # saturated: confident nonsense
    else:
        assert psi(report, "prediction.class") >= 0.25, what


def test_imdb_reviews_stay_ok_and_scrambled_text_raises_the_oov_rate(server):
    ok = signature(server, "imdb_sentiment", 1, "predict_text")
    assert ok["state"] == "ok", ok
    scrambled_report = signature(server, "imdb_sentiment", 2, "predict_text")
    assert scrambled_report["state"] == "drift"
    assert psi(scrambled_report, "text.oov_rate") >= 0.25 > psi(ok, "text.oov_rate")
    assert psi(scrambled_report, "text.tokens") < 0.25  # the same number of words
    oov = next(s for s in scrambled_report["summaries"] if s["name"] == "text.oov_rate")
    assert oov["live"][-1] > 0.5  # most texts: over half their words unknown


def test_cifar_held_out_classes_move_classes_and_confidence(server):
    known = signature(server, "cifar10", 1, "serving_default")
    held_out = signature(server, "cifar10", 2, "serving_default")
    assert known["state"] == "ok", known
    for summary in ("probabilities.class", "probabilities.confidence"):
        assert psi(held_out, summary) > psi(known, summary), summary
    assert held_out["state"] in ("watch", "drift")


def test_a_model_without_profile_is_rated_against_its_first_window(server):
    steady = signature(server, "foreign", 1, "serving_default")
    shifted = signature(server, "foreign", 2, "serving_default")
    for report in (steady, shifted):
        assert report["baseline"]["source"].startswith("first window")
        assert report["baseline"]["rows"] == 1000 and report["baseline"]["complete"]
        assert {s["source"] for s in report["summaries"]} == {"output"}
        assert report["rows_in_window"] == 600
    assert steady["state"] == "ok", steady
    assert shifted["state"] == "drift" and psi(shifted, "scores.class") >= 0.25


def test_too_few_rows_until_the_window_holds_enough(server):
    report = signature(server, "mnist", 1, "predict_image")
    assert report["state"] == "too few rows" and report["rows_in_window"] == 0
    assert "0 rows in the window" in report["reason"]


def test_the_metrics_carry_scores_states_and_classes(server):
    samples = {}
    for line in server.get("/metrics").text.splitlines():
        if match := re.match(r"^(\w+)\{(.*)\} (\S+)$", line):
            labels = frozenset(re.findall(r'(\w+)="([^"]*)"', match.group(2)))
            samples[match.group(1), labels] = float(match.group(3))

    def value(name: str, **labels: str) -> float:
        key = (name, frozenset(labels.items()))
        assert key in samples, f"{name}{labels} not in /metrics"
        return samples[key]

    mnist = {"model": "mnist", "signature": "serving_default"}
    assert value("tfserve_drift_state", **mnist, version="1") == 0
    assert value("tfserve_drift_state", **mnist, version="2") == 2
    assert value("tfserve_drift_state", model="mnist", version="1",
                 signature="predict_image") == -1
    assert value("tfserve_drift_psi", **mnist, version="4", summary="image_input.pixels") >= 0.25
    classes = sum(value("tfserve_predicted_class_total", **mnist, version="1",
                        output="prediction", **{"class": str(d)}) for d in range(10))
    assert classes == 2000
    assert value("tfserve_prediction_confidence_count", **mnist, version="1",
                 output="prediction") == 2000
    assert value("tfserve_monitored_rows_total", **mnist, version="3") == 2000
    assert 0 <= value("tfserve_low_confidence_share", **mnist, version="1",
                      output="prediction") <= 1


def test_monitoring_of_an_unknown_model_is_404(server):
    response = server.get("/models/nope/monitoring")
    assert response.status_code == 404 and "nope" in response.json()["error"]
    response = server.get("/models/mnist/monitoring", params={"version": 9})
    assert response.status_code == 404


def test_the_example_alert_rules_use_metrics_the_server_exports(server):
    import yaml

    rules = yaml.safe_load((ROOT / "deploy/prometheus/tfserve-drift.rules.yml").read_text())
    exported = set(re.findall(r"^# TYPE (\w+) ", server.get("/metrics").text, re.M))
    for rule in rules["groups"][0]["rules"]:
        used = set(re.findall(r"tfserve_\w+", rule["expr"]))
        assert used and used <= exported, rule["alert"]
