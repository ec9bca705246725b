"""Monitoring for the whole server: the monitors of every served signature, the thread that
folds batches into them, and what the workers share.

The batcher's model call hands its inputs and outputs over (a sampling draw and a deque
append, under a microsecond, in the thread that ran the model); the monitoring thread wakes
every FOLD_EVERY_S and folds what has piled up, so no call wakes a thread. Past QUEUE_BATCHES
waiting, a batch is dropped and counted (`tfserve_monitoring_dropped_total`): the predictions
never wait for monitoring.

With workers (`TFSERVE_WORKERS` > 1) each worker folds what it served and writes its monitors'
counts to `monitoring/<pid>.json` in the shared folder (at most every WRITE_EVERY_S); a report
or /metrics, in whichever worker answers, adds every live worker's counts to its own: the
numbers cover all workers, and each worker's window holds its own latest rows.
"""

from __future__ import annotations

import collections
import contextlib
import json
import logging
import os
import random
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from app.models.signatures import SignatureInfo
from app.monitoring import profile as profiles
from app.monitoring.monitor import Arrays, Monitor
from app.settings import Settings
from app.workers import alive

log = logging.getLogger(__name__)
QUEUE_BATCHES = 1024  # batches waiting to be folded before new ones are dropped
FOLD_EVERY_S = 0.05
WRITE_EVERY_S = 1.0
FOLDER = "monitoring"

Key = tuple[str, int, str]  # model, version, signature
Runner = Callable[[Arrays], Arrays]


class Monitoring:
    def __init__(self, settings: Settings, shared_dir: Path | None = None) -> None:
        self.settings = settings
        self.monitors: dict[Key, Monitor] = {}
        self.dropped = 0
        self._waiting: collections.deque = collections.deque()
        self._folding = False
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._folder = shared_dir / FOLDER if shared_dir is not None else None
        self._dirty = False
        self._written_at = 0.0

    # the model side ---------------------------------------------------------------------

    def watch(self, model: str, version: int, path: Path,
              signatures: dict[str, SignatureInfo], runners: dict[str, Runner],
              labels: list[str] | None = None) -> tuple[dict[str, Runner], list[Monitor]]:
        """Monitors for a version's signatures, and its runners wrapped to offer each call.
        The monitors start inactive: `activate()` them once the warm-up calls are done."""
        if not self.settings.monitoring:
            return runners, []
        try:
            trained = profiles.read(path)
        except (OSError, ValueError, KeyError, TypeError) as err:
            log.warning("%s version %d: training profile unreadable (%s); monitoring its "
                        "outputs against the first window", model, version, err)
            trained = {}
        wrapped, created = {}, []
        for name, runner in runners.items():
            profile = trained.get(name) or profiles.SignatureProfile(
                profiles.baseline_summaries(signatures[name], self.settings.confidence_floor,
                                            labels), None)
            monitor = Monitor((model, version, name), profile,
                              self.settings.monitoring_window_rows,
                              self.settings.monitoring_window_s)
            self.monitors[monitor.key] = monitor
            created.append(monitor)
            wrapped[name] = self._offering(runner, monitor)
        self._start()
        return wrapped, created

    @staticmethod
    def activate(monitors: list[Monitor]) -> None:
        for monitor in monitors:
            monitor.active = True

    def forget(self, monitors: list[Monitor]) -> None:
        """Drop a released version's monitors (not those of a reload of the same version
        that has taken their place meanwhile)."""
        for monitor in monitors:
            if self.monitors.get(monitor.key) is monitor:
                del self.monitors[monitor.key]
        self._dirty = True

    def _offering(self, runner: Runner, monitor: Monitor) -> Runner:
        rate = self.settings.monitoring_sample_rate

        def run(inputs: Arrays) -> Arrays:
            outputs = runner(inputs)
            if monitor.active and (rate >= 1 or random.random() < rate):
                if len(self._waiting) < QUEUE_BATCHES:
                    self._waiting.append((monitor, inputs, outputs))
                else:
                    self.dropped += 1
            return outputs

        return run

    # the monitoring thread --------------------------------------------------------------

    def _start(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._fold_forever, name="monitoring",
                                            daemon=True)
            self._thread.start()

    def _fold_forever(self) -> None:
        while not self._stop.wait(FOLD_EVERY_S):
            self._fold_waiting()
            if self._folder is not None and self._dirty and (
                    time.monotonic() - self._written_at >= WRITE_EVERY_S):
                self._share()
        self._fold_waiting()

    def _fold_waiting(self) -> None:
        """Fold what has piled up: one fold per monitor, its batches joined (a fold's fixed
        cost, ~70 µs of Python, then runs once for all of them)."""
        self._folding = True
        try:
            pending: dict[Key, list] = {}
            while self._waiting:
                monitor, inputs, outputs = self._waiting.popleft()
                pending.setdefault(monitor.key, [monitor]).append((inputs, outputs))
            for monitor, *calls in pending.values():
                try:
                    for inputs, outputs in _joined(calls):
                        monitor.fold(inputs, outputs)
                except Exception:
                    log.exception("monitoring %s failed on a batch", _key_text(monitor.key))
            self._dirty = self._dirty or bool(pending)
        finally:
            self._folding = False

    def settle(self, timeout_s: float = 5.0) -> None:
        """Wait until the batches offered so far are folded (tests, benchmarks)."""
        deadline = time.monotonic() + timeout_s
        while (self._waiting or self._folding) and time.monotonic() < deadline:
            time.sleep(0.01)

    def close(self) -> None:
        if self._thread is not None:
            self._stop.set()
            self._thread.join(timeout=5)
            self._thread = None

    # what the workers share -------------------------------------------------------------

    def _share(self) -> None:
        self._dirty = False
        self._written_at = time.monotonic()
        doc = {_key_text(k): m.snapshot() for k, m in list(self.monitors.items())}
        self._folder.mkdir(parents=True, exist_ok=True)
        path = self._folder / f"{os.getpid()}.json"
        temporary = path.with_suffix(".tmp")
        temporary.write_text(json.dumps(doc))
        temporary.replace(path)

    def _others(self) -> list[dict[str, Any]]:
        if self._folder is None or not self._folder.is_dir():
            return []
        docs = []
        for path in self._folder.glob("*.json"):
            pid = int(path.stem) if path.stem.isdigit() else 0
            if pid == os.getpid() or not alive(pid):
                continue
            with contextlib.suppress(OSError, ValueError):
                docs.append(json.loads(path.read_text()))
        return docs

    def snapshots(self, model: str | None = None) -> dict[Key, tuple[Monitor, dict]]:
        """Each monitor (of `model`, or all) with its counts over every worker."""
        others = self._others()
        merged = {}
        for key, monitor in sorted(self.monitors.items()):
            if model is not None and key[0] != model:
                continue
            snapshot = monitor.snapshot()
            for doc in others:
                if (theirs := doc.get(_key_text(key))) is not None:
                    snapshot = _merge(snapshot, theirs)
            merged[key] = (monitor, snapshot)
        return merged

    @property
    def workers_sharing(self) -> int:
        return 1 + len(self._others())


