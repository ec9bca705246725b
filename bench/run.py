"""Scenarios, systems, the run, and the report (markdown + JSON).

Every system serves the same signatures of the same SavedModels; wrk sends every system the
same rows. Ours answers at TensorFlow Serving's route, the references at /predict/{target}.
"""

from __future__ import annotations

import base64
import contextlib
import json
import math
import re
import struct
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path

import httpx

from bench import inprocess, wrk
from bench.processes import Running, drive, free_port, our_server, rss_mib, serve

OURS, UNBATCHED = "tfserve", "tfserve, batching off"  # tfserve: default settings, access log on
QUIET = "tfserve, access log off"  # TFSERVE_LOG_LEVEL=WARNING
ROUTED = "tfserve, FastAPI routing"  # TFSERVE_DIRECT_PREDICT=false: the hot path's before
WORKERS2 = "tfserve, 2 workers"  # TFSERVE_WORKERS=2
BASELINE = "tfserve, baseline source"  # --baseline DIR: another checkout, say the last release
PLAIN, LITSERVE, FLOOR = "plain FastAPI", "LitServe (batching)", "FastAPI no-model floor"
RAW = "raw ASGI constant"  # uvicorn alone: the HTTP server's ceiling
SERVERS = (OURS, QUIET, ROUTED, UNBATCHED, WORKERS2, BASELINE)
SHORT_NAMES = {"tfserve": OURS, "quiet": QUIET, "routed": ROUTED, "unbatched": UNBATCHED,
               "workers2": WORKERS2, "baseline": BASELINE, "plain": PLAIN,
               "litserve": LITSERVE, "floor": FLOOR, "raw": RAW}  # --system on the command line


@dataclass
class Scenario:
    name: str
    target: str  # model/signature
    instances: int  # per request
    connections: list[int]
    systems: list[str]
    # how tfserve is asked: "v1" (TF Serving JSON), "multipart" (the upload route), "v2-json"
    # or "v2-binary" (Open Inference Protocol; binary: the image file as a BYTES tensor)
    protocol: str = "v1"


SCENARIOS = [
    Scenario("mnist", "mnist/serving_default", 1, [1, 16, 64, 256],
             [OURS, QUIET, ROUTED, UNBATCHED, WORKERS2, BASELINE, PLAIN, LITSERVE, FLOOR, RAW]),
    Scenario("mnist-v2", "mnist/serving_default", 1, [1, 64], [OURS], protocol="v2-json"),
    Scenario("mnist-32", "mnist/serving_default", 32, [16],
             [OURS, UNBATCHED, PLAIN, LITSERVE, FLOOR]),
    Scenario("inception-b64", "inception_v3/predict_image", 1, [1, 4, 16],
             [OURS, UNBATCHED, WORKERS2, BASELINE, PLAIN, LITSERVE, FLOOR]),
    Scenario("inception-v2-binary", "inception_v3/predict_image", 1, [1, 4, 16], [OURS],
             protocol="v2-binary"),
    Scenario("inception-multipart", "inception_v3/predict_image", 1, [1, 4, 16], [OURS],
             protocol="multipart"),
    Scenario("imdb-text", "imdb_sentiment/predict_text", 1, [16],
             [OURS, UNBATCHED, PLAIN, LITSERVE, FLOOR]),
]
# Each client gets at least this many answers per measurement, judged by the model's own best
# rate in-process: 16 clients over inception's ~1.1 s calls complete in bursts a batch apart,
# and 10 s held few enough of them that the start and the window's edges cost ~10%.
MIN_ANSWERS_PER_CLIENT = 25
IN_PROCESS_BATCHES = {"mnist/serving_default": [1, 16, 64, 256],
                      "inception_v3/predict_image": [1, 4, 8, 16, 32],
                      "imdb_sentiment/predict_text": [1, 16, 64]}


@dataclass
class Result:
    scenario: str
    system: str
    connections: int
    rps: float
    rows_per_s: float
    p50_ms: float
    p90_ms: float
    p99_ms: float
    errors: int
    mean_batch: float | None = None
    retransmits: int | None = None  # TCP retransmissions during the measurement
    loop_us: float | None = None  # event-loop (main threads') CPU time per request


@dataclass
class Report:
    machine: str
    command: str
    seconds: float
    in_process: dict[str, dict] = field(default_factory=dict)
    results: list[Result] = field(default_factory=list)
    cold_start_s: float = 0.0
    rss_mib: dict[str, float] = field(default_factory=dict)


