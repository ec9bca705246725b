"""`python -m bench run`: tfserve against the in-process call and its peers, in one run.

    python -m bench run [--scenario NAME ...] [--system NAME ...] [--seconds 10]
                        [--models-dir models] [--image PHOTO] [--out bench/results]
                        [--docs docs/BENCHMARKS.md]
    python -m bench report [--results bench/results/bench.json] [--docs docs/BENCHMARKS.md]

Scenarios: mnist, mnist-32, inception-b64, inception-multipart, imdb-text, mnist-v2,
inception-v2-binary (default: all).
Systems: tfserve (default settings, access log on), quiet (TFSERVE_LOG_LEVEL=WARNING: access
log off), routed, unbatched, workers2 (TFSERVE_WORKERS=2), baseline (tfserve from the checkout
given with --baseline DIR, e.g. `git worktree add ../before HEAD~3`: before and after a
change, side by side), plain, litserve, floor, raw (uvicorn returning a constant: the
HTTP server's ceiling) (default: all but baseline).
Needs wrk (apt-get install wrk) and the `bench` extra (LitServe). The overload run is
`python -m bench.overload`; routes of one server against each other and the in-process model,
alternated round by round, `python -m bench.routes`; this tree against a revision,
`python -m bench.ab`. `report` writes the markdown again from a run's JSON (after a change
to the report alone, without running again).
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
import tempfile
from dataclasses import asdict
from pathlib import Path

from bench import report as markdown_report
from bench import run as runs
from bench.run import SCENARIOS, Report, Result, run

SHORT = runs.SHORT_NAMES
SYSTEMS = [system for system in SHORT.values() if system != runs.BASELINE]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    bench = commands.add_parser("run", help="run scenarios and write the report")
    bench.add_argument("--scenario", action="append", choices=[s.name for s in SCENARIOS])
    bench.add_argument("--system", action="append", choices=list(SHORT))
    bench.add_argument("--seconds", type=float, default=10.0, help="per measurement")
    bench.add_argument("--models-dir", type=Path, default=Path("models"))
    bench.add_argument("--image", type=Path, help="photo for the image scenarios "
                       "(default: the export's own example image)")
    bench.add_argument("--out", type=Path, default=Path("bench/results"))
    bench.add_argument("--baseline", type=Path, help="source checkout of the baseline system")
    bench.add_argument("--docs", type=Path, help="also write the report there")
    again = commands.add_parser("report", help="write the markdown again from a run's JSON")
    again.add_argument("--results", type=Path, default=Path("bench/results/bench.json"))
    again.add_argument("--docs", type=Path, help="also write the report there")
    args = parser.parse_args()
    if args.command == "report":
        saved = json.loads(args.results.read_text())
        saved["results"] = [Result(**result) for result in saved["results"]]
        publish(markdown_report.markdown(Report(**saved)), args.results.parent, args.docs)
        return 0
    args.models_dir = args.models_dir.resolve()  # the baseline runs from another folder
    scenarios = [s for s in SCENARIOS if not args.scenario or s.name in args.scenario]
    systems = [SHORT[s] for s in args.system] if args.system else SYSTEMS
    report = Report(machine=markdown_report.machine(),
                    command="python -m bench " + shlex.join(sys.argv[1:]), seconds=args.seconds)
    with tempfile.TemporaryDirectory() as folder:
        run(scenarios, systems, args.models_dir, Path(folder), args.image, args.seconds, report,
            args.baseline and args.baseline.resolve())
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "bench.json").write_text(json.dumps(asdict(report), indent=2))
    publish(markdown_report.markdown(report), args.out, args.docs)
    return 0


def publish(text: str, out: Path, docs: Path | None) -> None:
    """The report as bench.md next to the JSON, in `docs` too when given, and on stdout."""
    (out / "bench.md").write_text(text)
    if docs:
        header = ("# Benchmarks\n\nWritten by `python -m bench run --docs docs/BENCHMARKS.md`. "
                  "Systems here are measured minutes apart on a shared machine; ratios of two "
                  "servers measured side by side, alternating, are in PROFILING.md "
                  "(`python -m bench.ab`, `python -m bench.routes`, `python -m bench.alternate`) "
                  "and supersede these where "
                  "they differ.\n\n")
        docs.parent.mkdir(parents=True, exist_ok=True)
        kept = markdown_report.sections(docs.read_text()) if docs.exists() else ""
        docs.write_text(header + text + kept)  # e.g. bench.grpc's section
    print(text)


if __name__ == "__main__":
    raise SystemExit(main())
