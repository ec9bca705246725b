"""The parts of prediction monitoring without a server: bins, PSI, the window, a monitor,
and the numbers the workers share."""

from __future__ import annotations

import json
import os
import subprocess
import time
from pathlib import Path

import numpy as np
import pytest

from app.models.signatures import SignatureInfo, TensorInfo
from app.monitoring import profile as profiles
from app.monitoring.drift import DriftState, psi, state_of, worst
from app.monitoring.monitor import Monitor
from app.monitoring.report import rate
from app.monitoring.service import FOLDER, Monitoring
from app.monitoring.summaries import Summary, histogram, linear_edges
from app.monitoring.window import Window
from app.settings import Settings


def test_bins_are_open_at_both_ends_and_keep_the_top_of_the_range_inside():
    edges = linear_edges(0.0, 1.0, 4)
    counts = histogram(np.array([-1, 0, 0.3, 1.0, 1.5, np.nan]), edges)
    assert counts.tolist() == [1, 1, 1, 0, 1, 2]  # 1.0 in the last inner bin; NaN beyond


def test_psi_is_zero_for_the_same_shares_and_large_for_disjoint_ones():
    assert psi(np.array([10, 30, 60]), np.array([1, 3, 6])) == pytest.approx(0)
    assert psi(np.array([0, 0, 100]), np.array([100, 0, 0])) > 10
    assert state_of(0.05, 0.1, 0.25) is DriftState.OK
    assert state_of(0.1, 0.1, 0.25) is DriftState.WATCH
    assert state_of(0.3, 0.1, 0.25) is DriftState.DRIFT
    assert worst([DriftState.TOO_FEW_ROWS, DriftState.WATCH, DriftState.OK]) is DriftState.WATCH
    assert worst([DriftState.TOO_FEW_ROWS]) is DriftState.TOO_FEW_ROWS


def test_the_window_keeps_the_latest_rows_and_forgets_old_ones():
    window = Window(rows=100, seconds=60)
    for second in range(30):
        window.add({"s": np.array([10, 0])}, 10, now=second)
    rows, totals = window.totals(now=30)
    assert 100 <= rows < 100 + 100 // 20 + 10  # within a segment of the limit
    assert totals["s"][0] == rows
    assert window.totals(now=200)[0] == 0  # a minute of silence empties it


def test_text_summaries_count_words_and_unknown_ones(tmp_path):
    (tmp_path / "vocabulary.txt").write_bytes(b"good\nfilm\n")
    summary = Summary.from_json({"name": "t.oov", "source": "input", "tensor": "t",
                                 "kind": "text_oov_rate", "edges": [0.25, 0.75],
                                 "pattern": "[^a-z0-9']+", "vocabulary": "vocabulary.txt"},
                                tmp_path)
    texts = np.array([b"Good film!", b"Gut, der Film.", b"xyz qqq"], dtype=object)
    assert summary.counts(texts).tolist() == [1, 1, 1]  # 0, 2/3 and 1 unknown


def foreign_signature() -> SignatureInfo:
    return SignatureInfo("serving_default", {"x": TensorInfo("x", "float32", (-1, 4))},
                         {"scores": TensorInfo("scores", "float32", (-1, 3)),
                          "ids": TensorInfo("ids", "int64", (-1,))})


def test_a_signature_without_profile_watches_its_probability_outputs_from_a_first_window():
    summaries = profiles.baseline_summaries(foreign_signature(), floor=0.5)
    assert [s.name for s in summaries] == ["scores.class", "scores.confidence",
                                           "scores.low_confidence"]
    assert summaries[0].labels == ["0", "1", "2"]  # no labels.txt: by index; with one, named
    assert profiles.baseline_summaries(foreign_signature(), 0.5, ["a", "b", "c"])[0].labels == \
        ["a", "b", "c"]
    settings = Settings(monitoring_window_rows=100, monitoring_min_rows=50)
    monitor = Monitor(("m", 1, "serving_default"), profiles.SignatureProfile(summaries, None),
                      100, 0)
    first = np.tile([[0.8, 0.1, 0.1]], (100, 1))
    monitor.fold({}, {"scores": first})
    assert rate(monitor, monitor.snapshot(), settings)["state"] == "too few rows"
    monitor.fold({}, {"scores": np.tile([[0.1, 0.1, 0.8]], (60, 1))})
    report = rate(monitor, monitor.snapshot(), settings)
    assert report["baseline"]["rows"] == 100 and report["rows_in_window"] == 60
    assert report["state"] == "drift"


def test_a_tensor_that_cannot_be_summarised_is_left_out_not_fatal():
    summaries = profiles.output_summaries("scores", ["a", "b"], 0.5)
    monitor = Monitor(("m", 1, "s"), profiles.SignatureProfile(summaries, None), 10, 0)
    monitor.fold({}, {"scores": np.array([["x", "y"]], dtype=object)})
    assert monitor.failed and monitor.rows_seen == 1


