"""`python -m bench.grpc`: the gRPC door against the JSON route of the same server, in one run.

    python -m bench.grpc [--models-dir models] [--seconds 8] [--rounds 3] [--image PHOTO]
                         [--docs docs/BENCHMARKS.md]

mnist, one row per call, 64 calls in flight: TF Serving's `Predict` over gRPC, driven by h2load
(nghttp2-client: 8 connections x 8 streams, one prepared gRPC frame), against
`POST /v1/models/mnist:predict` driven by wrk (64 connections), rounds alternated on one
server. h2load only sees HTTP/2 statuses, and a gRPC error is an HTTP 200 with a grpc-status
trailer, so each load's errors are read from the server's own request counter
(`tfserve_requests_total`) instead. To show h2load is not the limit, the same rounds drive
`grpc.health.v1.Health/Check` (no model, no batcher) at the same concurrency: the generator
keeps up with that rate, so a `Predict` rate well below it is the server's; h2load's own CPU
per call is printed too.

inception_v3, one JPEG per call (`predict_image`), 16 calls in flight over gRPC, against the
signature called in this process at its best batch size (bench.inprocess), measured first, with
no server running.

Needs h2load and wrk (apt-get install nghttp2-client wrk).
"""

from __future__ import annotations

import argparse
import base64
import json
import re
import resource
import shutil
import statistics
import struct
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import httpx
import numpy as np
from prometheus_client.parser import text_string_to_metric_families

from bench import inprocess, processes, wrk
from bench.report import replace_section
from bench.run import batch_totals, example_instance

PREDICT_PATH = "/tensorflow.serving.PredictionService/Predict"
HEALTH_PATH = "/grpc.health.v1.Health/Check"


@dataclass
class H2Load:
    calls_per_s: float
    calls: int
    mean_ms: float
    generator_cpu_us_per_call: float


def grpc_frame(message: bytes) -> bytes:
    """gRPC's length-prefixed message: not compressed, 4-byte big-endian length."""
    return struct.pack(">?I", False, len(message)) + message


def predict_frame(model: str, signature: str, name: str, value) -> bytes:
    import tensorflow as tf
    from tensorflow_serving.apis import predict_pb2

    request = predict_pb2.PredictRequest()
    request.model_spec.name = model
    request.model_spec.signature_name = signature
    request.inputs[name].CopyFrom(tf.make_tensor_proto(value))
    return grpc_frame(request.SerializeToString())


def health_frame() -> bytes:
    from grpc_health.v1 import health_pb2

    return grpc_frame(health_pb2.HealthCheckRequest().SerializeToString())


def h2load(target: str, path: str, frame: Path, connections: int, streams: int,
           seconds: float, warm_up_s: int = 1) -> H2Load:
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    result = subprocess.run(
        ["h2load", "-t1", f"-c{connections}", f"-m{streams}", f"-D{max(1, round(seconds))}",
         f"--warm-up-time={warm_up_s}",  # counted from then: the first answers' wait left out
         "-d", str(frame), "-H", "content-type: application/grpc", "-H", "te: trailers",
         f"http://{target}{path}"], capture_output=True, text=True, check=True)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    out = result.stdout
    done = int(re.search(r"requests: \d+ total, \d+ started, (\d+) done", out).group(1))
    failed = re.search(r"(\d+) failed, (\d+) errored", out)
    if int(failed.group(1)) or int(failed.group(2)):
        raise RuntimeError(f"h2load saw failed requests:\n{out}")
    rate = float(re.search(r"finished in [\d.]+\w+, ([\d.]+) req/s", out).group(1))
    mean = re.search(r"time for request:\s+\S+\s+\S+\s+([\d.]+)(us|ms|s)", out)
    scale = {"us": 1e-3, "ms": 1.0, "s": 1e3}[mean.group(2)]
    cpu = (after.ru_utime + after.ru_stime) - (before.ru_utime + before.ru_stime)
    return H2Load(rate, done, float(mean.group(1)) * scale, 1e6 * cpu / max(done, 1))


def outcomes(url: str, model: str) -> dict[str, float]:
    """Requests of `model` the server counted, by outcome ("ok", "503", ...), all protocols."""
    text = httpx.get(url + "/metrics", timeout=10).text
    counts: dict[str, float] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == "tfserve_requests_total" and sample.labels.get("model") == model:
                status = sample.labels["status"]
                counts[status] = counts.get(status, 0) + sample.value
    return counts


