"""`python -m bench.ab --base REV`: this tree's server against the one of a git revision.

    python -m bench.ab --base HEAD~1 [--scenario NAME ...] [--rounds 5] [--seconds 5]
                       [--clients N] [--models-dir models] [--image PHOTO]
                       [--setting log_level=INFO ...]
                       [--base-setting log_level=WARNING ...]

A change that should not cost speed (a refactoring) or should gain it (a profiling step) is
judged by a before/after on the same machine at the same time. Both servers run at once on
the same models, idle but for the one being measured, and wrk alternates between them,
round after round, in alternating order, so drift in a shared machine's speed hits both
alike. Reports the median req/s, p50 and p99 of each side, their ratio, and each server's
event-loop time per request (the CPU time of its main thread, or its workers', over the
requests answered: finer than req/s, which the load generator sharing the CPUs blurs). The
base revision is checked out in a temporary git worktree and removed after. Both servers run with
TFSERVE_LOG_LEVEL=WARNING unless `--setting` says otherwise (`--setting log_level=INFO`: the
default level, access log on); `--base-setting` applies to the base side only, so that one
revision against itself compares two settings (the access log on against off, say).
"""

from __future__ import annotations

import argparse
import contextlib
import statistics
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

from bench import wrk
from bench.processes import ROOT, drive, our_server
from bench.run import OURS, SCENARIOS, example_instance, route, write_body


@contextlib.contextmanager
def checkout(revision: str) -> Iterator[Path]:
    """The tree of `revision` in a temporary worktree."""
    with tempfile.TemporaryDirectory(prefix="tfserve-ab-") as parent:
        tree = Path(parent) / "tree"
        subprocess.run(["git", "worktree", "add", "--detach", "-q", str(tree), revision],
                       cwd=ROOT, check=True)
        try:
            yield tree
        finally:
            subprocess.run(["git", "worktree", "remove", "--force", str(tree)], cwd=ROOT,
                           check=False)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--base", required=True, help="the git revision to compare against")
    parser.add_argument("--scenario", action="append", choices=[s.name for s in SCENARIOS])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--seconds", type=float, default=5.0, help="per measurement")
    parser.add_argument("--clients", type=int,
                        help="connections (default: the scenario's most, at most 64)")
    parser.add_argument("--models-dir", type=Path, default=Path("models"))
    parser.add_argument("--image", type=Path, help="photo for the image scenarios")
    parser.add_argument("--setting", action="append", default=[], metavar="NAME=VALUE",
                        help="a TFSERVE_ setting for both servers, e.g. log_level=INFO")
    parser.add_argument("--base-setting", action="append", default=[], metavar="NAME=VALUE",
                        help="a TFSERVE_ setting for the base server only")
    args = parser.parse_args()
    settings = dict(item.split("=", 1) for item in args.setting)
    base_settings = {**settings, **dict(item.split("=", 1) for item in args.base_setting)}
    wrk.require()
    scenarios = [s for s in SCENARIOS if not args.scenario or s.name in args.scenario]
    models = args.models_dir.resolve()
    flags = (f" --clients {args.clients}" if args.clients else "") + "".join(
        f" --setting {item}" for item in args.setting) + "".join(
        f" --base-setting {item}" for item in args.base_setting)
    lines = [f"Before/after, `python -m bench.ab --base {args.base}{flags}`: median of "
             f"{args.rounds} "
             f"alternating rounds of {args.seconds:g} s (wrk, keep-alive).", "",
             "| scenario | clients | base req/s | this req/s | this ÷ base | base p50 ms "
             "| this p50 ms | base p99 ms | this p99 ms | base loop µs/req | this loop µs/req |",
             "|---|---|---|---|---|---|---|---|---|---|---|"]
    with checkout(args.base) as tree, tempfile.TemporaryDirectory() as folder, \
            our_server(models, source=tree, **base_settings) as base, \
            our_server(models, **settings) as head:
        for scenario in scenarios:
            connections = args.clients or min(max(scenario.connections), 64)
            body = write_body(Path(folder), scenario, OURS,
                              example_instance(models, scenario.target, args.image), head.url)
            path = route(scenario, OURS)
            runs: dict[str, list[wrk.Load]] = {"base": [], "this": []}
            for round_ in range(args.rounds):
                order = [("base", base), ("this", head)]
                for side, server in order if round_ % 2 == 0 else reversed(order):
                    runs[side].append(drive(server.pid, server.url + path, body, connections,
                                            args.seconds))
            rps = {side: statistics.median(r.rps for r in loads) for side, loads in runs.items()}
            p50 = {side: statistics.median(r.p50_ms for r in loads)
                   for side, loads in runs.items()}
            p99 = {side: statistics.median(r.p99_ms for r in loads)
                   for side, loads in runs.items()}
            errors = sum(r.errors for loads in runs.values() for r in loads)
            lines.append(f"| {scenario.name} | {connections} | {rps['base']:,.0f} | "
                         f"{rps['this']:,.0f} | {rps['this'] / rps['base']:.2f}x | "
                         f"{p50['base']:.2f} | {p50['this']:.2f} | "
                         f"{p99['base']:.1f} | {p99['this']:.1f} | "
                         f"{wrk.median_loop_us(runs['base'])} | "
                         f"{wrk.median_loop_us(runs['this'])} |"
                         + (f" ({errors} errors)" if errors else ""))
            print(lines[-1], flush=True)
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
