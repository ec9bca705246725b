"""wrk, the C load generator: one machine-readable line per run (see post.lua)."""

from __future__ import annotations

import os
import re
import shutil
import statistics
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

LUA = Path(__file__).with_name("post.lua")


@dataclass
class Body:
    path: Path
    content_type: str
    rows: int  # instances per request
    headers: dict[str, str] = field(default_factory=dict)  # besides Content-Type


@dataclass
class Load:
    rps: float
    p50_ms: float
    p90_ms: float
    p99_ms: float
    errors: int
    requests: int = 0
    retransmits: int | None = None  # TCP segments the kernel sent again meanwhile
    loop_us: float | None = None  # the server's event-loop CPU per request (processes.drive)


def tcp_retransmits() -> int | None:
    """The kernel's count of retransmitted TCP segments (Linux), all sockets together. On
    loopback here every one was a tail loss probe that the peer reported as a duplicate
    (D-SACK): nothing was lost; a probe fires when a peer is slow to acknowledge, so a count
    says client or server was starved of CPU, not that packets were dropped."""
    try:
        lines = Path("/proc/net/snmp").read_text().splitlines()
    except OSError:
        return None
    names, values = (line.split()[1:] for line in lines if line.startswith("Tcp:"))
    return int(dict(zip(names, values, strict=True))["RetransSegs"])


def require() -> None:
    if not shutil.which("wrk"):
        raise SystemExit("wrk not found: apt-get install wrk (Debian/Ubuntu)")


def drive(url: str, body: Body, connections: int, seconds: float) -> Load:
    retransmitted = tcp_retransmits()
    result = subprocess.run(
        ["wrk", f"-t{min(connections, 2)}", f"-c{connections}", f"-d{max(1, round(seconds))}s",
         "--timeout", "30s", "-s", str(LUA), url],
        env={**os.environ, "BODY_FILE": str(body.path), "CONTENT_TYPE": body.content_type,
             "EXTRA_HEADERS": "\n".join(f"{k}: {v}" for k, v in body.headers.items())},
        capture_output=True, text=True, check=True)
    line = next(x for x in result.stdout.splitlines() if x.startswith("RESULT"))
    values = {k: float(v) for k, v in re.findall(r"(\w+)=([\d.]+)", line)}
    return Load(rps=values["requests"] / (values["duration_us"] / 1e6),
                p50_ms=values["p50_us"] / 1000, p90_ms=values["p90_us"] / 1000,
                p99_ms=values["p99_us"] / 1000, errors=int(values["errors"]),
                requests=int(values["requests"]),
                retransmits=None if retransmitted is None
                else tcp_retransmits() - retransmitted)


def median_loop_us(loads: list[Load]) -> str:
    """The median event-loop time per request of `loads`, for a table ("" if unmeasured)."""
    measured = [load.loop_us for load in loads if load.loop_us is not None]
    return f"{statistics.median(measured):.0f}" if measured else ""