def mean_batch(url: str, model: str, signature: str, drive) -> tuple[object, float]:
    """`drive()`'s result, and the rows per model call of the signature meanwhile."""
    rows, calls = batch_totals(url, f"{model}/{signature}")
    result = drive()
    rows_after, calls_after = batch_totals(url, f"{model}/{signature}")
    return result, (rows_after - rows) / max(calls_after - calls, 1)


def checked(url: str, model: str, calls, drive, in_flight: int):
    """`drive()`'s result, after checking that the server answered every call it counted
    meanwhile with OK, and at least as many as the generator counted (`calls(result)`);
    the `in_flight` calls the generator drops when it stops are counted "cancelled"."""
    before = outcomes(url, model)
    result = drive()
    after = outcomes(url, model)
    delta = {k: v - before.get(k, 0) for k, v in after.items() if v - before.get(k, 0)}
    if (set(delta) - {"ok", "cancelled"} or delta.get("cancelled", 0) > in_flight
            or delta.get("ok", 0) < calls(result)):
        raise RuntimeError(f"{model}: {calls(result)} calls counted by the generator, the "
                           f"server's outcomes: {delta}")
    return result


def mnist_rounds(running: processes.Running, grpc_target: str, folder: Path, seconds: float,
                 rounds: int) -> dict:
    digit = np.zeros((1, 784), np.float32)
    frame = folder / "mnist.grpc"
    frame.write_bytes(predict_frame("mnist", "serving_default", "image_input", digit))
    health = folder / "health.grpc"
    health.write_bytes(health_frame())
    body = folder / "mnist.json"
    body.write_text(json.dumps({"instances": digit.tolist()}))
    json_body = wrk.Body(body, "application/json", 1)
    url = running.url
    rates: dict[str, list[float]] = {"json": [], "grpc": [], "health": []}
    batches: dict[str, list[float]] = {"json": [], "grpc": []}
    cpu_per_call = []
    for _ in range(rounds):
        load, batch = mean_batch(url, "mnist", "serving_default", lambda: checked(
            url, "mnist", lambda r: r.requests, lambda: processes.drive(
                running.pid, url + "/v1/models/mnist:predict", json_body, 64, seconds), 64))
        assert load.errors == 0, load
        rates["json"].append(load.rps)
        batches["json"].append(batch)
        calls, batch = mean_batch(url, "mnist", "serving_default", lambda: checked(
            url, "mnist", lambda r: r.calls, lambda: h2load(
                grpc_target, PREDICT_PATH, frame, 8, 8, seconds), 64))
        rates["grpc"].append(calls.calls_per_s)
        batches["grpc"].append(batch)
        cpu_per_call.append(calls.generator_cpu_us_per_call)
        rates["health"].append(h2load(grpc_target, HEALTH_PATH, health, 8, 8,
                                      seconds).calls_per_s)
        print(f"  round: JSON {load.rps:,.0f}/s, gRPC {calls.calls_per_s:,.0f}/s, "
              f"health {rates['health'][-1]:,.0f}/s", flush=True)
    medians = {name: statistics.median(values) for name, values in rates.items()}
    return {"rows_per_s": medians, "grpc_over_json": medians["grpc"] / medians["json"],
            "mean_batch": {name: statistics.median(v) for name, v in batches.items()},
            "rounds": rates, "h2load_cpu_us_per_call": statistics.median(cpu_per_call)}


def inception(models_dir: Path, image: Path | None, folder: Path, seconds: float) -> dict:
    instance = example_instance(models_dir, "inception_v3/predict_image", image)
    measured = inprocess.measure(models_dir, "inception_v3/predict_image", instance,
                                 [1, 4, 8, 16])
    photo = base64.b64decode(instance["b64"])
    frame = folder / "inception.grpc"
    frame.write_bytes(predict_frame("inception_v3", "predict_image", "image_bytes",
                                    np.array([photo], dtype=object)))
    grpc_target = f"127.0.0.1:{processes.free_port()}"
    with processes.our_server(models_dir, grpc_port=grpc_target.rsplit(":", 1)[1]) as running:
        h2load(grpc_target, PREDICT_PATH, frame, 1, 16, 3)  # the batch sizes' first calls
        calls, batch = mean_batch(running.url, "inception_v3", "predict_image", lambda: checked(
            running.url, "inception_v3", lambda r: r.calls, lambda: h2load(
                grpc_target, PREDICT_PATH, frame, 1, 16, seconds, warm_up_s=5), 16))
    return {"in_process_best": measured.best_rows_per_s, "best_batch": measured.best_batch,
            "in_process_by_batch": measured.rows_per_s_by_batch,
            "grpc_images_per_s": calls.calls_per_s, "mean_ms": calls.mean_ms,
            "share": calls.calls_per_s / measured.best_rows_per_s, "mean_batch": batch}


