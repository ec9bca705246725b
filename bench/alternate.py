"""`python -m bench.alternate`: systems of `python -m bench run` side by side, alternating.

    python -m bench.alternate --system tfserve --system "FastAPI no-model floor"
                              [--system "tfserve, access log off" ...] [--scenario mnist]
                              [--clients 64] [--rounds 7] [--seconds 5] [--models-dir models]
                              [--image PHOTO]

`python -m bench run` measures one system after another, minutes apart; on a shared machine
their speed drifts between those measurements by as much as the ratios asked about (tfserve
against the FastAPI floor read 0.95x in one full run and 0.75x in the next). Here every
system named runs at once, idle but for the one being driven, and wrk alternates between
them round after round in a rotating order, so drift hits all alike. Reports each system's
median req/s, p50, p99 and event-loop time per request, and the first system's req/s
divided by its own (as `bench run`'s "tfserve ÷ this").
"""

from __future__ import annotations

import argparse
import contextlib
import shlex
import statistics
import tempfile
from pathlib import Path

from bench import wrk
from bench.processes import event_loop_cpu_s
from bench.run import SCENARIOS, example_instance, route, start, write_body


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--system", action="append", required=True,
                        help="a system of `python -m bench run` (the first is the reference)")
    parser.add_argument("--scenario", default="mnist", choices=[s.name for s in SCENARIOS])
    parser.add_argument("--clients", type=int, default=64)
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--seconds", type=float, default=5.0, help="per measurement")
    parser.add_argument("--models-dir", type=Path, default=Path("models"))
    parser.add_argument("--image", type=Path, help="photo for the image scenarios")
    args = parser.parse_args()
    scenario = next(s for s in SCENARIOS if s.name == args.scenario)
    unknown = [system for system in args.system if system not in scenario.systems]
    if unknown:
        parser.error(f"{unknown}: scenario {scenario.name} runs {scenario.systems}")
    wrk.require()
    models = args.models_dir.resolve()
    instance = example_instance(models, scenario.target, args.image)
    loads: dict[str, list[wrk.Load]] = {system: [] for system in args.system}
    loop_us: dict[str, list[float]] = {system: [] for system in args.system}
    with contextlib.ExitStack() as stack:
        folder = Path(stack.enter_context(tempfile.TemporaryDirectory()))
        servers = {system: stack.enter_context(start(system, models, [scenario.target]))
                   for system in args.system}
        bodies, urls = {}, {}
        for index, (system, server) in enumerate(servers.items()):
            # bodies differ between our servers and the references: one folder each
            own = folder / str(index)
            own.mkdir()
            bodies[system] = write_body(own, scenario, system, instance, server.url)
            urls[system] = server.url + route(scenario, system)
            wrk.drive(urls[system], bodies[system], 4, 1)  # warm connections and paths
        for round_ in range(args.rounds):
            shift = round_ % len(args.system)
            for system in args.system[shift:] + args.system[:shift]:
                before = event_loop_cpu_s(servers[system].pid)
                load = wrk.drive(urls[system], bodies[system], args.clients, args.seconds)
                loops = event_loop_cpu_s(servers[system].pid) - before
                loads[system].append(load)
                loop_us[system].append(1e6 * loops / max(load.requests, 1))
            print(f"round {round_ + 1}: " + ", ".join(
                f"{system} {loads[system][-1].rps:,.0f}" for system in args.system), flush=True)
    reference = statistics.median(load.rps for load in loads[args.system[0]])
    systems = " ".join(f"--system {shlex.quote(system)}" for system in args.system)
    lines = [f"`python -m bench.alternate {systems} --scenario "
             f"{scenario.name} --clients {args.clients} --rounds {args.rounds} --seconds "
             f"{args.seconds:g}`: median of {args.rounds} rotating rounds (wrk, keep-alive).", "",
             f"| system | req/s | p50 ms | p99 ms | event loop µs/req | {args.system[0]} ÷ this |",
             "|---|---|---|---|---|---|"]
    for system in args.system:
        rps = statistics.median(load.rps for load in loads[system])
        errors = sum(load.errors for load in loads[system])
        lines.append(f"| {system} | {rps:,.0f} "
                     f"| {statistics.median(load.p50_ms for load in loads[system]):.2f} "
                     f"| {statistics.median(load.p99_ms for load in loads[system]):.1f} "
                     f"| {statistics.median(loop_us[system]):.0f} | {reference / rps:.2f}x |"
                     + (f" ({errors} errors)" if errors else ""))
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
