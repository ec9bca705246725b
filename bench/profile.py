"""`python -m bench.profile`: where the server's time goes under load (py-spy, sampling).

    python -m bench.profile [--connections 64] [--seconds 8] [--routed] [--models-dir models]

Starts the server, drives single-instance `mnist` requests with wrk, samples the process with
py-spy (all threads, Python frames) and prints the frames that hold the most samples: by their
own time and with their callees. `--routed` profiles the predict routes through FastAPI's
router (TFSERVE_DIRECT_PREDICT=false). The raw samples go to bench/results/profile.txt (the
format flamegraph.pl and speedscope read). py-spy is in the `bench` extra; it needs ptrace
rights over the server (allowed for your own processes on most systems).
"""

from __future__ import annotations

import argparse
import collections
import json
import shutil
import subprocess
import tempfile
import threading
from pathlib import Path

from bench import wrk
from bench.processes import our_server


def frame_name(frame: str) -> str:
    """'function (path/to/file.py:12)' -> 'function (file.py)', the service's own as app/..."""
    function, _, where = frame.partition(" (")
    file = Path(where.rstrip(")").rsplit(":", 1)[0])
    folder = {"app": "app/", "routes": "app/http_api/routes/"}.get(file.parent.name, "")
    return f"{function} ({folder}{file.name})"


def summarize(raw: Path, top: int) -> str:
    own: collections.Counter = collections.Counter()
    total: collections.Counter = collections.Counter()
    samples = 0
    for line in raw.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        frames = [frame_name(f) for f in stack.split(";")]
        samples += int(count)
        own[frames[-1]] += int(count)
        for name in {f for f in frames if "(app/" in f}:
            total[name] += int(count)
    lines = [f"{samples} samples"]
    for title, counter in (("own time", own), ("the service's functions, with callees", total)):
        lines += ["", f"## {title}"]
        lines += [f"{n / samples:6.1%}  {name}" for name, n in counter.most_common(top)]
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--connections", type=int, default=64)
    parser.add_argument("--seconds", type=int, default=8)
    parser.add_argument("--routed", action="store_true")
    parser.add_argument("--models-dir", type=Path, default=Path("models"))
    parser.add_argument("--top", type=int, default=30)
    parser.add_argument("--out", type=Path, default=Path("bench/results"))
    args = parser.parse_args()
    wrk.require()
    if not shutil.which("py-spy"):
        raise SystemExit("py-spy not found: pip install -e '.[bench]'")
    args.out.mkdir(parents=True, exist_ok=True)
    raw = args.out / "profile.txt"
    settings = {"direct_predict": "false"} if args.routed else {}
    with tempfile.TemporaryDirectory() as folder, \
            our_server(args.models_dir, **settings) as server:
        path = Path(folder) / "mnist.json"
        path.write_text(json.dumps({"instances": [[0.5] * 784]}))
        body = wrk.Body(path, "application/json", 1)
        url = server.url + "/v1/models/mnist:predict"
        wrk.drive(url, body, args.connections, 2)  # warm up
        loads: list[wrk.Load] = []
        load = threading.Thread(target=lambda: loads.append(
            wrk.drive(url, body, args.connections, args.seconds + 2)))
        load.start()
        subprocess.run(["py-spy", "record", "--pid", str(server.pid), "--duration",
                        str(args.seconds), "--rate", "200", "--format", "raw", "--output",
                        str(raw)], check=True, capture_output=True)
        load.join()
    print(f"{loads[0].rps:,.0f} req/s under the profiler (p99 {loads[0].p99_ms} ms), "
          f"{args.connections} connections{', FastAPI routing' if args.routed else ''}")
    print(summarize(raw, args.top))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