def markdown(mnist: dict, images: dict, seconds: float, rounds: int) -> str:
    rates = mnist["rows_per_s"]
    verdict = "met" if mnist["grpc_over_json"] >= 1.5 else "**missed**"
    share = "met" if images["share"] >= 0.95 else "**missed**"
    return (
        "## gRPC\n\n"
        f"Written by `python -m bench.grpc --docs docs/BENCHMARKS.md` ({rounds} alternated "
        f"rounds of {seconds:.0f} s on one server, medians).\n\n"
        "| target | measured | |\n|---|---|---|\n"
        f"| mnist, 1 row, 64 in flight: gRPC Predict ÷ JSON route >= 1.5 | "
        f"{mnist['grpc_over_json']:.2f}x ({rates['grpc']:,.0f} vs {rates['json']:,.0f} "
        f"rows/s) | {verdict} |\n"
        f"| inception_v3, 1 JPEG, 16 in flight: gRPC >= 95% of in-process images/s at the best "
        f"batch | {images['share']:.0%} ({images['grpc_images_per_s']:.1f} vs "
        f"{images['in_process_best']:.1f} at batch {images['best_batch']}; mean batch "
        f"{images['mean_batch']:.1f}) | {share} |\n\n"
        "The load generator is not the limit: in the same rounds h2load drove gRPC's health "
        f"check (no model) at {rates['health']:,.0f} calls/s, "
        f"{rates['health'] / rates['grpc']:.1f}x the Predict rate, spending "
        f"{mnist['h2load_cpu_us_per_call']:.0f} µs of CPU per Predict call. Each load's calls "
        "were all counted as answered (status ok) by the server's own metrics.\n\n"
        "Where mnist's gRPC rate goes: grpcio's asyncio server itself. Its health check, "
        f"with no model, no codec and no batcher, peaks at {rates['health']:,.0f} calls/s, "
        f"{rates['health'] / rates['json']:.2f}x the JSON route's rate *with* the model, so "
        "no Predict implementation on grpcio's Python server reaches 1.5x here; its calls "
        "also reach the event loop one at a time (a poller thread hands them over), so the "
        "batcher sees one call in the server and runs it alone: mean batch "
        f"{mnist['mean_batch']['grpc']:.1f} over gRPC, {mnist['mean_batch']['json']:.1f} on the "
        "JSON route. inception_v3's calls are long enough to batch over gRPC too (mean batch "
        f"{images['mean_batch']:.1f}); its in-process rate is measured before the server "
        "starts, not interleaved, so that ratio moves with the machine's load.\n")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models-dir", type=Path, default=Path("models"))
    parser.add_argument("--seconds", type=float, default=8.0)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--image", type=Path, help="photo for inception (default: the "
                        "export's example)")
    parser.add_argument("--docs", type=Path, help="write the section into this markdown file")
    args = parser.parse_args()
    for tool in ("h2load", "wrk"):
        if not shutil.which(tool):
            raise SystemExit(f"{tool} not found: apt-get install nghttp2-client wrk")
    with tempfile.TemporaryDirectory() as scratch:
        folder = Path(scratch)
        print("inception_v3: in process, then over gRPC", flush=True)
        images = inception(args.models_dir, args.image, folder, args.seconds * 2)
        grpc_target = f"127.0.0.1:{processes.free_port()}"
        print("mnist: JSON route, gRPC Predict, gRPC health, alternated", flush=True)
        with processes.our_server(args.models_dir,
                                  grpc_port=grpc_target.rsplit(":", 1)[1]) as running:
            time.sleep(1)
            mnist = mnist_rounds(running, grpc_target, folder, args.seconds, args.rounds)
    text = markdown(mnist, images, args.seconds, args.rounds)
    print(text)
    print(json.dumps({"mnist": mnist, "inception_v3": images}, indent=1))
    if args.docs:
        replace_section(args.docs, "grpc", text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
