"""`python -m bench.inapp`: the service's own time per request, without HTTP or a load generator.

    python -m bench.inapp [--scenario mnist --scenario mnist-v2 ...] [--concurrency 64]
                          [--rounds 5] [--requests 6400] [--models-dir models] [--image PHOTO]

wrk's numbers carry uvicorn, the kernel and wrk itself, all sharing two cores; a route's own
cost drowns in them. Here the ASGI app (`app.main.create_app`, default settings but the log
level, WARNING unless TFSERVE_LOG_LEVEL says otherwise) runs in this process on uvloop and
is called directly: `--concurrency` requests at a time, each handed its body in one message,
as uvicorn hands over a body that arrived whole. Reports, per scenario, the median over
`--rounds` alternating rounds of the main thread's CPU time per request (the event loop's
share: the model's threads are not counted) and the ratio to the first scenario.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import time
from pathlib import Path
from typing import Any

import uvloop

from bench.run import OURS, SCENARIOS, Scenario, example_instance, route, v2_request

Message = dict[str, Any]


class Client:
    """Requests straight into an ASGI app: status and body back."""

    def __init__(self, app: Any):
        self.app = app

    async def request(self, method: str, path: str, body: bytes = b"",
                      headers: dict[str, str] | None = None) -> tuple[int, bytes]:
        path, _, query = path.partition("?")
        raw = [(b"host", b"bench"), (b"content-length", str(len(body)).encode())]
        raw += [(k.lower().encode(), v.encode()) for k, v in (headers or {}).items()]
        scope = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1",
                 "method": method, "scheme": "http", "path": path, "raw_path": path.encode(),
                 "query_string": query.encode(), "root_path": "", "headers": raw,
                 "client": ("127.0.0.1", 50000), "server": ("127.0.0.1", 8089), "state": {}}
        delivered = asyncio.Event()
        answer: list[Message] = []

        async def receive() -> Message:
            if not delivered.is_set():
                delivered.set()
                return {"type": "http.request", "body": body, "more_body": False}
            await asyncio.Event().wait()  # no disconnect: the client waits for its answer
            raise AssertionError("unreachable")

        async def send(message: Message) -> None:
            answer.append(message)

        await self.app(scope, receive, send)
        status = next(m["status"] for m in answer if m["type"] == "http.response.start")
        return status, b"".join(m.get("body", b"") for m in answer
                                if m["type"] == "http.response.body")


async def started(app: Any) -> asyncio.Task:
    """The app's lifespan started; returns once /readyz answers 200 (models loaded)."""
    events: asyncio.Queue[Message] = asyncio.Queue()
    await events.put({"type": "lifespan.startup"})
    up = asyncio.Event()

    async def send(message: Message) -> None:
        if message["type"] == "lifespan.startup.complete":
            up.set()
        elif message["type"] == "lifespan.startup.failed":
            raise RuntimeError(message.get("message", "startup failed"))

    lifespan = asyncio.create_task(app({"type": "lifespan", "asgi": {"version": "3.0"},
                                        "state": {}}, events.get, send))
    await up.wait()
    client = Client(app)
    deadline = time.monotonic() + 300
    while (await client.request("GET", "/readyz"))[0] != 200:
        if time.monotonic() > deadline:
            raise TimeoutError("models not ready within 300 s")
        await asyncio.sleep(0.1)
    return lifespan


async def request_for(client: Client, scenario: Scenario, models: Path,
                      image: Path | None) -> tuple[str, bytes, dict[str, str]]:
    """The scenario's route, body and headers, as `python -m bench run` sends them to us."""
    instance = example_instance(models, scenario.target, image)
    model, signature = scenario.target.split("/")
    path = route(scenario, OURS)
    if scenario.protocol.startswith("v2"):
        status, meta = await client.request(
            "GET", f"/v2/models/{model}?signature_name={signature}")
        if status != 200:
            raise SystemExit(f"{model} metadata: status {status}: {meta[:200]!r}")
        body, content_type, headers = v2_request(json.loads(meta), scenario, instance)
        return path, body, {"content-type": content_type, **headers}
    if scenario.protocol != "v1":
        raise SystemExit(f"{scenario.name}: only JSON scenarios run here")
    body = {"instances": [instance] * scenario.instances, "signature_name": signature}
    return path, json.dumps(body).encode(), {"content-type": "application/json"}


async def measure(args: argparse.Namespace) -> dict[str, list[float]]:
    os.environ.setdefault("TFSERVE_LOG_LEVEL", "WARNING")
    os.environ["TFSERVE_MODEL_DIR"] = str(args.models_dir.resolve())
    os.environ["TFSERVE_GRPC_PORT"] = "0"  # the app is called in-process: no listener
    from app.main import create_app  # TensorFlow: after the environment is set

    app = create_app()
    lifespan = await started(app)
    client = Client(app)
    scenarios = [next(s for s in SCENARIOS if s.name == name) for name in args.scenario]
    requests = {s.name: await request_for(client, s, args.models_dir, args.image)
                for s in scenarios}
    batches = max(1, args.requests // args.concurrency)
    times: dict[str, list[float]] = {s.name: [] for s in scenarios}

    async def drive(name: str, count: int) -> float:
        path, body, headers = requests[name]
        before = time.thread_time()
        for _ in range(count):
            answers = await asyncio.gather(*(client.request("POST", path, body, headers)
                                             for _ in range(args.concurrency)))
            bad = [status for status, _ in answers if status != 200]
            if bad:
                raise RuntimeError(f"{name}: status {bad[0]}: {answers[0][1][:200]!r}")
        return 1e6 * (time.thread_time() - before) / (count * args.concurrency)

    for name in times:  # warm-up: each route's first calls, the batcher's sizes
        await drive(name, max(1, batches // 10))
    for round_ in range(args.rounds):
        order = list(times) if round_ % 2 == 0 else list(times)[::-1]
        for name in order:
            times[name].append(await drive(name, batches))
    lifespan.cancel()
    return times


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scenario", action="append",
                        choices=[s.name for s in SCENARIOS if s.protocol in ("v1", "v2-json",
                                                                             "v2-binary")])
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--requests", type=int, default=6400, help="per scenario and round")
    parser.add_argument("--models-dir", type=Path, default=Path("models"))
    parser.add_argument("--image", type=Path, help="photo for the image scenarios")
    args = parser.parse_args()
    args.scenario = args.scenario or ["mnist", "mnist-v2"]
    times = uvloop.run(measure(args))
    first = statistics.median(times[args.scenario[0]])
    print(f"`python -m bench.inapp {' '.join(f'--scenario {n}' for n in args.scenario)} "
          f"--concurrency {args.concurrency}`: median of {args.rounds} alternating rounds of "
          f"{args.requests} requests, the main thread's CPU per request.\n")
    print(f"| scenario | µs/request | ÷ {args.scenario[0]} |\n|---|---|---|")
    for name, values in times.items():
        median = statistics.median(values)
        print(f"| {name} | {median:.1f} | {median / first:.2f}x |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
