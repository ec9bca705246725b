"""TensorFlow Serving's model config file (`--model_config_file`), as tfserve reads it.

    model_config_list {
      config {
        name: "mnist"
        base_path: "/models/mnist"           # relative paths: from the file's folder
        model_platform: "tensorflow"
        model_version_policy { specific { versions: 1 versions: 2 } }   # or latest / all
        version_labels { key: "stable" value: 1 }
        version_labels { key: "canary" value: 2 }
      }
    }

Parsed with the protos that `tensorflow-serving-api` ships (text format), so a file that
TF Serving takes is taken here unchanged, and one it refuses is refused with the parser's
message. Policies: `latest { num_versions }` (default 1), `all {}`, `specific { versions }`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

PLATFORMS = ("", "tensorflow")  # TF Serving's default platform is "tensorflow"


class ModelConfigError(ValueError):
    """The file cannot be read, parsed, or asks for something tfserve does not serve."""


@dataclass(frozen=True)
class VersionPolicy:
    kind: str  # "latest", "all" or "specific"
    num_versions: int = 1
    versions: tuple[int, ...] = ()

    def choose(self, versions: list[int]) -> list[int]:
        """The versions to serve out of `versions` (ascending) on disk."""
        if self.kind == "all":
            return list(versions)
        if self.kind == "specific":
            return [v for v in versions if v in self.versions]
        return versions[-self.num_versions:]


@dataclass(frozen=True)
class ModelSource:
    """One `config` entry: where a model's versions live and which to serve."""

    name: str
    base_path: Path
    policy: VersionPolicy = VersionPolicy("latest")
    labels: dict[str, int] = field(default_factory=dict)


def read(path: Path) -> dict[str, ModelSource]:
    """Model name -> source, from a text-format ModelServerConfig file."""
    from google.protobuf import text_format
    from tensorflow_serving.config import model_server_config_pb2

    try:
        text = path.read_text()
    except OSError as err:
        raise ModelConfigError(f"cannot read the model config {path}: {err}") from None
    try:
        config = text_format.Parse(text, model_server_config_pb2.ModelServerConfig())
    except text_format.ParseError as err:
        raise ModelConfigError(f"{path}: {err}") from None
    return sources_of(config, path.parent, str(path))


def sources_of(config, folder: Path, where: str) -> dict[str, ModelSource]:
    """Model name -> source, from a parsed ModelServerConfig (a file's, or one sent to
    ModelService.HandleReloadConfigRequest); relative base paths start at `folder`."""
    if config.WhichOneof("config") != "model_config_list":
        raise ModelConfigError(f"{where}: expected a model_config_list")
    sources: dict[str, ModelSource] = {}
    for entry in config.model_config_list.config:
        try:
            source = _source(entry, folder)
        except ModelConfigError as err:
            raise ModelConfigError(f"{where}: {err}") from None
        if source.name in sources:
            raise ModelConfigError(f"{where}: model {source.name!r} is configured twice")
        sources[source.name] = source
    return sources


def _source(entry, folder: Path) -> ModelSource:
    if not entry.name or not entry.base_path:
        raise ModelConfigError("every config needs a name and a base_path")
    if entry.model_platform not in PLATFORMS:
        raise ModelConfigError(f"model {entry.name!r}: platform {entry.model_platform!r} is "
                               "not served; tfserve serves TensorFlow SavedModels")
    choice = entry.model_version_policy.WhichOneof("policy_choice")
    if choice == "specific":
        versions = tuple(entry.model_version_policy.specific.versions)
        if not versions:
            raise ModelConfigError(f"model {entry.name!r}: specific policy with no versions")
        policy = VersionPolicy("specific", versions=versions)
    elif choice == "all":
        policy = VersionPolicy("all")
    else:
        count = entry.model_version_policy.latest.num_versions or 1
        policy = VersionPolicy("latest", num_versions=count)
    labels = dict(entry.version_labels)
    base = Path(entry.base_path)
    return ModelSource(entry.name, base if base.is_absolute() else folder / base, policy,
                       labels)