def example_instance(models_dir: Path, target: str, image: Path | None):
    """One instance for the target: a real photo when given, else the export's own example."""
    model, signature = target.split("/")
    version = max(int(p.name) for p in (models_dir / model).iterdir() if p.name.isdigit())
    examples = json.loads((models_dir / model / str(version) / "assets.extra" /
                           "examples.json").read_text())
    instance = examples[signature]["instances"][0]
    if isinstance(instance, dict) and len(instance) == 1 and "b64" not in instance:
        instance = next(iter(instance.values()))  # {"input": value} -> value
    if image is not None and isinstance(instance, dict) and "b64" in instance:
        instance = {"b64": base64.b64encode(image.read_bytes()).decode()}
    return instance


def write_body(folder: Path, scenario: Scenario, system: str, instance,
               url: str) -> wrk.Body:
    model, signature = scenario.target.split("/")
    path = folder / f"{scenario.name}-{'ours' if system in SERVERS else 'ref'}.body"
    if scenario.protocol == "multipart":
        boundary = uuid.uuid4().hex
        data = base64.b64decode(instance["b64"])
        path.write_bytes(f'--{boundary}\r\nContent-Disposition: form-data; name="file"; '
                         f'filename="image.jpg"\r\nContent-Type: image/jpeg\r\n\r\n'.encode()
                         + data + f"\r\n--{boundary}--\r\n".encode())
        return wrk.Body(path, f"multipart/form-data; boundary={boundary}", 1)
    if scenario.protocol.startswith("v2"):
        return _v2_body(path, scenario, instance, url)
    body = {"instances": [instance] * scenario.instances}
    if system in SERVERS:
        body["signature_name"] = signature
    path.write_text(json.dumps(body))
    return wrk.Body(path, "application/json", scenario.instances)


def _v2_body(path: Path, scenario: Scenario, instance, url: str) -> wrk.Body:
    """An Open Inference Protocol request of the same rows, named as the server describes."""
    model, signature = scenario.target.split("/")
    meta = httpx.get(f"{url}/v2/models/{model}", params={"signature_name": signature},
                     timeout=30).json()
    content, content_type, headers = v2_request(meta, scenario, instance)
    path.write_bytes(content)
    return wrk.Body(path, content_type, scenario.instances, headers)


def v2_request(meta: dict, scenario: Scenario, instance) -> tuple[bytes, str, dict[str, str]]:
    """The scenario's v2 request for a model of metadata `meta`: body, content type, headers."""
    signature = scenario.target.split("/")[1]
    (tensor,) = meta["inputs"]
    rows = scenario.instances
    header = {"parameters": {"signature_name": signature}, "inputs": [
        {"name": tensor["name"], "datatype": tensor["datatype"]}]}
    if scenario.protocol == "v2-json":
        values = [instance] * rows
        header["inputs"][0].update(shape=[rows, *_dims(instance)], data=values)
        return json.dumps(header).encode(), "application/json", {}
    element = base64.b64decode(instance["b64"])
    binary = (struct.pack("<I", len(element)) + element) * rows
    header["inputs"][0].update(shape=[rows], parameters={"binary_data_size": len(binary)})
    head = json.dumps(header).encode()
    return head + binary, "application/octet-stream", {
        "Inference-Header-Content-Length": str(len(head))}


def _dims(value) -> list[int]:
    return [len(value), *_dims(value[0])] if isinstance(value, list) else []


def route(scenario: Scenario, system: str) -> str:
    model, signature = scenario.target.split("/")
    if system not in SERVERS:
        return f"/predict/{model}/{signature}"
    return {"multipart": f"/models/{model}/predict/image",
            "v1": f"/v1/models/{model}:predict"}.get(scenario.protocol,
                                                      f"/v2/models/{model}/infer")


def measure_seconds(seconds: float, connections: int, rows: int,
                    best_rows_per_s: float | None) -> float:
    """`seconds`, or longer where the model is too slow to answer each client
    MIN_ANSWERS_PER_CLIENT times in that time even at its in-process best."""
    if not best_rows_per_s:
        return seconds
    return max(seconds, math.ceil(MIN_ANSWERS_PER_CLIENT * connections * rows / best_rows_per_s))


