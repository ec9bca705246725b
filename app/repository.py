"""The model repository on disk, `<model_dir>/<name>/<version>/`: what exists, what to serve.

Pure file-system logic, no TensorFlow, so the version policy is tested on plain folders:
- a version is a folder named by an integer; hidden folders (an export being written,
  `.3.partial-*`) and anything else are skipped;
- the `max_versions` highest versions of a model are served (0: all);
- a version that failed to load is remembered with the state of its folder and skipped
  while the folder stays the same; a change (a re-export, a fixed file) retries it, and the
  next lower version serves in its place meanwhile.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


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


class Repository:
    """The version policy over one model directory, with the failures it remembers."""

    def __init__(self, model_dir: Path, max_versions: int):
        self.model_dir = model_dir
        self.max_versions = max_versions
        self.failures: dict[str, dict[int, VersionFailure]] = {}

    def path(self, model: str, version: int) -> Path:
        return self.model_dir / model / str(version)

    def scan(self) -> dict[str, list[int]]:
        return scan(self.model_dir)

    def wanted(self, model: str, versions: list[int]) -> list[int]:
        """The versions of `model` to serve, out of `versions` on disk (ascending)."""
        failed = self.failures.get(model, {})
        for version in [v for v in failed if v in versions]:
            if failed[version].stamp != folder_stamp(self.path(model, version)):
                del failed[version]  # the folder changed: try again
        healthy = [v for v in versions if v not in failed]
        return healthy[-self.max_versions:] if self.max_versions else healthy

    def record_failure(self, model: str, version: int, error: str) -> None:
        stamp = folder_stamp(self.path(model, version))
        self.failures.setdefault(model, {})[version] = VersionFailure(version, error, stamp)