def _joined(calls: list[tuple[Arrays, Arrays]]) -> list[tuple[Arrays, Arrays]]:
    """The calls' inputs and outputs as one batch; one by one where their shapes differ
    (a signature that takes variable dimensions)."""
    if len(calls) == 1:
        return calls
    try:
        return [tuple({name: np.concatenate([call[side][name] for call in calls])
                       for name in calls[0][side]} for side in (0, 1))]
    except ValueError:
        return calls


def _key_text(key: Key) -> str:
    return f"{key[0]}/{key[1]}/{key[2]}"


def _merge(ours: dict, theirs: dict) -> dict:
    def add(a: dict | None, b: dict | None) -> dict | None:
        if a is None or b is None:
            return a if b is None else b
        names = set(a) | set(b)
        return {n: (np.add(a[n], b[n]).tolist() if n in a and n in b else a.get(n, b.get(n)))
                for n in names}

    return {"rows_seen": ours["rows_seen"] + theirs["rows_seen"],
            "window_rows": ours["window_rows"] + theirs["window_rows"],
            "window": add(ours["window"], theirs["window"]),
            "totals": add(ours["totals"], theirs["totals"]),
            "sums": {k: ours["sums"].get(k, 0.0) + theirs["sums"].get(k, 0.0)
                     for k in set(ours["sums"]) | set(theirs["sums"])},
            "baseline": add(ours["baseline"], theirs["baseline"]),
            "baseline_rows": ours["baseline_rows"] + theirs["baseline_rows"]}
