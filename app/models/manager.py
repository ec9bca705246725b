"""The model manager: which versions serve, their lifecycle, and the batchers in front of them.

Contract:
- `start()` loads every version the repository's policy wants (app.models.repository); each
  signature is warmed up with the export's own example or zeros, and only then does the
  version enter the routing table and `ready` become true. Loading runs in worker threads.
- A version that fails to load is logged and recorded with its error; it never takes the
  server down and never blocks readiness.
- `poll()` (every `poll_interval_s`) loads versions that appeared and releases versions that
  vanished or fell out of the policy. A released version leaves the routing table at once
  and is closed after its in-flight requests have finished. An empty repository is not
  ready; it becomes ready when a first model has been loaded (say, once a trainer wrote it).
- `get()` raises `NotFound` naming what exists, `NotReady` before the first load.
States follow TensorFlow Serving's (app.models.servable.ModelState).
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

from app.errors import NotFound, NotReady
from app.metrics import Metrics
from app.models import loader
from app.models.repository import Repository, VersionFailure
from app.models.servable import ModelState, Servable
from app.monitoring.metrics import MonitoringCollector
from app.monitoring.service import Monitoring
from app.serving.batching import Batcher, Unbatched
from app.serving.breaker import CircuitBreaker
from app.serving.traffic import Traffic
from app.settings import Settings

log = logging.getLogger(__name__)


# Python collects its youngest generation after 700 net container allocations. 64 requests
# in flight hold more than that between them, so at 64 clients a collection ran every ~18
# requests, each walking every request in flight (~5 µs per request in all, docs/PROFILING.md),
# and found nothing: requests make no reference cycles. Garbage cycles still get collected,
# after this many allocations instead.
YOUNG_COLLECTION_THRESHOLD = 10_000


def freeze_heap() -> None:
    """Hide the long-lived objects (TensorFlow's, the models') from the garbage collector.

    A full collection walks ~440k of them, ~300 ms with the event loop stopped, at moments
    set by allocation counts: a latency spike for whichever requests are in flight. Frozen,
    collections scan only the young, per-request objects, and only when more of them are
    alive than requests in flight account for (YOUNG_COLLECTION_THRESHOLD). Called after
    loads and releases: one pause at a moment we choose instead of recurring ones.
    """
    gc.unfreeze()
    gc.collect()
    gc.freeze()
    _, middle, old = gc.get_threshold()
    gc.set_threshold(YOUNG_COLLECTION_THRESHOLD, middle, old)


def started_executor(threads: int, name: str) -> ThreadPoolExecutor:
    """A pool with all its threads running from the start.

    ThreadPoolExecutor adds a thread only when every existing one is busy, so a pool that
    grows at the first rare burst, minutes into a run, looks like a leak to anyone watching
    the thread count (the soak's check). Started whole, the count is fixed at startup.
    """
    executor = ThreadPoolExecutor(threads, thread_name_prefix=name)
    everyone_started = threading.Barrier(threads)
    for started in [executor.submit(everyone_started.wait) for _ in range(threads)]:
        started.result()
    return executor


class ModelManager:
    def __init__(self, settings: Settings, metrics: Metrics, traffic: Traffic | None = None):
        self.settings = settings
        self.metrics = metrics
        self.traffic = traffic
        self.monitoring = Monitoring(settings, metrics.shared_dir)
        metrics.add_collector(MonitoringCollector(self.monitoring))
        self.repository = Repository(settings.model_dir, settings.max_versions,
                                     settings.model_config_file, settings.model_config_poll_s)
        self.executor = started_executor(settings.inference_threads, "inference")
        self.servables: dict[str, dict[int, Servable]] = {}
        self.ready = False
        self.not_ready_reason = "models are loading"
        self._loaded_once = False
        self._poller: asyncio.Task | None = None
        self._releasing: set[asyncio.Task] = set()
        self._polling = asyncio.Lock()
        self.on_readiness: Callable[[bool, str], None] | None = None  # (ready, reason)

    @property
    def failures(self) -> dict[str, dict[int, VersionFailure]]:
        return self.repository.failures

    def get(self, model: str, version: int | None = None) -> Servable:
        """The servable of `model` at `version` (None: the highest)."""
        versions = self.servables.get(model)
        if not versions and not self.ready:
            raise NotReady(f"not ready: {self.not_ready_reason}; retry shortly")
        if not versions:
            raise NotFound(f"model {model!r} is not served; models: {sorted(self.servables)}")
        if version is None:
            return versions[max(versions)]
        try:
            return versions[version]
        except KeyError:
            raise NotFound(f"model {model!r} has no version {version}; versions: "
                           f"{sorted(versions)}") from None

    def version_for_label(self, model: str, label: str) -> int:
        """The version a label of the model config names; 404 naming the known labels."""
        labels = self.repository.labels(model)
        if label not in labels:
            known = ", ".join(f"{k} -> {v}" for k, v in sorted(labels.items())) or "none"
            raise NotFound(f"model {model!r} has no version label {label!r}; labels: {known}")
        return labels[label]

    # lifecycle ------------------------------------------------------------------------------

    async def start(self) -> None:
        await self.poll()
        self._loaded_once = True
        self._update_readiness()
        if not self.ready:
            log.warning("%s; waiting for models to appear", self.not_ready_reason)
        if self._poll_every_s() > 0:
            self._poller = asyncio.get_running_loop().create_task(self._poll_forever())

    def _poll_every_s(self) -> float:
        """Often enough for both the version folders and the model config (0: never)."""
        config_poll = self.settings.model_config_poll_s if self.repository.sources else 0
        periods = [p for p in (self.settings.poll_interval_s, config_poll) if p > 0]
        return min(periods, default=0)

    async def _poll_forever(self) -> None:
        while True:
            await asyncio.sleep(self._poll_every_s())
            try:
                await self.poll()
            except Exception:
                log.exception("polling %s failed", self.repository.where)

    async def poll(self) -> None:
        """Bring the loaded versions in line with the disk (one poll at a time: a reloaded
        model config polls at once, beside the periodic poll)."""
        async with self._polling:
            await self._poll()

    async def _poll(self) -> None:
        try:
            on_disk = await asyncio.to_thread(self.repository.scan)
        except OSError as err:
            log.error("cannot read %s: %s", self.repository.where, err)
            return
        loaded_any = False
        for model, versions in on_disk.items():
            for _ in versions:  # a failed load lets a lower version in: load that one too
                missing = [v for v in self.repository.wanted(model, versions)
                           if v not in self.servables.get(model, {})]
                if not missing:
                    break
                for version in missing:
                    loaded_any |= await self._load(model, version)
        for model, loaded in list(self.servables.items()):
            wanted = set(self.repository.wanted(model, on_disk.get(model, [])))
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
        empty = "; ".join(self.repository.empty_sources)
        self.not_ready_reason = "" if self.ready else (
            f"no loadable model in {self.repository.where.resolve()}"
            + (f" (no version folder: {empty})" if empty else ""))
        if self.on_readiness is not None:
            self.on_readiness(self.ready, self.not_ready_reason)

    async def _load(self, model: str, version: int) -> bool:
        """Load, attach batchers, warm up; True when the version now serves."""
        servable = Servable(model, version, self.repository.path(model, version))
        servable.state = ModelState.LOADING
        started = time.perf_counter()
        try:
            loaded = await asyncio.to_thread(loader.load, servable.path,
                                             self.settings.max_instances)
            loaded_s = time.perf_counter() - started
            servable.signatures, servable.labels = loaded.signatures, loaded.labels
            servable.training_metrics, servable.handle = loaded.training_metrics, loaded.handle
            servable.card = loaded.card
            runners, servable.monitors = self.monitoring.watch(
                model, version, servable.path, loaded.signatures, loaded.runners, loaded.labels)
            self._attach_batchers(servable, runners)
            warm_started = time.perf_counter()
            await self._warm_up(servable, loaded.warmup_inputs)
            warm_s = time.perf_counter() - warm_started
            self.monitoring.activate(servable.monitors)  # warm-up calls are not traffic
        except Exception as err:  # a broken version must not take the server down
            self.monitoring.forget(servable.monitors)
            for batcher in servable.batchers.values():
                await batcher.close()
            servable.state = ModelState.END
            reason = f"{type(err).__name__}: {loader.clean_error(err, with_node=True)}"
            log.error("skipping %s version %d (%s): %s", model, version, servable.path, reason)
            self.repository.record_failure(model, version, reason)
            self.metrics.model_failures.labels(model).inc()
            return False
        servable.state = ModelState.AVAILABLE
        self.servables.setdefault(model, {})[version] = servable
        self.metrics.load_seconds.labels(model, str(version)).set(loaded_s)
        self.metrics.warmup_seconds.labels(model, str(version)).set(warm_s)
        log.info("loaded %s version %d in %.1fs, warmed up in %.2fs (%s)", model, version,
                 loaded_s, warm_s, ", ".join(servable.signatures))
        if servable.warning:
            log.warning("%s version %d: %s", model, version, servable.warning)
        return True

    def _attach_batchers(self, servable: Servable, runners: dict[str, loader.Runner]) -> None:
        policy = self.settings.batching_for(servable.name)
        version = (servable.name, str(servable.version))
        servable.breaker = CircuitBreaker(
            "/".join(version), self.settings.breaker_failures, self.settings.breaker_cooldown_s,
            on_trip=self.metrics.breaker_trips.labels(*version).inc)
        for sig_name, runner in runners.items():
            labels = (*version, sig_name)
            common = {"name": f"{servable.name}/{servable.version}/{sig_name}",
                      "max_queue_rows": policy.max_queue_rows, "traffic": self.traffic,
                      "on_batch": self.metrics.batch_size.labels(*labels).observe,
                      "breaker": servable.breaker}
            if policy.enabled:
                batcher = Batcher(runner, self.executor, max_batch_size=policy.max_batch_size,
                                  batch_timeout_ms=policy.batch_timeout_ms,
                                  max_queue_delay_ms=policy.max_queue_delay_ms, **common)
            else:
                batcher = Unbatched(runner, self.executor, **common)
            batcher.start()
            servable.batchers[sig_name] = batcher
            self.metrics.watch_queue(labels, lambda b=batcher: b.queued_rows)

    async def _warm_up(self, servable: Servable, requests: list) -> None:
        """The warm-up requests, then (TFSERVE_WARMUP_FULL_BATCH) one full batch per batched
        signature.

        TensorFlow's CPU allocator keeps the memory of the largest call it has run (the test
        suite's inception_v3: 64 images, ~0.9 GB more than one): without the full batch,
        resident memory jumps at the first burst, hours into a run, where a container's memory
        limit kills it; with it, a version takes at load what its calls will hold, or fails to
        load. Off by default: the full batches cost seconds of CPU per model at every load.
        """
        deadline = time.monotonic() + max(self.settings.request_timeout_s, 120)
        largest: dict[str, tuple[loader.Arrays, int]] = {}
        for sig_name, arrays, rows in requests:
            await servable.batchers[sig_name].submit(arrays, rows, deadline)
            if rows > largest.get(sig_name, (None, 0))[1]:
                largest[sig_name] = (arrays, rows)
        if not self.settings.warmup_full_batch:
            return
        for sig_name, (arrays, rows) in largest.items():
            batcher = servable.batchers[sig_name]
            if not isinstance(batcher, Batcher):
                continue
            # the largest batch the batcher assembles (a queue smaller than a batch caps it;
            # one request of more rows still makes a larger call)
            batch_rows = min(batcher.admission.batch_limit(), batcher.max_queue_rows)
            if batch_rows > rows:
                await batcher.submit(loader.full_batch(arrays, rows, batch_rows), batch_rows,
                                     deadline)

    def _release(self, servable: Servable, settle_heap: bool = True) -> None:
        servable.state = ModelState.UNLOADING
        log.info("releasing %s version %d after its in-flight requests", servable.name,
                 servable.version)
        task = asyncio.get_running_loop().create_task(self._close_when_idle(servable, settle_heap))
        self._releasing.add(task)
        task.add_done_callback(self._releasing.discard)

    async def _close_when_idle(self, servable: Servable, settle_heap: bool) -> None:
        while servable.users:
            await asyncio.sleep(0.05)
        for sig_name, batcher in servable.batchers.items():
            await batcher.close()
            self.metrics.unwatch_queue((servable.name, str(servable.version), sig_name))
        servable.state = ModelState.END
        servable.handle = None
        self.monitoring.forget(servable.monitors)
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
        self.monitoring.close()
