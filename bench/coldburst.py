"""`python -m bench.coldburst`: a fresh server's first burst, answered or refused.

    python -m bench.coldburst [--base REV] [--runs 4] [--scenario mnist-32] [--clients 16]
                              [--seconds 2] [--models-dir models] [--image PHOTO]

A new replica (a rolling update, a scale-out) takes traffic the moment /readyz answers 200,
with only its warm-up behind it. Each run starts a fresh server and, once it is ready, drives
the scenario's requests with wrk for `--seconds`, counting what was not answered 2xx: a 503
from admission judging the queue on a rate its first calls understated, for one
(docs/RELIABILITY.md, "A cold server's first burst"). With `--base`, the runs alternate between
that revision's server and this tree's. Exits 1 when this tree's server answered any error.
"""

from __future__ import annotations

import argparse
import contextlib
import tempfile
from pathlib import Path

from bench import wrk
from bench.ab import checkout
from bench.processes import ROOT, our_server
from bench.run import OURS, SCENARIOS, Scenario, example_instance, route, write_body


def burst(models: Path, scenario: Scenario, image: Path | None, clients: int, seconds: float,
          source: Path) -> wrk.Load:
    """One fresh server of the tree at `source`, driven from the moment it is ready."""
    with tempfile.TemporaryDirectory() as folder, our_server(models, source=source) as server:
        body = write_body(Path(folder), scenario, OURS,
                          example_instance(models, scenario.target, image), server.url)
        return wrk.drive(server.url + route(scenario, OURS), body, clients, seconds)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--base", help="a git revision to alternate with")
    parser.add_argument("--runs", type=int, default=4, help="fresh servers per side")
    parser.add_argument("--scenario", default="mnist-32", choices=[s.name for s in SCENARIOS])
    parser.add_argument("--clients", type=int, default=16)
    parser.add_argument("--seconds", type=float, default=2.0)
    parser.add_argument("--models-dir", type=Path, default=Path("models"))
    parser.add_argument("--image", type=Path, help="photo for the image scenarios")
    args = parser.parse_args()
    wrk.require()
    scenario = next(s for s in SCENARIOS if s.name == args.scenario)
    models = args.models_dir.resolve()
    with contextlib.ExitStack() as stack:
        sides = {"this": ROOT}
        if args.base:
            sides = {"base": stack.enter_context(checkout(args.base)), **sides}
        print(f"`python -m bench.coldburst --scenario {scenario.name} --clients {args.clients} "
              f"--seconds {args.seconds:g}`: each run a fresh server, driven once ready.\n")
        print("| run | " + " | ".join(f"{side} requests | {side} errors" for side in sides)
              + " |")
        print("|---|" + "---|---|" * len(sides))
        errors = 0
        for run in range(1, args.runs + 1):
            order = list(sides.items())[::1 if run % 2 else -1]  # who goes first alternates
            loads = {side: burst(models, scenario, args.image, args.clients, args.seconds,
                                 tree) for side, tree in order}
            errors += loads["this"].errors
            print(f"| {run} | " + " | ".join(f"{load.requests:,} | {load.errors}"
                                             for load in map(loads.get, sides)) + " |",
                  flush=True)
    return 1 if errors else 0


if __name__ == "__main__":
    raise SystemExit(main())
