"""`make swarm-test`: tfserve on a real two-node Docker Swarm, under load and failure.

Needs ../shared/tools/swarm-sandbox (or any swarm whose manager is the local engine, with a
second node reachable as `swarm-sandbox docker2` for copying images). Not part of `make test`.

Builds the image and a models image (deploy/models.Dockerfile), puts both on the two nodes,
deploys deploy/stack.yml, and runs 64 connections of mnist predictions from the host against
the proxy on node 1 through every step:
  1. spread: both nodes' replicas answer through the proxy;
  2. rolling update to a new image tag (start-first, readiness healthcheck);
  3. scaling 2 -> 4 -> 1 -> 2;
  4. node 2 killed (swarm-sandbox node2-stop): failed requests, time until the swarm has
     rescheduled the lost replicas, time back to full throughput; node 2 returns and the
     service is rebalanced (docker service update --force);
  5. docker stack rm: every api container exits 0 after SIGTERM (drained), and no request
     the proxy accepted is cut (no 5xx; requests made after the proxy stopped accepting
     fail to connect, and are counted apart).
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

import httpx

ROOT = Path(__file__).resolve().parents[1]
SWARM = ROOT.parent / "shared" / "tools" / "swarm-sandbox"
STACK = "tfserve"
NODE2 = "swarm2"  # the sandbox's second node; the first is this machine
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
    upstream: str = ""


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
                outcome = Outcome(time.monotonic(), type(err).__name__)
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


@dataclass
class Step:
    name: str
    seconds: float
    requests: int
    failed: int
    failures: dict[str, int] = field(default_factory=dict)
    notes: dict[str, object] = field(default_factory=dict)

    @classmethod
    def of(cls, name: str, load: Load, start: float, end: float, **notes) -> Step:
        outcomes = load.between(start, end)
        failed = [str(o.status) for o in outcomes if o.status != 200]
        step = cls(name, round(end - start, 1), len(outcomes), len(failed),
                   {k: failed.count(k) for k in sorted(set(failed))}, notes)
        print(f"  {name}: {step.requests} requests, {step.failed} failed {step.failures} "
              f"{notes or ''}", flush=True)
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


def deploy(image: str, port: int) -> float:
    started = time.monotonic()
    sh("docker", "stack", "deploy", "--resolve-image", "never", "-c",
       str(ROOT / "deploy" / "stack.yml"), STACK,
       env={"TFSERVE_IMAGE": image, "PORT": str(port), "API_REPLICAS": "2"})
    wait(lambda: converged(2), 600, "2 healthy api tasks")
    url = f"http://127.0.0.1:{port}"
    wait(lambda: httpx.get(url + "/readyz", timeout=2).status_code == 200, 120, "the proxy")
    return time.monotonic() - started


def spread(load: Load) -> Step:
    start = time.monotonic()
    time.sleep(15)
    nodes = upstream_nodes(load.between(start, time.monotonic()))
    step = Step.of("both nodes answer", load, start, time.monotonic(),
                   nodes=sorted(nodes), tasks=[t["node"] for t in running_tasks()])
    if NODE2 not in nodes or len(nodes) < 2:
        raise AssertionError(f"answers came from {nodes} only")
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
    deployed_s = deploy(image, args.port)
    print(f"deployed, 2 replicas healthy in {deployed_s:.0f} s", flush=True)
    steps: list[Step] = []
    try:
        with Load(f"http://127.0.0.1:{args.port}") as load:
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
    print("\n| step | seconds | requests | failed | figures |\n|---|---|---|---|---|")
    for s in steps:
        print(f"| {s.name} | {s.seconds} | {s.requests} | {s.failed} {s.failures or ''} "
              f"| {', '.join(f'{k}: {v}' for k, v in s.notes.items())} |")
    failed = [s for s in steps if s.failed and s.name != "docker stack rm"]
    cut = next((s.notes["cut_in_flight"] for s in steps if s.name == "docker stack rm"), 0)
    if failed or cut:
        raise SystemExit(f"requests failed in: {[s.name for s in failed]}; cut at rm: {cut}")


if __name__ == "__main__":
    main()
