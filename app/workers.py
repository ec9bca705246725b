"""Several server processes on one port (`TFSERVE_WORKERS`): what they share.

uvicorn's supervisor binds the socket once, starts N workers that each load every model,
and restarts a worker that dies. The workers agree through one folder, prometheus-client's
multiprocess directory (`PROMETHEUS_MULTIPROC_DIR`, made by `python -m app`):
- metrics: each worker writes its own files there; /metrics in any worker sums them all,
  so a request counts once whichever worker served it (app.metrics);
- readiness: each worker writes `workers/<pid>.json` when its readiness changes, and /readyz
  in any worker is ready only when the expected number of live workers say they are.
A worker that starts cleans up after the dead ones: their board entries and live gauges.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import shutil
import tempfile
from pathlib import Path

BOARD = "workers"


def available_cpus() -> int:
    """Cores this process may use: its CPU affinity, capped by a cgroup quota (a
    container's `--cpus` limit, a Kubernetes CPU limit), which affinity does not show."""
    cores = (len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity")
             else os.cpu_count() or 1)
    quota = _cgroup_quota()
    if quota:
        cores = min(cores, math.ceil(quota))
    return max(1, cores)


def _cgroup_quota() -> float | None:
    with contextlib.suppress(OSError, ValueError):
        quota, period = Path("/sys/fs/cgroup/cpu.max").read_text().split()  # cgroup v2
        return None if quota == "max" else int(quota) / int(period)
    with contextlib.suppress(OSError, ValueError):  # cgroup v1
        quota = int(Path("/sys/fs/cgroup/cpu/cpu.cfs_quota_us").read_text())
        period = int(Path("/sys/fs/cgroup/cpu/cpu.cfs_period_us").read_text())
        return None if quota <= 0 else quota / period
    return None


def prepare_shared_dir(given: Path | None) -> tuple[Path, bool]:
    """The folder the workers share, emptied (prometheus-client needs a clean one per run);
    a temporary one unless `given`. Returns it and whether it is ours to remove."""
    if given is None:
        return Path(tempfile.mkdtemp(prefix="tfserve-workers-")), True
    given.mkdir(parents=True, exist_ok=True)
    for entry in given.iterdir():
        if entry.is_dir():
            shutil.rmtree(entry)
        else:
            entry.unlink()
    return given, False


def alive(pid: int) -> bool:
    """Running: a killed worker that its supervisor has not reaped yet (a zombie) is dead."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # alive, someone else's: not one of ours, but not dead either
        return True
    return not _zombie(pid)


def _zombie(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:  # no /proc (macOS), or gone meanwhile
        return False
    return stat.rpartition(")")[2].split()[0] == "Z"  # the state follows "(command)"


def reap_dead(shared: Path) -> list[int]:
    """Forget the workers that died: their board entries and their live gauges."""
    from prometheus_client import multiprocess

    dead = set()
    for entry in (shared / BOARD).glob("*.json"):
        if entry.stem.isdigit() and not alive(int(entry.stem)):
            dead.add(int(entry.stem))
            entry.unlink(missing_ok=True)
    for db in shared.glob("gauge_live*_*.db"):
        pid = db.stem.rsplit("_", 1)[-1]
        if pid.isdigit() and not alive(int(pid)):
            dead.add(int(pid))
    for pid in dead:
        multiprocess.mark_process_dead(pid, str(shared))
    return sorted(dead)


class WorkerBoard:
    """Each worker's readiness, in files the other workers can read."""

    def __init__(self, shared: Path, expected: int):
        self.folder = shared / BOARD
        self.folder.mkdir(parents=True, exist_ok=True)
        self.expected = expected
        self.mine = self.folder / f"{os.getpid()}.json"
        self._published: tuple[bool, str] | None = None
        self._withdrawn = False

    def publish(self, ready: bool, reason: str) -> None:
        """Write this worker's state (atomically: a reader never sees half a file); nothing
        once withdrawn: releasing the models at shutdown changes readiness again, and a
        publish then left a stopped worker's file behind (seen under load)."""
        if self._published == (ready, reason) or self._withdrawn:
            return
        staging = self.mine.with_suffix(".tmp")
        staging.write_text(json.dumps({"ready": ready, "reason": reason}))
        staging.replace(self.mine)
        self._published = (ready, reason)

    def withdraw(self) -> None:
        """Leave the board for good (shutdown)."""
        self._withdrawn = True
        self.mine.unlink(missing_ok=True)
        self._published = None

    def workers(self) -> list[dict]:
        """The live workers' states, by pid."""
        listing = []
        for entry in sorted(self.folder.glob("*.json")):
            if not entry.stem.isdigit() or not alive(int(entry.stem)):
                continue
            with contextlib.suppress(OSError, ValueError):  # gone since the glob
                listing.append({"pid": int(entry.stem), **json.loads(entry.read_text())})
        return listing

    def others_ready(self) -> bool:
        """Whether another live worker serves already: this one replaces a dead worker."""
        return any(w["ready"] for w in self.workers() if w["pid"] != os.getpid())

    def readiness(self) -> tuple[bool, str, list[dict]]:
        """Ready only when `expected` live workers are; else why not."""
        listing = self.workers()
        ready = sum(1 for w in listing if w["ready"])
        if ready >= self.expected:
            return True, "", listing
        waiting = [f"{w['pid']}: {w['reason']}" for w in listing if not w["ready"]]
        reason = f"{ready} of {self.expected} workers ready"
        if waiting:
            reason += f" ({'; '.join(waiting)})"
        elif len(listing) < self.expected:
            reason += " (a worker is starting)"
        return False, reason, listing
