"""The request log: one JSON line per sampled prediction request, written off the event loop.

    {"time", "request_id", "model", "version", "signature", "protocol", "rows", "status",
     "latency_ms", "inputs"?, "outputs"?}

`TFSERVE_REQUEST_LOG` names a file (appended to) or `stdout`; `TFSERVE_REQUEST_LOG_SAMPLE` the
share of requests logged; `TFSERVE_REQUEST_LOG_PAYLOADS` adds inputs and outputs, each array
cut to its dtype and shape past PAYLOAD_BYTES. A request only appends its line to a bounded
deque; a writer thread wakes every FLUSH_S and writes what is there in one call. When the
deque is full the line is dropped and counted (`tfserve_request_log_dropped_total`), never
waited for. A queue.Queue woke the writer for every line (a lock, a notify and a thread
switch per request, competing with the event loop for the GIL): at 64 clients on mnist the
log then cost 11% of the throughput, over the 10% budget. The writer restarts after
any failure, keeping the lines it held; the file is reopened on SIGHUP (for logrotate) and,
with `TFSERVE_REQUEST_LOG_MAX_BYTES`, rotated to `<file>.1` when it grows past that size.
"""

from __future__ import annotations

import base64
import collections
import logging
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
WRITE_BATCH = 2048
FLUSH_S = 0.1  # how late a line may reach the file
PAYLOAD_BYTES = 4096  # an array larger than this is logged as its dtype and shape only


def protocol_of(path: str) -> str:
    if path.startswith("/tensorflow.serving."):  # a gRPC method
        return "tfserving-grpc"
    if path.startswith("/inference."):
        return "v2-grpc"
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
                 max_bytes: int = 0, on_drop: Callable[[], None] | None = None,
                 max_lines: int = QUEUE_LINES, flush_s: float = FLUSH_S):
        self.target = target
        self.sample = sample
        self.payloads = payloads
        self.max_bytes = max_bytes
        self.on_drop = on_drop
        self.max_lines = max_lines
        self.flush_s = flush_s
        # appended by the event loop, popped by the writer: both atomic under the GIL
        self.lines: collections.deque[dict] = collections.deque()
        self.restarts = 0
        self._stop = threading.Event()
        self._reopen = threading.Event()
        self._file: IO[bytes] | None = None
        self._thread: threading.Thread | None = None

    def sampled(self) -> bool:
        return self.sample >= 1.0 or random.random() < self.sample

    def add(self, entry: dict) -> None:
        """Queue one line; a full queue drops it (and counts it) rather than wait."""
        if len(self.lines) < self.max_lines:
            self.lines.append(entry)
        elif self.on_drop is not None:
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
        self._stop.set()
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
            stopping = self._stop.wait(self.flush_s)
            while held or self.lines:
                while self.lines and len(held) < WRITE_BATCH:
                    held.append(self.lines.popleft())
                self._write(b"".join(orjson.dumps(e, option=orjson.OPT_SERIALIZE_NUMPY)
                                     + b"\n" for e in held))
                held.clear()
            if stopping:
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
