"""A short open-loop overload at 4x measured capacity (`make overload` runs the long one)."""

from __future__ import annotations

import pytest

from bench import overload
from tests.server import running_server


@pytest.mark.long
def test_overload_is_refused_fast_and_nothing_is_lost(models_dir):
    with running_server(models_dir, request_timeout_s=3, max_batch_size=16,
                        poll_interval_s=0) as url:
        report = overload.run(url, url.pid, "inception_v3", "predict_image", deadline_s=3,
                              factor=4, seconds=4, probe_s=3)
    print("\n" + overload.markdown(report))
    assert not report.problems, report
    assert report.refused_p99_ms < 500  # refusals do not queue behind the model
