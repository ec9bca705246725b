"""Batching on vs off, side by side in one run: `python -m bench.batching [--models-dir DIR]`.

Starts the server twice on loopback (batching on, then off), drives each with wrk (POST of one
MNIST instance to /v1/models/mnist:predict) at 1 connection (latency) and 64 connections
(throughput), and compares with the signature called in-process. Needs `wrk` (Debian package)
and an exported `mnist` model.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

import numpy as np

from tests.server import running_server

HERE = Path(__file__).parent


def wrk(url: str, body_file: Path, connections: int, seconds: int) -> dict:
    result = subprocess.run(
        ["wrk", f"-t{min(connections, 2)}", f"-c{connections}", f"-d{seconds}s", "--latency",
         "-s", str(HERE / "post.lua"), url],
        env={**os.environ, "BODY_FILE": str(body_file)}, capture_output=True, text=True,
        check=True)
    line = next(x for x in result.stdout.splitlines() if x.startswith("RESULT"))
    values = {k: float(v) for k, v in re.findall(r"(\w+)=([\d.]+)", line)}
    return {"rps": values["requests"] / (values["duration_us"] / 1e6),
            "p50_ms": values["p50_us"] / 1000, "p90_ms": values["p90_us"] / 1000,
            "p99_ms": values["p99_us"] / 1000, "errors": int(values["errors"])}


def in_process_ms(model_dir: Path, instance: list[float], repeats: int = 300) -> float:
    import tensorflow as tf

    from app.registry import scan

    version = scan(model_dir)["mnist"][-1]
    signature = tf.saved_model.load(str(model_dir / "mnist" / str(version))).signatures[
        "serving_default"]
    x = np.asarray([instance], np.float32)
    for _ in range(20):
        signature(image_input=tf.constant(x))
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        signature(image_input=tf.constant(x))["prediction"].numpy()
        times.append(time.perf_counter() - started)
    return statistics.median(times) * 1000


def mean_batch_size(url: str) -> float:
    import httpx

    text = httpx.get(url + "/metrics").text
    pattern = r'tfserve_batch_size_(sum|count)\{model="mnist",signature="serving_default",' \
              r'version="\d+"\} ([\d.e+]+)'
    values = dict(re.findall(pattern, text))
    return float(values["sum"]) / float(values["count"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models-dir", type=Path, default=Path("models"))
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--batch-timeout-ms", type=float,
                        help="TFSERVE_BATCH_TIMEOUT_MS for the batching run (default: the "
                             "server's default)")
    args = parser.parse_args()
    if not shutil.which("wrk"):
        raise SystemExit("wrk not found: apt-get install wrk")
    with tempfile.TemporaryDirectory() as tmp:
        only_mnist = Path(tmp)
        shutil.copytree(args.models_dir / "mnist", only_mnist / "mnist")
        instance = np.random.default_rng(0).random(784).round(4).tolist()
        body = only_mnist / "body.json"
        body.write_text(json.dumps({"instances": [instance]}))
        rows = {"in-process signature call": {"p50_ms": in_process_ms(only_mnist, instance)}}
        for label, enabled in (("server, batching on", True), ("server, batching off", False)):
            knobs = {"batching_enabled": str(enabled).lower()}
            if args.batch_timeout_ms is not None:
                knobs["batch_timeout_ms"] = args.batch_timeout_ms
            with running_server(only_mnist, poll_interval_s=0, **knobs) as url:
                target = url + "/v1/models/mnist:predict"
                wrk(target, body, 8, 2)  # warm the connection pool and caches
                one = wrk(target, body, 1, args.seconds)
                many = wrk(target, body, 64, args.seconds)
                rows[label] = {"p50_ms": one["p50_ms"], "rps_64": many["rps"],
                               "p99_ms_64": many["p99_ms"], "errors": one["errors"] +
                               many["errors"], "mean_batch": mean_batch_size(url)}
    on, off = rows["server, batching on"], rows["server, batching off"]
    print("| | p50 latency, 1 connection (ms) | requests/s, 64 connections | "
          "p99 at 64 (ms) | mean batch size | errors |")
    print("|---|---|---|---|---|---|")
    for label, r in rows.items():
        print(f"| {label} | {r['p50_ms']:.2f} | {r.get('rps_64', float('nan')):.0f} | "
              f"{r.get('p99_ms_64', float('nan')):.1f} | {r.get('mean_batch', float('nan')):.1f}"
              f" | {r.get('errors', 0)} |")
    print(f"\nbatching on / off throughput at 64 connections: {on['rps_64'] / off['rps_64']:.2f}x")


if __name__ == "__main__":
    main()
