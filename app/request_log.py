"""The request log: one JSON line per sampled prediction request, written off the event loop.

    {"time", "request_id", "model", "version", "signature", "protocol", "rows", "status",
     "latency_ms", "inputs"?, "outputs"?}

`TFSERVE_REQUEST_LOG` names a file (appended to) or `stdout`; `TFSERVE_REQUEST_LOG_SAMPLE` the
share of requests logged; `TFSERVE_REQUEST_LOG_PAYLOADS` adds inputs and outputs, each array
cut to its dtype and shape past PAYLOAD_BYTES. A request only puts its line on a bounded
queue; a writer thread drains it in batches. When the queue is full the line is dropped and
counted (`tfserve_request_log_dropped_total`), never waited for. The writer restarts after
any failure, keeping the lines it held; the file is reopened on SIGHUP (for logrotate) and,
with `TFSERVE_REQUEST_LOG_MAX_BYTES`, rotated to `<file>.1` when it grows past that size.
"""

from __future__ import annotations

import base64
import logging
import queue
import random
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any

import numpy as np
import orjson

log = logging.getLogger(__name__)
QUEUE_LINES = 10_000
WRITE_BATCH = 512
PAYLOAD_BYTES = 4096  # an array larger than this is logged as its dtype and shape only
_STOP = object()


def protocol_of(path: str) -> str:
    if path.startswith("/v1/"):
        return "tfserving"
    if path.startswith("/v2/"):
        return "v2"
    if path.endswith(("/predict/image", "/predict/text")):
        return "upload"
    return "tfdeploy"


def payload(arrays: dict[str, np.ndarray]) -> dict[str, Any]:
    """Arrays as JSON values, each cut to its dtype and shape past PAYLOAD_BYTES."""
    shown = {}
    for name, array in arrays.items():
        size = array.nbytes if array.dtype != object else sum(len(x) for x in array.flat)
        if size > PAYLOAD_BYTES:
            shown[name] = {"dtype": str(array.dtype), "shape": list(array.shape),
                           "truncated": True}
        elif array.dtype == object:
            shown[name] = _nested(array.tolist())
        else:
            shown[name] = array.tolist()
    return shown


def _nested(value):
    return [_nested(v) for v in value] if isinstance(value, list) else _text(value)


def _text(value: bytes) -> str | dict:
    try:
        return value.decode("utf-8")
    except UnicodeDecodeError:
        return {"b64": base64.b64encode(value).decode()}


class RequestLog:
    def __init__(self, target: str, sample: float = 1.0, payloads: bool = False,
                 max_bytes: int = 0, on_drop: Callable[[], None] | None = None):
        self.target = target
        self.sample = sample
        self.payloads = payloads
        self.max_bytes = max_bytes
        self.on_drop = on_drop
        self.lines: queue.Queue = queue.Queue(maxsize=QUEUE_LINES)
        self.restarts = 0
        self._reopen = threading.Event()
        self._file: IO[bytes] | None = None
        self._thread: threading.Thread | None = None

    def sampled(self) -> bool:
        return self.sample >= 1.0 or random.random() < self.sample

    def add(self, entry: dict) -> None:
        """Queue one line; a full queue drops it (and counts it) rather than wait."""
        try:
            self.lines.put_nowait(entry)
        except queue.Full:
            if self.on_drop is not None:
                self.on_drop()

    def reopen(self) -> None:
        """Reopen the file before the next write (SIGHUP, after logrotate moved it)."""
        self._reopen.set()

    def start(self) -> None:
        self._thread = threading.Thread(target=self._supervise, name="request-log", daemon=True)
        self._thread.start()

    def close(self, timeout: float = 10) -> None:
        """Write what is queued, then stop."""
        if self._thread is None:
            return
        self.lines.put(_STOP)
        self._thread.join(timeout)
        self._thread = None

    # the writer thread ------------------------------------------------------------------------

    def _supervise(self) -> None:
        held: list[dict] = []  # taken off the queue, not yet written
        while True:
            try:
                if self._write_until_stopped(held):
                    break
            except Exception:
                self.restarts += 1
                log.exception("the request log writer failed; restarting it")
                self._close_file()
                time.sleep(0.1)
        self._close_file()

    def _write_until_stopped(self, held: list[dict]) -> bool:
        while True:
            stop = False
            if not held:
                held.append(self.lines.get())
            while len(held) < WRITE_BATCH:
                try:
                    held.append(self.lines.get_nowait())
                except queue.Empty:
                    break
            if _STOP in held:
                held.remove(_STOP)
                stop = True
            if held:
                self._write(b"".join(orjson.dumps(e, option=orjson.OPT_SERIALIZE_NUMPY)
                                     + b"\n" for e in held))
                held.clear()
            if stop:
                return True

    def _write(self, data: bytes) -> None:
        if self._reopen.is_set():
            self._reopen.clear()
            self._close_file()
        if self._file is None:
            self._file = self._open()
        self._file.write(data)
        self._file.flush()
        if self.max_bytes and self.target != "stdout" and self._file.tell() > self.max_bytes:
            self._close_file()
            Path(self.target).replace(f"{self.target}.1")

    def _open(self) -> IO[bytes]:
        if self.target == "stdout":
            return sys.stdout.buffer
        return open(self.target, "ab")  # noqa: SIM115 (held open across writes)

    def _close_file(self) -> None:
        if self._file is not None and self.target != "stdout":
            self._file.close()
        self._file = None