def offered(monitoring: Monitoring, rows: int) -> None:
    signature = foreign_signature()
    runners, monitors = monitoring.watch("m", 1, Path("/nonexistent"),
                                         {"serving_default": signature},
                                         {"serving_default": lambda inputs: {
                                             "scores": np.full((len(inputs["x"]), 3), 1 / 3)}})
    monitoring.activate(monitors)
    (runner,) = runners.values()
    runner({"x": np.zeros((rows, 4), np.float32)})
    monitoring.settle()


def test_calls_are_sampled_and_folded_in_the_monitoring_thread():
    everything = Monitoring(Settings())
    offered(everything, 7)
    assert everything.monitors["m", 1, "serving_default"].rows_seen == 7
    none = Monitoring(Settings(monitoring_sample_rate=0.0))
    offered(none, 7)
    assert none.monitors["m", 1, "serving_default"].rows_seen == 0
    for monitoring in (everything, none):
        monitoring.close()


def test_workers_add_up_each_others_counts(tmp_path):
    monitoring = Monitoring(Settings(), shared_dir=tmp_path)
    offered(monitoring, 5)
    other = subprocess.Popen(["sleep", "30"])  # a live process standing for another worker
    try:
        mine = monitoring.monitors["m", 1, "serving_default"].snapshot()
        (tmp_path / FOLDER).mkdir(exist_ok=True)
        (tmp_path / FOLDER / f"{other.pid}.json").write_text(
            json.dumps({"m/1/serving_default": {**mine, "rows_seen": 3, "window_rows": 3}}))
        ((_, merged),) = monitoring.snapshots("m").values()
        assert merged["rows_seen"] == 8 and monitoring.workers_sharing == 2
        deadline = time.monotonic() + 5  # and this worker's own file appears within a second
        while not (tmp_path / FOLDER / f"{os.getpid()}.json").exists():
            assert time.monotonic() < deadline
            time.sleep(0.05)
    finally:
        other.kill()
        other.wait()
        monitoring.close()
    ((_, alone),) = monitoring.snapshots("m").values()
    assert alone["rows_seen"] == 5  # a dead worker's file no longer counts


def test_waiting_calls_of_different_shapes_are_all_folded():
    monitoring = Monitoring(Settings())
    summaries = profiles.output_summaries("scores", ["a", "b"], 0.5)
    monitor = Monitor(("m", 1, "s"), profiles.SignatureProfile(summaries, None), 100, 0)
    monitoring.monitors[monitor.key] = monitor
    for width in (2, 3):  # joined they would not fit: each is folded alone
        monitoring._waiting.append((monitor, {"x": np.zeros((4, width))},
                                    {"scores": np.full((4, 2), 0.5)}))
    monitoring._fold_waiting()
    assert monitor.rows_seen == 8


def test_releasing_a_version_keeps_the_monitors_of_its_reload():
    monitoring = Monitoring(Settings())
    offered(monitoring, 1)
    old = list(monitoring.monitors.values())
    offered(monitoring, 1)  # the same version loaded again (its folder replaced)
    monitoring.forget(old)  # the old load's release, later
    assert ("m", 1, "serving_default") in monitoring.monitors
    monitoring.forget(list(monitoring.monitors.values()))
    assert not monitoring.monitors
    monitoring.close()


def test_drift_thresholds_must_be_in_order():
    with pytest.raises(ValueError, match="DRIFT_WATCH_PSI"):
        Settings(drift_watch_psi=0.3, drift_psi=0.2)


def test_the_alert_rules_fire_when_they_should():
    """Prometheus' own rule checker and unit tester on the shipped rules (skipped where it is
    not installed: Debian's `prometheus` package has it)."""
    import shutil

    from tests.server import ROOT

    promtool = shutil.which("promtool")
    if promtool is None:
        pytest.skip("promtool not installed (apt-get install prometheus)")
    folder = ROOT / "deploy" / "prometheus"
    for command in (["check", "rules", "tfserve-drift.rules.yml"],
                    ["test", "rules", "tfserve-drift.rules.test.yml"]):
        result = subprocess.run([promtool, *command], cwd=folder, capture_output=True,
                                text=True, timeout=60)
        assert result.returncode == 0, result.stdout + result.stderr


def test_a_large_fold_fills_the_baseline_exactly_and_the_window_by_segments():
    summaries = profiles.output_summaries("scores", ["a", "b"], 0.5)
    monitor = Monitor(("m", 1, "s"), profiles.SignatureProfile(summaries, None), 100, 0)
    before = np.tile([[0.9, 0.1]], (130, 1))  # 100 for the baseline, 30 for the window
    monitor.fold({}, {"scores": before})
    snapshot = monitor.snapshot()
    assert snapshot["baseline_rows"] == 100 and snapshot["window_rows"] == 30
    monitor.fold({}, {"scores": np.tile([[0.1, 0.9]], (300, 1))})
    snapshot = monitor.snapshot()
    assert snapshot["window_rows"] == 100  # segments of 5 rows: the latest 100 exactly
    assert snapshot["window"]["scores.class"] == [0, 100]
