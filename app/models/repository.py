"""The model repository on disk, `<model_dir>/<name>/<version>/`: what exists, what to serve.

Or, with TFSERVE_MODEL_CONFIG, the models a TF Serving model config file lists, each under its
own base_path with its own version policy and labels (app.models.model_config); the file is read
again every TFSERVE_MODEL_CONFIG_POLL_S, and a file that no longer parses keeps the last good
one. The version logic is file-system logic, tested on plain folders:
- a version is a folder named by an integer; hidden folders (an export being written,
  `.3.partial-*`) and anything else are skipped;
- the `max_versions` highest versions of a model are served (0: all);
- a version that failed to load is remembered with the state of its folder and skipped
  while the folder stays the same; a change (a re-export, a fixed file) retries it, and the
  next lower version serves in its place meanwhile.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from pathlib import Path

from app.models import model_config
from app.models.model_config import ModelConfigError, ModelSource

log = logging.getLogger(__name__)


@dataclass
class VersionFailure:
    """Why a version could not be loaded, and the folder state that failed."""

    version: int
    error: str
    stamp: tuple


def folder_stamp(path: Path) -> tuple:
    """A cheap fingerprint of a version folder: its mtime and the names in it."""
    try:
        return path.stat().st_mtime_ns, tuple(sorted(p.name for p in path.iterdir()))
    except OSError:
        return ()


def _versions(model_folder: Path) -> list[int]:
    return sorted(int(v.name) for v in model_folder.iterdir() if v.is_dir() and v.name.isdigit())


def scan(model_dir: Path) -> dict[str, list[int]]:
    """Model name -> complete versions (ascending). Hidden and non-integer folders are skipped."""
    found: dict[str, list[int]] = {}
    for model in sorted(p for p in model_dir.iterdir() if p.is_dir()):
        if model.name.startswith("."):
            continue
        versions = _versions(model)
        if versions:
            found[model.name] = versions
    return found


class Repository:
    """The version policy over one model directory (or a model config's base paths), with the
    failures it remembers."""

    def __init__(self, model_dir: Path, max_versions: int, config_file: Path | None = None,
                 config_poll_s: float = 0):
        self.model_dir = model_dir
        self.max_versions = max_versions
        self.failures: dict[str, dict[int, VersionFailure]] = {}
        self.config_file = config_file
        self.config_poll_s = config_poll_s
        self.sources: dict[str, ModelSource] | None = None
        # the model config's models with nothing to serve ("name: base_path ..."), for messages
        self.empty_sources: list[str] = []
        self._config_read_at = 0.0
        if config_file is not None:
            self.sources = model_config.read(config_file)  # a bad file stops the start
            self._config_read_at = time.monotonic()

    @property
    def where(self) -> Path:
        """What the models come from, for messages."""
        return self.config_file if self.config_file is not None else self.model_dir

    def path(self, model: str, version: int) -> Path:
        return self.base_path(model) / str(version)

    def base_path(self, model: str) -> Path:
        if self.sources is not None and model in self.sources:
            return self.sources[model].base_path
        return self.model_dir / model

    def labels(self, model: str) -> dict[str, int]:
        """Version labels of `model` (only a model config sets them)."""
        source = (self.sources or {}).get(model)
        return dict(source.labels) if source else {}

    def scan(self) -> dict[str, list[int]]:
        if self.sources is None:
            return scan(self.model_dir)
        self._reread_config()
        found, empty = {}, []
        for name, source in self.sources.items():
            versions = _versions(source.base_path) if source.base_path.is_dir() else []
            if versions:
                found[name] = versions
            else:
                empty.append(f"{name}: {source.base_path}"
                             + ("" if source.base_path.is_dir() else " does not exist"))
        if empty != self.empty_sources:
            for entry in sorted(set(empty) - set(self.empty_sources)):
                log.warning("model config %s: no version folder under %s", self.config_file,
                            entry)
            self.empty_sources = empty
        return found

    def apply_config(self, sources: dict[str, ModelSource]) -> None:
        """A model config sent at run time (ModelService.HandleReloadConfigRequest): serve
        these models from now on; the next poll loads and releases versions accordingly. A
        polled config file still wins once it is read again, as in TF Serving."""
        log.info("model config reloaded: now %s", ", ".join(sources) or "empty")
        self.sources = sources

    def _reread_config(self) -> None:
        due = self._config_read_at + self.config_poll_s
        if self.config_file is None or not self.config_poll_s or time.monotonic() < due:
            return
        self._config_read_at = time.monotonic()
        try:
            sources = model_config.read(self.config_file)
        except ModelConfigError as err:
            log.error("keeping the last good model config: %s", err)
            return
        if sources != self.sources:
            log.info("model config %s: now %s", self.config_file, ", ".join(sources) or "empty")
        self.sources = sources

    def wanted(self, model: str, versions: list[int]) -> list[int]:
        """The versions of `model` to serve, out of `versions` on disk (ascending)."""
        failed = self.failures.get(model, {})
        for version in [v for v in failed if v in versions]:
            if failed[version].stamp != folder_stamp(self.path(model, version)):
                del failed[version]  # the folder changed: try again
        healthy = [v for v in versions if v not in failed]
        if self.sources is not None:
            source = self.sources.get(model)
            return source.policy.choose(healthy) if source else []
        return healthy[-self.max_versions:] if self.max_versions else healthy

    def record_failure(self, model: str, version: int, error: str) -> None:
        stamp = folder_stamp(self.path(model, version))
        self.failures.setdefault(model, {})[version] = VersionFailure(version, error, stamp)
