"""`python -m bench.alternate`: systems of `python -m bench run` side by side, alternating.

    python -m bench.alternate --system tfserve --system floor [--system quiet ...]
                              [--scenario mnist]
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
import statistics
import tempfile
from pathlib import Path

from bench import wrk
from bench.processes import drive
from bench.run import SCENARIOS, SHORT_NAMES, example_instance, route, start, write_body


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--system", action="append", required=True, choices=list(SHORT_NAMES),
                        help="a system as `python -m bench run` names it (the first is the "
                             "reference)")
    parser.add_argument("--scenario", default="mnist", choices=[s.name for s in SCENARIOS])
    parser.add_argument("--clients", type=int, default=64)
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--seconds", type=float, default=5.0, help="per measurement")
    parser.add_argument("--models-dir", type=Path, default=Path("models"))
    parser.add_argument("--image", type=Path, help="photo for the image scenarios")
    args = parser.parse_args()
    scenario = next(s for s in SCENARIOS if s.name == args.scenario)
    systems = [SHORT_NAMES[name] for name in args.system]
    unknown = [system for system in systems if system not in scenario.systems]
    if unknown:
        parser.error(f"{unknown}: scenario {scenario.name} runs {scenario.systems}")
    wrk.require()
    models = args.models_dir.resolve()
    instance = example_instance(models, scenario.target, args.image)
    loads: dict[str, list[wrk.Load]] = {system: [] for system in systems}
    with contextlib.ExitStack() as stack:
        folder = Path(stack.enter_context(tempfile.TemporaryDirectory()))
        servers = {system: stack.enter_context(start(system, models, [scenario.target]))
                   for system in systems}
        bodies, urls = {}, {}
        for index, (system, server) in enumerate(servers.items()):
            # bodies differ between our servers and the references: one folder each
            own = folder / str(index)
            own.mkdir()
            bodies[system] = write_body(own, scenario, system, instance, server.url)
            urls[system] = server.url + route(scenario, system)
            wrk.drive(urls[system], bodies[system], 4, 1)  # warm connections and paths
        for round_ in range(args.rounds):
            shift = round_ % len(systems)
            for system in systems[shift:] + systems[:shift]:
                loads[system].append(drive(servers[system].pid, urls[system], bodies[system],
                                           args.clients, args.seconds))
            print(f"round {round_ + 1}: " + ", ".join(
                f"{system} {loads[system][-1].rps:,.0f}" for system in systems), flush=True)
    reference = statistics.median(load.rps for load in loads[systems[0]])
    flags = " ".join(f"--system {name}" for name in args.system)
    lines = [f"`python -m bench.alternate {flags} --scenario "
             f"{scenario.name} --clients {args.clients} --rounds {args.rounds} --seconds "
             f"{args.seconds:g}`: median of {args.rounds} rotating rounds (wrk, keep-alive).", "",
             f"| system | req/s | p50 ms | p99 ms | event loop µs/req | {systems[0]} ÷ this |",
             "|---|---|---|---|---|---|"]
    for system in systems:
        rps = statistics.median(load.rps for load in loads[system])
        errors = sum(load.errors for load in loads[system])
        lines.append(f"| {system} | {rps:,.0f} "
                     f"| {statistics.median(load.p50_ms for load in loads[system]):.2f} "
                     f"| {statistics.median(load.p99_ms for load in loads[system]):.1f} "
                     f"| {wrk.median_loop_us(loads[system])} | {reference / rps:.2f}x |"
                     + (f" ({errors} errors)" if errors else ""))
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
