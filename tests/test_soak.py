"""The soak's short run: two minutes of mixed open-loop traffic while mnist versions rotate
(`make soak` runs twenty)."""

from __future__ import annotations

import pytest

from bench import soak
from tests.conftest import SAMPLES

# `make soak`'s bound is 5% over 20 minutes (measured +0.98%). Two minutes with a version
# loaded every 20 s end while the allocator and TensorFlow's caches still grow, and a shared
# CI core makes bursts: the short run bounds gross leaks only. Without TFSERVE_WARMUP_FULL_BATCH
# (bench.soak turns it on) a CI run moved +24.3%: TensorFlow keeping the memory of the first
# batch larger than the first window's (docs/RELIABILITY.md); with it, +1.1% here.
SHORT_RUN_MEMORY_DRIFT = 0.15


@pytest.mark.long
def test_two_minutes_of_mixed_traffic_with_rotating_versions_leave_nothing_behind(models_dir):
    report, answers, samples = soak.run(models_dir, minutes=2, rotate_every_s=20, window_s=30,
                                        bucket_s=5, probe_s=5, samples=SAMPLES)
    print("\n" + soak.markdown(report))
    assert len(report.rotations) >= 5
    assert {"mnist", "imdb_text", "inception_upload"} <= set(report.by_kind)
    assert any(kind.startswith("bad_") for kind in report.by_kind)
    assert not report.unexpected, (report.unexpected, report.unexpected_errors)
    assert abs(report.memory_drift) <= SHORT_RUN_MEMORY_DRIFT, report
    assert report.other_fds_last <= report.other_fds_first, report
    assert report.threads_last <= report.threads_first, report
    # the p99 target (1.2x) is `make soak`'s; two minutes on a shared CI core only bound it
    assert report.p99_last_ms <= 3 * report.p99_first_ms, report
    assert len(samples) >= 100 and len(answers) == report.requests
