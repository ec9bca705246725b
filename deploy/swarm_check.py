"""`make swarm-test`: tfserve on a real two-node Docker Swarm, under load and failure.

Needs ../shared/tools/swarm-sandbox (or any swarm whose manager is the local engine, with a
second node reachable as `swarm-sandbox docker2` for copying images). Not part of `make test`.

Builds the image and a models image (deploy/models.Dockerfile), puts both on the two nodes,
deploys deploy/stack.yml, checks gRPC through the proxy of each node (health, TF Serving's
Predict, Triton's client: deploy/grpc_check.py), and runs 64 connections of mnist predictions
from the host against the proxy on node 1, with 4 gRPC clients calling TF Serving's Predict
beside them (each on one connection, a call every 50 ms or so, retrying UNAVAILABLE as the
README says) through every step:
  1. spread: both nodes' replicas answer through the proxy, HTTP and gRPC;
  2. rolling update to a new image tag (start-first, readiness healthcheck);
  3. scaling 2 -> 4 -> 1 -> 2;
  4. node 2 killed (swarm-sandbox node2-stop): failed requests, time until the swarm has
     rescheduled the lost replicas, time back to full throughput; node 2 returns and the
     service is rebalanced (docker service update --force);
  5. docker stack rm: every api container exits 0 after SIGTERM (drained), and no request
     the proxy accepted is cut (no 5xx; requests made after the proxy stopped accepting
     fail to connect, and are counted apart).
A failed gRPC call (after its client's retries) fails a step as a failed request does.
Prints a markdown table and writes the figures to --out (JSON).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import statistics
import subprocess
import tempfile
import threading
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import grpc
import grpc_check
import httpx

ROOT = Path(__file__).resolve().parents[1]
SWARM = ROOT.parent / "shared" / "tools" / "swarm-sandbox"
STACK = "tfserve"
NODE2 = "swarm2"  # the sandbox's second node; the first is this machine
NODE2_IP = "10.210.0.2"  # where node 2's host-mode ports are (node 1's: 127.0.0.1)
API = f"{STACK}_api"
BODY = {"instances": [[0.0] * 784]}


def sh(*args: str, env: dict | None = None, check: bool = True) -> str:
    result = subprocess.run(args, cwd=ROOT, env={**os.environ, **(env or {})}, text=True,
                            capture_output=True)
    if check and result.returncode != 0:
        raise RuntimeError(f"{' '.join(args)} failed: {result.stderr.strip()[-2000:]}")
    return result.stdout


def swarm(*args: str) -> str:
    return sh(str(SWARM), *args)


# the load: 64 connections from the host, every request recorded ---------------------------

@dataclass
class Outcome:
    at: float  # when the answer (or the error) came
    status: int | str  # HTTP status, or the transport error's name
    upstream: str = ""  # the replica that answered; for an error, what the client said


class Load:
    """`connections` clients posting mnist rows back to back, in a thread of their own."""

    def __init__(self, url: str, connections: int = 64):
        self.url, self.connections = url, connections
        self.outcomes: list[Outcome] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=lambda: asyncio.run(self._run()), daemon=True)

    def __enter__(self) -> Load:
        self._thread.start()
        return self

    def __exit__(self, *_) -> None:
        self._stop.set()
        self._thread.join()

    async def _run(self) -> None:
        limits = httpx.Limits(max_connections=self.connections,
                              max_keepalive_connections=self.connections)
        async with httpx.AsyncClient(base_url=self.url, timeout=60, limits=limits) as client:
            await asyncio.gather(*(self._client(client) for _ in range(self.connections)))

    async def _client(self, client: httpx.AsyncClient) -> None:
        while not self._stop.is_set():
            try:
                response = await client.post("/v1/models/mnist:predict", json=BODY)
                outcome = Outcome(time.monotonic(), response.status_code,
                                  response.headers.get("x-upstream", ""))
            except httpx.HTTPError as err:
                outcome = Outcome(time.monotonic(), type(err).__name__, f"{err}"[:200])
                await asyncio.sleep(0.05)  # a refused connection must not spin
            self.outcomes.append(outcome)

    def between(self, start: float, end: float) -> list[Outcome]:
        return [o for o in self.outcomes if start <= o.at < end]

    def per_second(self, start: float, end: float) -> list[int]:
        buckets = [0] * max(1, int(end - start))
        for o in self.between(start, end):
            if o.status == 200 and int(o.at - start) < len(buckets):
                buckets[int(o.at - start)] += 1
        return buckets


class GrpcLoad:
    """`clients` gRPC clients calling TF Serving's Predict (one mnist row), each on a channel
    (one HTTP/2 connection to the proxy) of its own, with the retry policy on UNAVAILABLE,
    `pause` seconds between calls: traffic to watch, beside the HTTP load that saturates (back
    to back, 4 gRPC clients weighed as much as the 64 HTTP connections on this 2-core machine,
    and new tasks, starved, took over 10 minutes to turn healthy when scaling to 4).
    Outcomes: status 200 for OK (as Load's), else the gRPC code's name."""

    def __init__(self, target: str, clients: int = 4, pause: float = 0.05):
        self.target, self.pause = target, pause
        self.outcomes: list[Outcome] = []
        self._stop = threading.Event()
        self._threads = [threading.Thread(target=self._client, daemon=True)
                         for _ in range(clients)]

    def __enter__(self) -> GrpcLoad:
        for thread in self._threads:
            thread.start()
        return self

    def __exit__(self, *_) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join()

    def _client(self) -> None:
        with grpc_check.channel(self.target) as ch:
            stub = grpc_check.prediction_stub(ch)
            while not self._stop.is_set():
                try:
                    _, upstream = grpc_check.mnist_digit(stub, timeout=60)
                    outcome = Outcome(time.monotonic(), 200, upstream)
                except grpc.RpcError as err:
                    outcome = Outcome(time.monotonic(), err.code().name,
                                      f"{err.details()}"[:200])
                self.outcomes.append(outcome)
                time.sleep(self.pause)

    def between(self, start: float, end: float) -> list[Outcome]:
        return [o for o in self.outcomes if start <= o.at < end]


GRPC: GrpcLoad | None = None  # the gRPC clients of the run, counted in every Step


def tally(outcomes: list[Outcome]) -> tuple[int, dict[str, int], list[str]]:
    """Failed count, failures by status, and what the clients said of the first few."""
    failed = [o for o in outcomes if o.status != 200]
    statuses = [str(o.status) for o in failed]
    said = sorted({f"{o.status}: {o.upstream}" for o in failed if not isinstance(o.status, int)})
    return len(failed), {k: statuses.count(k) for k in sorted(set(statuses))}, said[:5]


@dataclass
class Step:
    name: str
    seconds: float
    requests: int  # HTTP
    failed: int
    failures: dict[str, int] = field(default_factory=dict)
    notes: dict[str, object] = field(default_factory=dict)
    grpc_calls: int = 0
    grpc_failed: int = 0  # after the clients' own retries
    grpc_failures: dict[str, int] = field(default_factory=dict)

    @classmethod
    def of(cls, name: str, load: Load, start: float, end: float, **notes) -> Step:
        outcomes = load.between(start, end)
        failed, failures, said = tally(outcomes)
        if said:
            notes["errors"] = said
        step = cls(name, round(end - start, 1), len(outcomes), failed, failures, notes)
        if GRPC is not None:
            calls = GRPC.between(start, end)
            step.grpc_calls = len(calls)
            step.grpc_failed, step.grpc_failures, said = tally(calls)
            if said:
                notes["grpc_errors"] = said
        print(f"  {name}: {step.requests} requests, {step.failed} failed {step.failures}; "
              f"gRPC {step.grpc_calls} calls, {step.grpc_failed} failed "
              f"{step.grpc_failures} {notes or ''}", flush=True)
        return step


# the swarm ------------------------------------------------------------------------------------

def tasks() -> list[dict]:
    """The api tasks meant to run: node, state, overlay address."""
    ids = sh("docker", "service", "ps", API, "-q", "--filter", "desired-state=running").split()
    found = []
    for task in json.loads(sh("docker", "inspect", *ids)) if ids else []:
        node = sh("docker", "node", "inspect", "-f", "{{.Description.Hostname}}",
                  task["NodeID"]).strip() if task.get("NodeID") else ""
        addresses = [a.split("/")[0] for net in task.get("NetworksAttachments") or []
                     for a in net.get("Addresses", [])]
        found.append({"node": node, "state": task["Status"]["State"],
                      "addresses": addresses})
    return found


def running_tasks() -> list[dict]:
    return [t for t in tasks() if t["state"] == "running"]


def converged(replicas: int) -> bool:
    """Exactly `replicas` tasks meant to run are running, which with a healthcheck means
    healthy (swarm keeps a task `starting` until then). The service's own count is no help
    while a node is down: it still counts the tasks it cannot reach."""
    return len(running_tasks()) == replicas


def wait(condition, timeout: float, what: str, every: float = 1.0) -> float:
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        if condition():
            return time.monotonic() - started
        time.sleep(every)
    raise TimeoutError(f"{what}: not within {timeout:.0f} s")


def update_done() -> bool:
    state = sh("docker", "service", "inspect", "-f",
               "{{if .UpdateStatus}}{{.UpdateStatus.State}}{{end}}", API).strip()
    if state in ("rollback_completed", "paused", "rollback_paused"):
        raise RuntimeError(f"the update ended {state}")
    return state in ("completed", "")


def stack_containers(*docker: str) -> list[str]:
    return sh(*docker, "ps", "-q", "--filter",
              f"label=com.docker.stack.namespace={STACK}").split()


def node_state(hostname: str) -> str:
    return sh("docker", "node", "inspect", "-f", "{{.Status.State}}", hostname).strip()


def upstream_nodes(outcomes: list[Outcome]) -> set[str]:
    """The nodes whose replicas answered (the proxy names the replica it used last)."""
    where = {a: t["node"] for t in tasks() for a in t["addresses"]}
    return {where.get(o.upstream.split(",")[-1].strip().rsplit(":", 1)[0], "?")
            for o in outcomes if o.status == 200 and o.upstream}


# the steps ------------------------------------------------------------------------------------

def build_images(models_dir: Path, models: list[str], tag: str, base: bool = True) -> str:
    started = time.monotonic()
    if base:
        sh("docker", "build", "--network=host", "-t", "tfserve:latest", ".")
    with tempfile.TemporaryDirectory() as context:
        for model in models:
            shutil.copytree(models_dir / model, Path(context) / model)
        sh("docker", "build", "-f", str(ROOT / "deploy" / "models.Dockerfile"),
           "--build-arg", "BASE=tfserve:latest", "-t", tag, context)
    print(f"images built in {time.monotonic() - started:.0f} s", flush=True)
    started = time.monotonic()
    swarm("up", tag, "nginx:stable")
    print(f"swarm up, images on both nodes in {time.monotonic() - started:.0f} s", flush=True)
    return tag


def deploy(image: str, port: int, grpc_port: int) -> float:
    started = time.monotonic()
    sh("docker", "stack", "deploy", "--resolve-image", "never", "-c",
       str(ROOT / "deploy" / "stack.yml"), STACK,
       env={"TFSERVE_IMAGE": image, "PORT": str(port), "GRPC_PORT": str(grpc_port),
            "API_REPLICAS": "2"})
    wait(lambda: converged(2), 600, "2 healthy api tasks")
    url = f"http://127.0.0.1:{port}"
    wait(lambda: httpx.get(url + "/readyz", timeout=2).status_code == 200, 120, "the proxy")
    return time.monotonic() - started


def grpc_through_each_proxy(port: int) -> Step:
    """Before the load: gRPC's health, TF Serving's Predict and Triton's client through the
    proxy of each node; the Predict calls on one connection reach both nodes' replicas."""
    start = time.monotonic()
    found: dict[str, object] = {}
    for node, host in (("node 1", "127.0.0.1"), ("node 2", NODE2_IP)):
        target = f"{host}:{port}"
        wait(lambda t=target: grpc_check.health(t) == "SERVING", 120, f"gRPC health at {target}")
        with grpc_check.channel(target) as ch:
            stub = grpc_check.prediction_stub(ch)
            answers = [grpc_check.mnist_digit(stub) for _ in range(20)]
        where = upstream_nodes([Outcome(0, 200, upstream) for _, upstream in answers])
        if NODE2 not in where or len(where) < 2:
            raise AssertionError(f"gRPC through {node}'s proxy reached {where} only")
        found[node] = {"digit": answers[0][0], "replicas_on": sorted(where),
                       "triton_digits": grpc_check.triton_mnist(target)}
    step = Step("gRPC through each node's proxy", round(time.monotonic() - start, 1),
                0, 0, {}, found, grpc_calls=40)
    print(f"  {step.name}: {found}", flush=True)
    return step


def spread(load: Load) -> Step:
    start = time.monotonic()
    time.sleep(15)
    nodes = upstream_nodes(load.between(start, time.monotonic()))
    grpc_nodes = upstream_nodes(GRPC.between(start, time.monotonic())) if GRPC else set()
    step = Step.of("both nodes answer", load, start, time.monotonic(),
                   nodes=sorted(nodes), grpc_nodes=sorted(grpc_nodes),
                   tasks=[t["node"] for t in running_tasks()])
    if NODE2 not in nodes or len(nodes) < 2:
        raise AssertionError(f"answers came from {nodes} only")
    if GRPC and (NODE2 not in grpc_nodes or len(grpc_nodes) < 2):
        raise AssertionError(f"gRPC answers came from {grpc_nodes} only")
    return step


def rolling_update(load: Load, image: str) -> Step:
    new = image.rsplit(":", 1)[0] + ":rolled"
    sh("docker", "tag", image, new)
    swarm("docker2", "tag", image, new)
    start = time.monotonic()
    sh("docker", "service", "update", "--detach", "--no-resolve-image", "--image", new, API)
    took = wait(update_done, 900, "the rolling update", every=2)
    wait(lambda: converged(2), 300, "2 healthy tasks after the update")
    time.sleep(3)
    return Step.of("rolling update (start-first)", load, start, time.monotonic(),
                   update_s=round(took, 1))


def scale(load: Load) -> list[Step]:
    steps = []
    for replicas in (4, 1, 2):
        start = time.monotonic()
        sh("docker", "service", "scale", "--detach", f"{API}={replicas}")
        took = wait(lambda r=replicas: converged(r), 600, f"{replicas} tasks", every=2)
        time.sleep(5)  # the proxy's DNS answers last 2 s; removed tasks drain
        steps.append(Step.of(f"scale to {replicas}", load, start, time.monotonic(),
                             converged_s=round(took, 1)))
    return steps


def node_failure(load: Load) -> list[Step]:
    if len({t["node"] for t in running_tasks()}) < 2:
        sh("docker", "service", "update", "--detach=false", "--force", API)
    before = time.monotonic()
    time.sleep(10)
    baseline = statistics.median(load.per_second(before, time.monotonic()))
    killed = time.monotonic()
    swarm("node2-stop")
    down_s = wait(lambda: node_state(NODE2) == "down", 120, "node 2 marked down", 0.5)
    rescheduled_s = wait(lambda: converged(2) and all(t["node"] != NODE2
                                                      for t in running_tasks()),
                         600, "replicas rescheduled on node 1", 0.5) + down_s
    time.sleep(10)
    seconds = load.per_second(killed, time.monotonic())
    full = next((i for i in range(len(seconds) - 2)
                 if min(seconds[i:i + 3]) >= 0.9 * baseline), None)
    killed_step = Step.of("node 2 killed", load, killed, time.monotonic(),
                          node_down_s=round(down_s, 1), rescheduled_s=round(rescheduled_s, 1),
                          full_throughput_s=full, baseline_rps=baseline,
                          lowest_rps=min(seconds))
    back = time.monotonic()
    swarm("node2-start")
    wait(lambda: node_state(NODE2) == "ready", 120, "node 2 ready", 0.5)
    sh("docker", "service", "update", "--detach=false", "--force", API)
    wait(lambda: converged(2), 600, "2 tasks after rebalancing")
    nodes = sorted({t["node"] for t in running_tasks()})
    time.sleep(3)
    return [killed_step, Step.of("node 2 back, rebalanced", load, back, time.monotonic(),
                                 nodes=nodes)]


def stack_rm(load: Load) -> Step:
    watchers = [subprocess.Popen([*prefix, "events", "--filter", "type=container",
                                  "--filter", "event=die", "--format", "{{json .Actor}}"],
                                 stdout=subprocess.PIPE, text=True)
                for prefix in (["docker"], [str(SWARM), "docker2"])]
    time.sleep(1)
    start = time.monotonic()
    sh("docker", "stack", "rm", STACK)

    took = wait(lambda: not stack_containers("docker") and not stack_containers(
        str(SWARM), "docker2"), 120, "the stack's containers gone")
    exits = []
    for watcher in watchers:
        watcher.terminate()
        out, _ = watcher.communicate()
        for line in out.splitlines():
            actor = json.loads(line)["Attributes"]
            if actor.get("com.docker.swarm.service.name") == API:
                exits.append(int(actor.get("exitCode", -1)))
    step = Step.of("docker stack rm", load, start, time.monotonic(), removed_s=round(took, 1),
                   api_exit_codes=exits)
    # nginx stops gracefully (SIGQUIT): a request it accepted is answered, by a replica or
    # with a 5xx if the replica was cut off. Transport errors are requests made after the
    # proxy stopped accepting (refused, or reset on a closing keep-alive connection).
    step.notes["cut_in_flight"] = sum(n for k, n in step.failures.items() if k.isdigit())
    if any(code != 0 for code in exits) or len(exits) < 2:
        raise AssertionError(f"api tasks did not all drain and exit 0: {exits}")
    return step


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models-dir", type=Path, default=ROOT / "models")
    parser.add_argument("--models", default="mnist,imdb_sentiment",
                        help="models baked into the image (comma-separated)")
    parser.add_argument("--port", type=int, default=18089)
    parser.add_argument("--grpc-port", type=int, default=18500)
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "swarm.json")
    parser.add_argument("--keep", action="store_true", help="leave the swarm up after")
    parser.add_argument("--no-build", action="store_true",
                        help="use the tfserve:latest image there is (the models image is "
                             "built anyway)")
    args = parser.parse_args()
    image = build_images(args.models_dir, args.models.split(","), "tfserve-models:check",
                         base=not args.no_build)
    sh("docker", "stack", "rm", STACK, check=False)
    wait(lambda: not stack_containers("docker"), 120, "old stack gone")
    deployed_s = deploy(image, args.port, args.grpc_port)
    print(f"deployed, 2 replicas healthy in {deployed_s:.0f} s", flush=True)
    steps: list[Step] = []
    global GRPC
    try:
        steps.append(grpc_through_each_proxy(args.grpc_port))
        with Load(f"http://127.0.0.1:{args.port}") as load, \
                GrpcLoad(f"127.0.0.1:{args.grpc_port}") as GRPC:
            time.sleep(5)
            steps.append(spread(load))
            steps.append(rolling_update(load, image))
            steps += scale(load)
            steps += node_failure(load)
            steps.append(stack_rm(load))
    finally:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps({"deployed_s": deployed_s,
                                        "steps": [asdict(s) for s in steps]}, indent=2))
        if not args.keep:
            sh("docker", "stack", "rm", STACK, check=False)
            swarm("down")
    print("\n| step | seconds | requests | failed | gRPC calls | failed | figures |\n"
          "|---|---|---|---|---|---|---|")
    for s in steps:
        print(f"| {s.name} | {s.seconds} | {s.requests} | {s.failed} {s.failures or ''} "
              f"| {s.grpc_calls} | {s.grpc_failed} {s.grpc_failures or ''} "
              f"| {', '.join(f'{k}: {v}' for k, v in s.notes.items())} |")
    # at `stack rm`, the proxies go too: calls made after they stopped accepting fail, gRPC's
    # as HTTP's (only HTTP tells a request cut in flight, a 5xx, from one refused)
    failed = [s for s in steps if (s.failed or s.grpc_failed) and s.name != "docker stack rm"]
    cut = next((s.notes["cut_in_flight"] for s in steps if s.name == "docker stack rm"), 0)
    if failed or cut:
        raise SystemExit(f"requests failed in: {[s.name for s in failed]}; cut at rm: {cut}")


if __name__ == "__main__":
    main()
