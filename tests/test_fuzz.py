"""Schemathesis against our own OpenAPI document, every route: no 5xx, no response that
breaks the document (undocumented status or content type, body off its schema).

The default run is small and seeded (CI); `make fuzz` runs many more cases with a fresh seed.
Two of schemathesis' checks are left out, for reasons of the API's shape, not of the server:
  positive_data_acceptance   a schema cannot say "decodable image" or "784 floats for mnist"
                             on the generic routes, so schema-valid bodies are often refused
  allow_header_conformance   TF Serving's /v1/models/{model} (GET) and
                             /v1/models/{model}:predict (POST) share one template shape in
                             OpenAPI; Allow is right per resource, not per template
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from tests.server import running_server

EXAMPLES = int(os.environ.get("FUZZ_EXAMPLES", "20"))
SEED = os.environ.get("FUZZ_SEED", "20261123")
SKIPPED_CHECKS = "positive_data_acceptance,allow_header_conformance"


@pytest.mark.long
def test_fuzz_every_route_against_the_openapi_document(models_dir, tmp_path):
    log, report = tmp_path / "server.log", tmp_path / "schemathesis.json"
    schemathesis = Path(sys.executable).parent / "schemathesis"
    with running_server(models_dir, log=log, max_body_bytes=3_000_000, poll_interval_s=0,
                        log_level="INFO") as url:
        run = subprocess.run(
            [str(schemathesis), "run", f"{url}/openapi.json", "--checks", "all",
             "--exclude-checks", SKIPPED_CHECKS, "--max-examples", str(EXAMPLES),
             "--seed", SEED, "--request-timeout", "60", "--no-color", "--report", "json",
             "--report-json-path", str(report)],
            capture_output=True, text=True, timeout=1800, cwd=tmp_path)  # its caches go there
        assert httpx.get(url + "/readyz").status_code == 200
    summary = json.loads(report.read_text())
    cases = summary["test_cases"]
    print(f"\nschemathesis: {cases['generated']} cases on {summary['operations']['tested']} "
          f"operations, seed {SEED}, {len(summary['failures'])} failures")
    assert run.returncode == 0, run.stdout[-6000:]
    assert not summary["failures"] and not summary["errors"], run.stdout[-6000:]
    assert summary["operations"]["tested"] == summary["operations"]["total"] >= 20
    assert cases["generated"] >= 20 * EXAMPLES
    server_log = log.read_text()
    assert "Traceback" not in server_log and "unhandled error" not in server_log