def batch_totals(url: str, target: str) -> tuple[float, float]:
    model, signature = target.split("/")
    text = httpx.get(url + "/metrics", timeout=10).text
    totals = {}
    for kind in ("sum", "count"):
        pattern = (rf'tfserve_batch_size_{kind}\{{model="{model}",signature="{signature}",'
                   rf'version="\d+"\}} ([\d.e+]+)')
        totals[kind] = sum(float(v) for v in re.findall(pattern, text))
    return totals["sum"], totals["count"]


@contextlib.contextmanager
def start(system: str, models_dir: Path, targets: list[str],
          baseline: Path | None = None) -> Iterator[Running]:
    if system == OURS:
        with our_server(models_dir, log_level="INFO") as running:
            yield running
    elif system == QUIET:
        with our_server(models_dir, log_level="WARNING") as running:
            yield running
    elif system == BASELINE:
        if baseline is None:
            raise SystemExit("the baseline system needs --baseline DIR (another checkout)")
        with our_server(models_dir, source=baseline, log_level="INFO") as running:
            yield running
    elif system == UNBATCHED:
        with our_server(models_dir, batching_enabled="false") as running:
            yield running
    elif system == ROUTED:
        with our_server(models_dir, direct_predict="false") as running:
            yield running
    elif system == WORKERS2:
        with our_server(models_dir, workers=2) as running:
            yield running
    else:
        kind = {PLAIN: "plain", LITSERVE: "litserve", FLOOR: "floor", RAW: "raw"}[system]
        port = free_port()
        with serve([sys.executable, "-m", "bench.references", kind, *targets,
                    "--models-dir", str(models_dir), "--port", str(port)], port,
                   "/health") as running:
            yield running


def run_system(system: str, scenarios: list[Scenario], models_dir: Path, folder: Path,
               image: Path | None, seconds: float, report: Report,
               baseline: Path | None = None) -> None:
    mine = [s for s in scenarios if system in s.systems]
    if not mine:
        return
    targets = sorted({s.target for s in mine})
    with start(system, models_dir, targets, baseline) as running:
        if system == OURS:
            report.cold_start_s = round(running.ready_s, 1)
        for scenario in mine:
            instance = example_instance(models_dir, scenario.target, image)
            body = write_body(folder, scenario, system, instance, running.url)
            url = running.url + route(scenario, system)
            wrk.drive(url, body, 4, 1)  # warm connections, caches, graph paths
            for connections in scenario.connections:
                before = (batch_totals(running.url, scenario.target) if system in SERVERS
                          else None)
                best = report.in_process.get(scenario.target, {}).get("best_rows_per_s")
                load = drive(running.pid, url, body, connections,
                             measure_seconds(seconds, connections, body.rows, best))
                result = Result(scenario.name, system, connections, round(load.rps, 1),
                                round(load.rps * body.rows, 1), round(load.p50_ms, 2),
                                round(load.p90_ms, 2), round(load.p99_ms, 2), load.errors,
                                retransmits=load.retransmits,
                                loop_us=None if load.loop_us is None else round(load.loop_us))
                if before is not None:
                    after = batch_totals(running.url, scenario.target)
                    count = after[1] - before[1]
                    result.mean_batch = round((after[0] - before[0]) / count, 1) if count else None
                report.results.append(result)
                print(f"  {scenario.name:20} {system:24} c={connections:<4} "
                      f"{result.rps:>9.1f} req/s  p50 {result.p50_ms:>7.2f} ms  "
                      f"p99 {result.p99_ms:>8.2f} ms  errors {result.errors}"
                      + (f"  batch {result.mean_batch}" if result.mean_batch else "")
                      + (f"  TCP retransmits {result.retransmits}" if result.retransmits
                         else ""),
                      flush=True)
        report.rss_mib[system] = round(rss_mib(running.pid))


def run(scenarios: list[Scenario], systems: list[str], models_dir: Path, folder: Path,
        image: Path | None, seconds: float, report: Report,
        baseline: Path | None = None) -> Report:
    wrk.require()
    for target in sorted({s.target for s in scenarios}):
        instance = example_instance(models_dir, target, image)
        measured = inprocess.measure(models_dir, target, instance, IN_PROCESS_BATCHES[target])
        report.in_process[target] = asdict(measured)
        print(f"  in-process {target}: p50 {measured.p50_ms_one_row} ms at 1 row, best "
              f"{measured.best_rows_per_s} rows/s at batch {measured.best_batch}", flush=True)
    for system in systems:
        started = time.perf_counter()
        run_system(system, scenarios, models_dir, folder, image, seconds, report, baseline)
        print(f"  {system} done in {time.perf_counter() - started:.0f}s", flush=True)
    return report
