"""The model registry: finds `models/<name>/<version>/`, loads, warms up, hot-reloads.

Contract:
- `start()` loads every complete version found (the `max_versions` highest of each model),
  each signature is warmed up with the export's own example (assets.extra/examples.json) or
  zeros, and only then does `ready` become true. Loading runs in worker threads.
- A version that fails to load is logged and recorded with its error (state END); it never
  takes the server down and never blocks readiness.
- `poll()` (every `poll_interval_s`) loads versions that appeared and releases versions that
  vanished or fell out of the `max_versions` highest. A released version leaves the routing
  table at once and is closed after its in-flight requests have finished. An empty
  repository is not ready; it becomes ready when a first model has been loaded (say, once a
  trainer has written it).
- `get()` and `Servable.signature()` raise `NotFound` naming what exists.
States follow TensorFlow Serving's: START, LOADING, AVAILABLE, UNLOADING, END.
This module and `training/` are the only ones that import TensorFlow.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import json
import logging
import re
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import tensorflow as tf

from app import codecs
from app.batching import Batcher, Traffic, Unbatched
from app.errors import InvalidInput, NotFound, Overloaded, redact_paths
from app.metrics import Metrics
from app.settings import Settings
from app.signatures import SignatureInfo, TensorInfo

log = logging.getLogger(__name__)


@dataclass
class Servable:
    """One loaded model version and the batchers in front of its signatures."""

    name: str
    version: int
    path: Path
    signatures: dict[str, SignatureInfo]
    labels: list[str]
    metrics: dict | None
    batchers: dict[str, Batcher | Unbatched] = field(default_factory=dict)
    state: str = "LOADING"
    users: int = 0  # requests holding this version
    saved_model: object = field(default=None, repr=False)  # keeps the TF objects alive

    def signature(self, name: str) -> SignatureInfo:
        try:
            return self.signatures[name]
        except KeyError:
            raise NotFound(f"model {self.name!r} version {self.version} has no signature "
                           f"{name!r}; it has {sorted(self.signatures)}") from None

    @contextlib.contextmanager
    def in_use(self):
        self.users += 1
        try:
            yield self
        finally:
            self.users -= 1


@dataclass
class VersionFailure:
    version: int
    error: str
    stamp: tuple  # the folder's state when it failed; a change means "retry"


def _stamp(path: Path) -> tuple:
    try:
        return path.stat().st_mtime_ns, tuple(sorted(p.name for p in path.iterdir()))
    except OSError:
        return ()


def scan(model_dir: Path) -> dict[str, list[int]]:
    """Model name -> complete versions (ascending). Hidden and non-integer folders are skipped."""
    found: dict[str, list[int]] = {}
    for model in sorted(p for p in model_dir.iterdir() if p.is_dir()):
        if model.name.startswith("."):
            continue
        versions = sorted(int(v.name) for v in model.iterdir()
                          if v.is_dir() and v.name.isdigit())
        if versions:
            found[model.name] = versions
    return found


def _tensor_info(name: str, spec: tf.TensorSpec) -> TensorInfo:
    dtype = "string" if spec.dtype == tf.string else spec.dtype.as_numpy_dtype().dtype.name
    shape = None if spec.shape.rank is None else tuple(
        -1 if d is None else int(d) for d in spec.shape.as_list())
    return TensorInfo(name, dtype, shape)


def _read_json(path: Path) -> dict | None:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def load_version(name: str, version: int, path: Path) -> tuple[Servable, dict]:
    """Load a SavedModel from disk (blocking). Returns the servable and its raw signatures."""
    loaded = tf.saved_model.load(str(path))
    functions = {k: v for k, v in loaded.signatures.items() if not k.startswith("__")}
    if not functions:
        raise ValueError("the SavedModel has no serving signatures")
    examples = _read_json(path / "assets.extra" / "examples.json") or {}
    signatures = {}
    for sig_name, function in functions.items():
        inputs = function.structured_input_signature[1]
        outputs = function.structured_outputs
        if not isinstance(outputs, dict):
            raise ValueError(f"signature {sig_name!r} does not return named outputs")
        signatures[sig_name] = SignatureInfo(
            sig_name,
            {k: _tensor_info(k, s) for k, s in sorted(inputs.items())},
            {k: _tensor_info(k, s) for k, s in sorted(outputs.items())},
            example=examples.get(sig_name))
    labels_file = path / "assets" / "labels.txt"
    labels = labels_file.read_text().splitlines() if labels_file.exists() else []
    servable = Servable(name, version, path, signatures, labels,
                        _read_json(path / "metrics.json"), saved_model=loaded)
    return servable, functions


_TF_NOISE = re.compile(r"\s*(\[\[.*?\]\]|\[Op:[^\]]*\]|\{\{.*?\}\})")
_TF_PREAMBLE = ("Graph execution error", "Detected at node", "<stack traces", "File ", "  ")


def _first_line(err: BaseException) -> str:
    """The error's reason, fit for a client: no stack, no graph internals, no file paths.

    TensorFlow's graph errors open with "Graph execution error:" and a stack; the reason is
    the first line after them, and the failing node is named in "Detected at node ...".
    """
    lines = [line for line in str(err).splitlines() if line.strip()]
    reasons = [line for line in lines if not line.startswith(_TF_PREAMBLE)]
    reason = _TF_NOISE.sub("", reasons[0] if reasons else (lines[0] if lines else "")).strip()
    node = re.search(r"Detected at node (\S+)", str(err))
    if node:
        reason += f" (at node {node.group(1)})"
    return redact_paths(reason)


def make_runner(function):
    """numpy in, numpy out; runs in a worker thread. Input the graph rejects -> 400."""

    def run(inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        try:
            outputs = function(**{k: tf.constant(v) for k, v in inputs.items()})
        except tf.errors.InvalidArgumentError as err:
            raise InvalidInput(f"the model rejected the input: {_first_line(err)}") from None
        return {k: v.numpy() for k, v in outputs.items()}

    return run


def freeze_heap() -> None:
    """Hide the long-lived objects (TensorFlow's, the models') from the garbage collector.

    A full collection walks ~440k of them, ~300 ms with the event loop stopped, at moments
    set by allocation counts: a latency spike for whichever requests are in flight. Frozen,
    collections scan only the young, per-request objects. Called after loads and releases:
    one pause at a moment we choose instead of recurring ones.
    """
    gc.unfreeze()
    gc.collect()
    gc.freeze()


class Registry:
    def __init__(self, settings: Settings, metrics: Metrics, traffic: Traffic | None = None):
        self.settings = settings
        self.metrics = metrics
        self.traffic = traffic
        self.executor = ThreadPoolExecutor(settings.inference_threads,
                                           thread_name_prefix="inference")
        self.servables: dict[str, dict[int, Servable]] = {}
        self.failures: dict[str, dict[int, VersionFailure]] = {}
        self.ready = False
        self.not_ready_reason = "models are loading"
        self._loaded_once = False
        self._poller: asyncio.Task | None = None
        self._releasing: set[asyncio.Task] = set()

    # lookup ---------------------------------------------------------------------------------

    def get(self, model: str, version: int | None = None) -> Servable:
        versions = self.servables.get(model)
        if not versions and not self.ready:
            raise Overloaded(f"not ready: {self.not_ready_reason}; retry shortly")
        if not versions:
            known = sorted(self.servables)
            raise NotFound(f"model {model!r} is not served; models: {known}")
        if version is None:
            return versions[max(versions)]
        try:
            return versions[version]
        except KeyError:
            raise NotFound(f"model {model!r} has no version {version}; versions: "
                           f"{sorted(versions)}") from None

    # lifecycle ------------------------------------------------------------------------------

    async def start(self) -> None:
        await self.poll()
        self._loaded_once = True
        self._update_readiness()
        if not self.ready:
            log.warning("%s; waiting for models to appear", self.not_ready_reason)
        if self.settings.poll_interval_s > 0:
            self._poller = asyncio.get_running_loop().create_task(self._poll_forever())

    async def _poll_forever(self) -> None:
        while True:
            await asyncio.sleep(self.settings.poll_interval_s)
            try:
                await self.poll()
            except Exception:
                log.exception("polling %s failed", self.settings.model_dir)

    async def poll(self) -> None:
        """Bring the loaded versions in line with the disk."""
        try:
            on_disk = await asyncio.to_thread(scan, self.settings.model_dir)
        except OSError as err:
            log.error("cannot read %s: %s", self.settings.model_dir, err)
            return
        loaded_any = False
        for model, versions in on_disk.items():
            for version in self._wanted(model, versions):
                if version not in self.servables.get(model, {}):
                    await self._load(model, version)
                    loaded_any = True
        for model, loaded in list(self.servables.items()):
            wanted = set(self._wanted(model, on_disk.get(model, [])))
            for version in [v for v in loaded if v not in wanted]:
                self._release(loaded.pop(version))
            if not loaded:
                del self.servables[model]
        if loaded_any:
            freeze_heap()
        if self._loaded_once:
            self._update_readiness()

    def _update_readiness(self) -> None:
        """Ready once the first scan is loaded and warm and at least one model serves; a
        repository that is still empty (a trainer at work) becomes ready when models appear."""
        self.ready = bool(self.servables)
        self.not_ready_reason = "" if self.ready else (
            f"no loadable model in {self.settings.model_dir.resolve()}")

    def _wanted(self, model: str, versions: list[int]) -> list[int]:
        """The versions to serve: the highest loadable ones (failed ones retried on change)."""
        failed = self.failures.get(model, {})
        for version in [v for v in failed if v in versions]:
            if failed[version].stamp != _stamp(self.settings.model_dir / model / str(version)):
                del failed[version]  # the folder changed: try again
        healthy = [v for v in versions if v not in failed]
        keep = self.settings.max_versions
        return healthy[-keep:] if keep else healthy

    async def _load(self, model: str, version: int) -> None:
        path = self.settings.model_dir / model / str(version)
        started = time.perf_counter()
        servable = None
        try:
            servable, functions = await asyncio.to_thread(load_version, model, version, path)
            loaded_s = time.perf_counter() - started
            self._attach_batchers(servable, functions)
            warm_started = time.perf_counter()
            await self._warm_up(servable)
            warm_s = time.perf_counter() - warm_started
        except Exception as err:  # a broken version must not take the server down
            if servable is not None:
                for batcher in servable.batchers.values():
                    await batcher.close()
            reason = f"{type(err).__name__}: {_first_line(err)}"
            log.error("skipping %s version %d (%s): %s", model, version, path, reason)
            self.failures.setdefault(model, {})[version] = VersionFailure(version, reason,
                                                                          _stamp(path))
            self.metrics.model_failures.labels(model).inc()
            return
        servable.state = "AVAILABLE"
        self.servables.setdefault(model, {})[version] = servable
        self.metrics.load_seconds.labels(model, str(version)).set(loaded_s)
        self.metrics.warmup_seconds.labels(model, str(version)).set(warm_s)
        log.info("loaded %s version %d in %.1fs, warmed up in %.2fs (%s)", model, version,
                 loaded_s, warm_s, ", ".join(servable.signatures))

    def _attach_batchers(self, servable: Servable, functions: dict) -> None:
        policy = self.settings.batching_for(servable.name)
        for sig_name, function in functions.items():
            labels = (servable.name, str(servable.version), sig_name)
            batch_hist = self.metrics.batch_size.labels(*labels)
            common = {"name": f"{servable.name}/{servable.version}/{sig_name}",
                      "max_queue_rows": policy.max_queue_rows,
                      "on_batch": batch_hist.observe, "traffic": self.traffic}
            runner = make_runner(function)
            if policy.enabled:
                batcher = Batcher(runner, self.executor, max_batch_size=policy.max_batch_size,
                                  batch_timeout_ms=policy.batch_timeout_ms, **common)
            else:
                batcher = Unbatched(runner, self.executor, **common)
            batcher.start()
            servable.batchers[sig_name] = batcher
            self.metrics.queue_rows.labels(*labels).set_function(
                lambda b=batcher: b.queued_rows)

    async def _warm_up(self, servable: Servable) -> None:
        deadline = time.monotonic() + max(self.settings.request_timeout_s, 120)
        for sig_name, info in servable.signatures.items():
            arrays, rows, _ = codecs.decode_request(info.request_example(), info,
                                                    self.settings.max_instances)
            await servable.batchers[sig_name].submit(arrays, rows, deadline)

    def _release(self, servable: Servable, settle_heap: bool = True) -> None:
        servable.state = "UNLOADING"
        log.info("releasing %s version %d after its in-flight requests", servable.name,
                 servable.version)
        task = asyncio.get_running_loop().create_task(self._close_when_idle(servable, settle_heap))
        self._releasing.add(task)
        task.add_done_callback(self._releasing.discard)

    @staticmethod
    async def _close_when_idle(servable: Servable, settle_heap: bool) -> None:
        while servable.users:
            await asyncio.sleep(0.05)
        for batcher in servable.batchers.values():
            await batcher.close()
        servable.state = "END"
        servable.saved_model = None
        if settle_heap:  # the released version's objects become collectable again
            freeze_heap()
        log.info("released %s version %d", servable.name, servable.version)

    async def close(self) -> None:
        if self._poller is not None:
            self._poller.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._poller
        for versions in self.servables.values():
            for servable in versions.values():
                # uvicorn has drained the requests by now; the process is exiting, so no
                # full collection per version
                self._release(servable, settle_heap=False)
        self.servables.clear()
        if self._releasing:
            await asyncio.gather(*self._releasing)
        self.executor.shutdown(wait=True)
