"""End-to-end check of the deployment: `make compose-test` (slow; not part of `make test`).

Builds the image, brings the compose stack up with two API replicas behind the proxy, waits
until it is healthy, sends real predictions for mnist, cifar10, imdb_sentiment and
inception_v3 through the proxy, checks that both replicas served traffic, and tears it down.
gRPC through the proxy's port 8500 too (deploy/grpc_check.py): health, TF Serving's Predict on
mnist, calls on one connection spread over both replicas (seen in the replicas' own request
counts and in nginx's x-upstream), Triton's client, a 17 MB inception_v3 batch, a message over
the size limit refused by the replica, and last, one replica stopped (`docker stop`: SIGTERM,
drain) under 4 gRPC clients, none of whose calls may fail.
Prints the image size and the time from `up` to healthy. Needs a Docker engine
(../shared/tools/docker-sandbox starts one here) and trained models in --models-dir, or
`--fresh` to start from an empty models volume that the trainer fills (minutes).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import subprocess
import threading
import time
from pathlib import Path

import grpc
import grpc_check
import httpx

ROOT = Path(__file__).resolve().parents[1]
PROJECT = "tfserve-check"
SAMPLES = ROOT.parent / "shared" / "samples"


def sh(*args: str, env: dict | None = None, capture: bool = False) -> str:
    result = subprocess.run(args, cwd=ROOT, env={**os.environ, **(env or {})}, check=True,
                            text=True, capture_output=capture)
    return result.stdout if capture else ""


def compose(*args: str, env: dict, capture: bool = False) -> str:
    return sh("docker-compose", "-p", PROJECT, *args, env=env, capture=capture)


def wait_healthy(env: dict, url: str, replicas: int, timeout: float = 1500) -> float:
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        ids = compose("ps", "-q", "api", env=env, capture=True).split()
        states = [sh("docker", "inspect", "-f", "{{.State.Health.Status}}", i,
                     capture=True).strip() for i in ids]
        proxy_ok = False
        with contextlib.suppress(httpx.HTTPError):
            proxy_ok = httpx.get(url + "/readyz", timeout=2).status_code == 200
        if len(ids) == replicas and all(s == "healthy" for s in states) and proxy_ok \
                and trainer_done(env) and all_models_served(url, replicas):
            return time.monotonic() - started
        time.sleep(1)
    raise TimeoutError(f"stack not healthy within {timeout}s")


MODELS = ("mnist", "cifar10", "cifar10_transfer", "imdb_sentiment", "inception_v3")


def trainer_done(env: dict) -> bool:
    """The one-shot trainer has exited; a failure ends the check at once."""
    (container,) = compose("ps", "-a", "-q", "trainer", env=env, capture=True).split()
    state = sh("docker", "inspect", "-f", "{{.State.Status}} {{.State.ExitCode}}", container,
               capture=True).split()
    if state[0] == "exited" and state[1] != "0":
        raise RuntimeError(f"the trainer failed with exit code {state[1]}")
    return state[0] == "exited"


def all_models_served(url: str, replicas: int) -> bool:
    """Every model answers its status route on every replica (asked round-robin)."""
    for _ in range(2 * replicas):
        for model in MODELS:
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(f"{url}/v1/models/{model}", timeout=2).status_code == 200:
                    continue
            return False
    return True


def predictions(url: str) -> dict[str, object]:
    mnist = httpx.post(url + "/serving_default/predict", timeout=60,
                       json={"instances": [{"image_input": [0.0] * 784}]})
    image = (SAMPLES / "images" / "umbrella.jpg").read_bytes()
    cifar = httpx.post(url + "/models/cifar10/predict/image", timeout=60,
                       files={"file": ("umbrella.jpg", image)})
    inception = httpx.post(url + "/models/inception_v3/predict/image", timeout=60,
                           files={"file": ("umbrella.jpg", image)})
    imdb = httpx.post(url + "/models/imdb_sentiment/predict/text", timeout=60,
                      json={"texts": ["A wonderful film, beautifully acted."]})
    results = {}
    for name, response in (("mnist", mnist), ("cifar10", cifar), ("inception_v3", inception),
                           ("imdb_sentiment", imdb)):
        assert response.status_code == 200, (name, response.status_code, response.text)
        results[name] = response.json()["predictions"][0]
    assert len(results["mnist"]["prediction"]) == 10
    assert len(results["inception_v3"]["classes"]) == 3
    assert results["imdb_sentiment"]["label"] in ("positive", "negative")
    return results


def requests_served(env: dict) -> list[float]:
    counts = []
    for container in compose("ps", "-q", "api", env=env, capture=True).split():
        text = sh("docker", "exec", container, "python", "-c",
                  "import urllib.request as u;"
                  "print(u.urlopen('http://127.0.0.1:8089/metrics').read().decode())",
                  capture=True)
        counts.append(sum(float(line.split()[-1]) for line in text.splitlines()
                          if line.startswith("tfserve_requests_total{")
                          and 'status="ok"' in line))
    return counts


def wait_grpc(target: str, timeout: float = 60) -> None:
    """The proxy's gRPC port answers, and a replica says SERVING (HTTP said ready already)."""
    started = time.monotonic()
    while True:
        try:
            if grpc_check.health(target) == "SERVING":
                return
        except grpc.RpcError:
            if time.monotonic() - started > timeout:
                raise
        time.sleep(1)


