"""Overload: offer several times the measured capacity, open loop, and check the server holds.

    python -m bench.overload [--models-dir models] [--model inception_v3]
                             [--signature predict_image] [--factor 4] [--seconds 30]

1. capacity: closed loop with a few concurrent clients, requests/s answered 200;
2. half load: open loop at 0.5 x capacity, for the latency the overload is held to;
3. overload: requests arrive on a fixed schedule at `factor` x capacity (open loop: arrivals
   do not slow down when the server does, as with real users), for `seconds`;
4. recovery: the closed loop again; every request must succeed.
Targets: accepted p99 under overload <= 2 x the p99 at half load (or <= the queue-delay
target when `--max-queue-delay-ms` sets one), goodput (answers 200 per second) >= 95% of
capacity, nothing lost. Capacity is the mean of the closed loop before the overload and the
one after it, so that the machine's drift during the run does not decide the ratio (both are
reported). `--max-queue-delay-ms 1e9` switches the queue-delay target off (the deadline
alone admits), for a before/after.
The request is the model's own example from the server's OpenAPI document. Memory is the
server process' RSS, sampled every 0.25 s. Exits 1 when a guarantee does not hold.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import httpx

from tests.server import running_server


@dataclass
class Outcome:
    status: int | str  # HTTP status, or the transport error's name
    seconds: float
    retry_after: str | None = None


@dataclass
class Report:
    model: str
    deadline_s: float
    max_queue_delay_ms: float  # 0: the server's default
    capacity_rps: float
    capacity_before_rps: float
    offered_rps: float
    factor: float
    seconds: float
    statuses: dict[str, int]
    half_load_p99_ms: float
    goodput_rps: float
    accepted_p50_ms: float
    accepted_p99_ms: float
    accepted_max_ms: float
    refused_p50_ms: float | None
    refused_p99_ms: float | None
    refused_with_retry_after: int
    rss_mib_before: float
    rss_mib_max: float
    rss_mib_after: float
    recovery_rps: float
    recovery_statuses: dict[str, int]
    problems: list[str] = field(default_factory=list)  # broken guarantees
    missed_targets: list[str] = field(default_factory=list)


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


async def _send(client: httpx.AsyncClient, path: str, body: dict) -> Outcome:
    started = time.perf_counter()
    try:
        response = await client.post(path, json=body)
    except httpx.HTTPError as err:
        return Outcome(type(err).__name__, time.perf_counter() - started)
    return Outcome(response.status_code, time.perf_counter() - started,
                   response.headers.get("retry-after"))


async def closed_loop(url: str, path: str, body: dict, clients: int,
                      seconds: float) -> list[Outcome]:
    outcomes: list[Outcome] = []
    stop = time.perf_counter() + seconds
    async with httpx.AsyncClient(base_url=url, timeout=120) as client:
        async def worker():
            while time.perf_counter() < stop:
                outcomes.append(await _send(client, path, body))
        await asyncio.gather(*[worker() for _ in range(clients)])
    return outcomes


async def open_loop(url: str, path: str, body: dict, rate: float, seconds: float,
                    pid: int, rss: list[float]) -> list[Outcome]:
    limits = httpx.Limits(max_connections=None, max_keepalive_connections=512)
    async with httpx.AsyncClient(base_url=url, timeout=120, limits=limits) as client:
        started = time.perf_counter()
        tasks = []
        for i in range(int(rate * seconds)):
            await asyncio.sleep(max(0.0, started + i / rate - time.perf_counter()))
            tasks.append(asyncio.create_task(_send(client, path, body)))
            if i % max(1, int(rate / 4)) == 0:
                rss.append(rss_mib(pid))
        return await asyncio.gather(*tasks)


def count(outcomes: list[Outcome]) -> dict[str, int]:
    counts: dict[str, int] = {}
    for outcome in outcomes:
        counts[str(outcome.status)] = counts.get(str(outcome.status), 0) + 1
    return counts


def run(url: str, pid: int, model: str, signature: str, deadline_s: float, factor: float,
        seconds: float, clients: int = 4, probe_s: float = 5.0,
        max_queue_delay_ms: float = 0) -> Report:
    path = f"/models/{model}/{signature}/predict"
    schema = httpx.get(url + "/openapi.json", timeout=30).json()
    body = schema["paths"][path]["post"]["requestBody"]["content"]["application/json"]["example"]
    asyncio.run(closed_loop(url, path, body, clients, 1.0))  # warm the connections and model
    rss_before = rss_mib(pid)
    probe = asyncio.run(closed_loop(url, path, body, clients, probe_s))
    capacity = sum(o.status == 200 for o in probe) / probe_s
    rss: list[float] = [rss_before]
    half = asyncio.run(open_loop(url, path, body, capacity * 0.5, probe_s * 2, pid, rss))
    half_ok = [o.seconds for o in half if o.status == 200]
    offered = asyncio.run(open_loop(url, path, body, capacity * factor, seconds, pid, rss))
    time.sleep(deadline_s)  # whatever was queued has finished or expired
    recovery = asyncio.run(closed_loop(url, path, body, clients, probe_s))
    recovery_rps = sum(o.status == 200 for o in recovery) / probe_s
    accepted = [o.seconds for o in offered if o.status == 200]
    refused = [o for o in offered if o.status in (429, 503)]
    report = Report(
        model=model, deadline_s=deadline_s, max_queue_delay_ms=max_queue_delay_ms,
        capacity_rps=round((capacity + recovery_rps) / 2, 1),
        capacity_before_rps=round(capacity, 1),
        offered_rps=round(len(offered) / seconds, 1),
        factor=round(len(offered) / seconds / capacity, 2), seconds=seconds,
        statuses=count(offered),
        half_load_p99_ms=round(percentile(half_ok, 0.99) * 1000, 1) if half_ok else 0.0,
        goodput_rps=round(sum(o.status == 200 for o in offered) / seconds, 1),
        accepted_p50_ms=round(percentile(accepted, 0.5) * 1000, 1) if accepted else 0.0,
        accepted_p99_ms=round(percentile(accepted, 0.99) * 1000, 1) if accepted else 0.0,
        accepted_max_ms=round(max(accepted) * 1000, 1) if accepted else 0.0,
        refused_p50_ms=round(percentile([o.seconds for o in refused], 0.5) * 1000, 2)
        if refused else None,
        refused_p99_ms=round(percentile([o.seconds for o in refused], 0.99) * 1000, 2)
        if refused else None,
        refused_with_retry_after=sum(o.retry_after is not None for o in refused),
        rss_mib_before=round(rss_before), rss_mib_max=round(max(rss)),
        rss_mib_after=round(rss_mib(pid)),
        recovery_rps=round(recovery_rps, 1),
        recovery_statuses=count(recovery))
    report.problems = check(report, offered)
    report.missed_targets = missed_targets(report)
    return report


def check(report: Report, offered: list[Outcome]) -> list[str]:
    """The guarantees: nothing lost, excess refused with Retry-After, the deadline held."""
    problems = []
    unexpected = {s: n for s, n in report.statuses.items() if s not in ("200", "503", "504")}
    if unexpected:
        problems.append(f"answers other than 200/503/504 (lost or failed): {unexpected}")
    if report.refused_with_retry_after != report.statuses.get("503", 0):
        problems.append("a 503 came without Retry-After")
    if report.accepted_max_ms > report.deadline_s * 1000 + 250:
        problems.append(f"an accepted request took {report.accepted_max_ms} ms, past the "
                        f"{report.deadline_s} s deadline")
    if report.factor < 2:
        problems.append(f"only {report.factor}x capacity was offered")
    if not report.statuses.get("503"):
        problems.append("no request was refused: the overload did not overload")
    if set(report.recovery_statuses) != {"200"}:
        problems.append(f"after the overload: {report.recovery_statuses}")
    if report.recovery_rps < 0.5 * report.capacity_rps:
        problems.append(f"after the overload it serves {report.recovery_rps} req/s, "
                        f"capacity was {report.capacity_rps}")
    if report.rss_mib_max > report.rss_mib_before + 1024:
        problems.append(f"memory grew from {report.rss_mib_before} to {report.rss_mib_max} MiB")
    return problems


def missed_targets(report: Report) -> list[str]:
    """The latency and goodput targets under overload (issue 13), beside the guarantees."""
    missed = []
    configured = 0 < report.max_queue_delay_ms < report.deadline_s * 1000
    if configured and report.accepted_p99_ms > report.max_queue_delay_ms:
        missed.append(f"accepted p99 {report.accepted_p99_ms} ms is over the "
                      f"{report.max_queue_delay_ms:g} ms queue-delay target")
    if not configured and report.accepted_p99_ms > 2 * report.half_load_p99_ms:
        missed.append(f"accepted p99 {report.accepted_p99_ms} ms is over twice the "
                      f"{report.half_load_p99_ms} ms at half load")
    if report.goodput_rps < 0.95 * report.capacity_rps:
        missed.append(f"goodput {report.goodput_rps} req/s is under 95% of the "
                      f"{report.capacity_rps} req/s capacity")
    return missed


def markdown(report: Report) -> str:
    rows = [(k, v) for k, v in asdict(report).items() if k not in ("problems",
                                                                     "missed_targets")]
    lines = ["| figure | value |", "|---|---|"] + [f"| {k} | {v} |" for k, v in rows]
    verdict = "all guarantees held" if not report.problems else "; ".join(report.problems)
    targets = ("targets met" if not report.missed_targets
               else "targets missed: " + "; ".join(report.missed_targets))
    return "\n".join(lines) + f"\n\n**{verdict}**; {targets}\n"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models-dir", type=Path, default=Path("models"))
    parser.add_argument("--model", default="inception_v3")
    parser.add_argument("--signature", default="predict_image")
    parser.add_argument("--factor", type=float, default=4.0, help="offered load / capacity")
    parser.add_argument("--seconds", type=float, default=30.0, help="overload duration")
    parser.add_argument("--deadline", type=float, default=5.0, help="request deadline, s")
    parser.add_argument("--max-batch-size", type=int, default=16,
                        help="rows per model call; one batch must fit well within the deadline")
    parser.add_argument("--max-queue-delay-ms", type=float, default=0,
                        help="the queue-delay target (0: the server's default)")
    parser.add_argument("--out", type=Path, default=Path("bench/results"))
    args = parser.parse_args()
    with running_server(args.models_dir, request_timeout_s=args.deadline,
                        max_batch_size=args.max_batch_size, poll_interval_s=0,
                        max_queue_delay_ms=args.max_queue_delay_ms) as url:
        report = run(url, url.pid, args.model, args.signature, args.deadline, args.factor,
                     args.seconds, max_queue_delay_ms=args.max_queue_delay_ms)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "overload.json").write_text(json.dumps(asdict(report), indent=2))
    (args.out / "overload.md").write_text(markdown(report))
    print(markdown(report))
    return 1 if report.problems else 0


if __name__ == "__main__":
    raise SystemExit(main())
