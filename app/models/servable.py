"""A served model version and its lifecycle states (TensorFlow Serving's ManagerState).

  START      found on disk, to be loaded
  LOADING    TensorFlow loads it and the first call warms each signature up
  AVAILABLE  in the routing table, serving requests
  UNLOADING  out of the routing table; its in-flight requests finish
  END        released (or failed to load: the reason stays in the repository's failures)
"""

from __future__ import annotations

import contextlib
import enum
import functools
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from app.errors import NotFound
from app.models.signatures import SignatureInfo
from app.serving.batching import Batcher, Unbatched
from app.serving.breaker import CircuitBreaker

HISTORY_PLOT = "training_history.png"


def export_warning(card: dict | None, metrics: dict | None) -> str | None:
    """What an export says makes its answers untrustworthy (random weights, say): from its
    model card, else its metrics."""
    for source in (card, metrics):
        if source and source.get("warning"):
            return str(source["warning"])
    return None


class ModelState(enum.StrEnum):
    START = "START"
    LOADING = "LOADING"
    AVAILABLE = "AVAILABLE"
    UNLOADING = "UNLOADING"
    END = "END"


@dataclass
class Servable:
    """One model version and the batchers in front of its signatures."""

    name: str
    version: int
    path: Path
    state: ModelState = ModelState.START
    signatures: dict[str, SignatureInfo] = field(default_factory=dict)
    labels: list[str] = field(default_factory=list)
    training_metrics: dict | None = None  # the export's metrics.json
    card: dict | None = None  # the export's model card (assets.extra/model_card.json)
    batchers: dict[str, Batcher | Unbatched] = field(default_factory=dict)
    breaker: CircuitBreaker | None = None
    monitors: list = field(default_factory=list)  # its signatures' (app.monitoring)
    users: int = 0  # requests holding this version
    handle: object = field(default=None, repr=False)  # keeps the TensorFlow objects alive

    @property
    def warning(self) -> str | None:
        """Shown wherever a user looks, and on every answer (`export_warning`)."""
        return export_warning(self.card, self.training_metrics)

    def input_notes(self, signature: str) -> dict[str, str]:
        """What the model card says each input of `signature` expects, by input name."""
        return ((self.card or {}).get("inputs") or {}).get(signature) or {}

    @property
    def history_plot(self) -> Path | None:
        """The training plot the export drew, if it has one."""
        plot = self.path / HISTORY_PLOT
        return plot if plot.is_file() else None

    @functools.cached_property
    def answer_headers(self) -> dict[str, str]:
        """Headers of every prediction from this version: which version answered, and an
        HTTP Warning (RFC 9111's 299, "miscellaneous persistent warning") when it has one."""
        headers = {"X-Model-Version": str(self.version)}
        if self.warning:
            text = f"{self.name}/{self.version}: {self.warning}"
            printable = "".join(c for c in text if " " <= c <= "~")[:300]
            escaped = printable.replace("\\", "\\\\").replace('"', '\\"')
            headers["Warning"] = f'299 tfserve "{escaped}"'
        return headers

    @property
    def healthy(self) -> bool:
        """False while its circuit breaker is open (app.serving.breaker)."""
        return self.breaker is None or self.breaker.healthy

    def signature(self, name: str) -> SignatureInfo:
        try:
            return self.signatures[name]
        except KeyError:
            raise NotFound(f"model {self.name!r} version {self.version} has no signature "
                           f"{name!r}; it has {sorted(self.signatures)}") from None

    @contextlib.contextmanager
    def in_use(self) -> Iterator[Servable]:
        self.users += 1
        try:
            yield self
        finally:
            self.users -= 1
