"""`python -m bench.routes`: routes of one server against each other and the in-process model.

    python -m bench.routes --scenario inception-v2-binary --scenario inception-b64
                           [--scenario inception-multipart] [--clients 16] [--rounds 5]
                           [--seconds 10] [--models-dir models] [--image PHOTO] [--no-in-process]

`python -m bench run` measures each route once, minutes apart; on a shared machine the drift
between two such measurements is as large as the differences asked about ("v2 binary >= the
base64 JSON route", "a route >= 95% of the in-process best"). Here one server answers every
route, and the rounds alternate: each round drives every scenario for `--seconds` in a
rotating order, then runs the model in this process at its best batch size (found once, at
the start) for as long, so the machine's drift hits every side alike. Reports the median
rows/s of each side, each route's ratio to the first scenario and to the in-process median.
The scenarios must share one target (model/signature).
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

from bench import inprocess, wrk
from bench.processes import our_server
from bench.references import load, rows, run_model
from bench.run import IN_PROCESS_BATCHES, OURS, SCENARIOS, example_instance, route, write_body


def in_process_rows_per_s(function, name: str, array, size: int, seconds: float) -> float:
    """Rows per second of back-to-back calls at one batch size, for `seconds`."""
    calls, started = 0, time.perf_counter()
    while time.perf_counter() - started < seconds:
        run_model(function, name, array)
        calls += 1
    return calls * size / (time.perf_counter() - started)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scenario", action="append", required=True,
                        choices=[s.name for s in SCENARIOS], help="the first is the reference")
    parser.add_argument("--clients", type=int, default=16)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--seconds", type=float, default=10.0, help="per measurement")
    parser.add_argument("--models-dir", type=Path, default=Path("models"))
    parser.add_argument("--image", type=Path, help="photo for the image scenarios")
    parser.add_argument("--no-in-process", action="store_true")
    args = parser.parse_args()
    wrk.require()
    scenarios = [next(s for s in SCENARIOS if s.name == name) for name in args.scenario]
    targets = {s.target for s in scenarios}
    if len(targets) != 1:
        parser.error(f"the scenarios name different targets: {sorted(targets)}")
    (target,) = targets
    models = args.models_dir.resolve()
    instance = example_instance(models, target, args.image)
    model_call = None
    if not args.no_in_process:
        best = inprocess.measure(models, target, instance, IN_PROCESS_BATCHES[target])
        function, name, dtype = load(models, target)
        model_call = (function, name, rows([instance] * best.best_batch, dtype, name),
                      best.best_batch)
    rates: dict[str, list[float]] = {s.name: [] for s in scenarios}
    p99: dict[str, list[float]] = {s.name: [] for s in scenarios}
    rates["in-process"] = []
    with tempfile.TemporaryDirectory() as folder, our_server(models) as server:
        bodies = {s.name: write_body(Path(folder), s, OURS, instance, server.url)
                  for s in scenarios}
        for s in scenarios:  # warm each route's connections and code paths
            wrk.drive(server.url + route(s, OURS), bodies[s.name], args.clients, 2)
        for round_ in range(args.rounds):
            shift = round_ % len(scenarios)
            for s in scenarios[shift:] + scenarios[:shift]:
                measured = wrk.drive(server.url + route(s, OURS), bodies[s.name], args.clients,
                                     args.seconds)
                rates[s.name].append(measured.rps * bodies[s.name].rows)
                p99[s.name].append(measured.p99_ms)
                if measured.errors:
                    print(f"{s.name}: {measured.errors} errors")
            if model_call is not None:
                function, name, array, size = model_call
                rates["in-process"].append(in_process_rows_per_s(function, name, array, size,
                                                                 args.seconds))
            print(f"round {round_ + 1}: " + ", ".join(
                f"{k} {v[-1]:,.1f}" for k, v in rates.items() if v), flush=True)
    median = {k: statistics.median(v) for k, v in rates.items() if v}
    reference = scenarios[0].name
    flags = "".join(f" --scenario {s.name}" for s in scenarios)
    lines = [f"`python -m bench.routes{flags} --clients {args.clients} --rounds {args.rounds} "
             f"--seconds {args.seconds:g}`: median of {args.rounds} alternating rounds, "
             f"{args.clients} clients (wrk, keep-alive)"
             + (f"; in-process at batch {model_call[3]}" if model_call else "") + ".", "",
             f"| side | rows/s | p99 ms | ÷ {reference} | ÷ in-process |", "|---|---|---|---|---|"]
    for side, value in median.items():
        side_p99 = f"{statistics.median(p99[side]):.0f}" if side in p99 else ""
        of_in_process = (f"{value / median['in-process']:.0%}" if "in-process" in median
                         else "")
        lines.append(f"| {side} | {value:,.1f} | {side_p99} | {value / median[reference]:.2f}x"
                     f" | {of_in_process} |")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