def grpc_calls(env: dict, target: str, replicas: int, calls: int = 40) -> dict[str, object]:
    """gRPC through the proxy: answers checked, and calls on one client connection reach every
    replica (nginx places each call on its own)."""
    wait_grpc(target)
    upstreams = set()
    with grpc_check.channel(target) as ch:  # one channel: one HTTP/2 connection to nginx
        stub = grpc_check.prediction_stub(ch)
        grpc_check.mnist_digit(stub)  # connected, TensorFlow's protos imported
        before = requests_served(env)
        started = time.monotonic()
        for _ in range(calls):
            digit, upstream = grpc_check.mnist_digit(stub)
            upstreams.add(upstream)
        per_call_ms = (time.monotonic() - started) / calls * 1000
        after = requests_served(env)  # only these calls in between: no HTTP load now
        served = [b - a for a, b in zip(before, after, strict=True)]
        assert sum(served) == calls, (served, calls)
        assert len(served) == replicas and all(c > 0 for c in served), served
        assert len(upstreams) == replicas, upstreams
        triton = grpc_check.triton_mnist(target)
        big = grpc_check.large_batch(stub)
        refused = grpc_check.too_large(stub)
        assert refused == "RESOURCE_EXHAUSTED", refused
    return {"health": grpc_check.health(target), "mnist_digit": digit,
            "predict_ms_per_call": round(per_call_ms, 1),
            "calls_per_replica": served, "upstreams": sorted(upstreams),
            "triton_digits": triton, "inception_batch": big, "over_the_limit": refused}


def replica_stopped(env: dict, target: str, clients: int = 4) -> dict[str, object]:
    """One replica stopped while `clients` gRPC clients call Predict back to back: nginx
    sends new calls elsewhere once the replica refuses connections, and the clients' retry
    policy covers an UNAVAILABLE; no call may fail."""
    outcomes: list[str] = []
    tried_twice = []  # calls nginx handed to a second replica (x-upstream "a, b")
    details: list[str] = []  # what the client was told of a failed call
    stop = threading.Event()

    def client() -> None:
        with grpc_check.channel(target) as ch:
            stub = grpc_check.prediction_stub(ch)
            while not stop.is_set():
                try:
                    _, upstream = grpc_check.mnist_digit(stub, timeout=60)
                    outcomes.append("OK")
                    if "," in upstream:
                        tried_twice.append(upstream)
                except grpc.RpcError as err:
                    outcomes.append(err.code().name)
                    details.append(f"{err.code().name}: {err.details()}"[:200])

    threads = [threading.Thread(target=client) for _ in range(clients)]
    for thread in threads:
        thread.start()
    time.sleep(3)
    victim = compose("ps", "-q", "api", env=env, capture=True).split()[-1]
    started = time.monotonic()
    sh("docker", "stop", victim)
    stop_s = time.monotonic() - started
    time.sleep(5)  # past the proxy's DNS answers (2 s)
    stop.set()
    for thread in threads:
        thread.join()
    failed = {code: outcomes.count(code) for code in set(outcomes) - {"OK"}}
    exit_code = sh("docker", "inspect", "-f", "{{.State.ExitCode}}", victim, capture=True)
    report = {"calls": len(outcomes), "failed": failed, "stop_s": round(stop_s, 1),
              "exit_code": int(exit_code), "placed_by_nginx_on_a_second_try": len(tried_twice),
              "errors": sorted(set(details))[:5]}
    assert not failed and outcomes.count("OK") > 0, report
    return report


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models-dir", type=Path, default=ROOT / "models")
    parser.add_argument("--replicas", type=int, default=2)
    parser.add_argument("--port", type=int, default=18089)
    parser.add_argument("--grpc-port", type=int, default=18500)
    parser.add_argument("--no-build", action="store_true")
    parser.add_argument("--fresh", action="store_true",
                        help="start from an empty models volume: the trainer builds them")
    args = parser.parse_args()
    image = "tfserve:check"
    if not args.no_build:
        started = time.monotonic()
        sh("docker", "build", "--network=host", "-t", image, ".")
        print(f"image built in {time.monotonic() - started:.0f} s")
    size = int(sh("docker", "image", "inspect", "-f", "{{.Size}}", image, capture=True))
    env = {"TFSERVE_IMAGE": image,
           "OFFLINE_DATA": str((ROOT.parent / "shared" / "keras").resolve()),
           "PORT": str(args.port), "GRPC_PORT": str(args.grpc_port)}
    if not args.fresh:
        env["MODELS_VOLUME"] = str(args.models_dir.resolve())
    url = f"http://127.0.0.1:{args.port}"
    try:
        started = time.monotonic()
        compose("up", "-d", "--no-build", "--scale", f"api={args.replicas}", env=env)
        up_s = time.monotonic() - started
        healthy_s = wait_healthy(env, url, args.replicas)
        for _ in range(10):  # spread over the replicas by the proxy's round robin
            results = predictions(url)
        served = requests_served(env)
        assert len(served) == args.replicas and all(c > 0 for c in served), served
        grpc_report = grpc_calls(env, f"127.0.0.1:{args.grpc_port}", args.replicas)
        grpc_report["replica_stopped"] = replica_stopped(env, f"127.0.0.1:{args.grpc_port}")
        report = {"image": image, "image_size_mb": round(size / 2**20),
                  "up_returned_s": round(up_s, 1),
                  "up_to_healthy_s": round(up_s + healthy_s, 1),
                  "requests_ok_per_replica": served,
                  "sample": {k: {kk: vv for kk, vv in v.items() if kk != "prediction"}
                             for k, v in results.items()},
                  "grpc": grpc_report}
        print(json.dumps(report, indent=2))
    finally:
        compose("logs", "--tail", "20", env=env)
        compose("down", "-v", "--remove-orphans", env=env)


if __name__ == "__main__":
    main()
