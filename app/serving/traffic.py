"""How many requests the server is handling, and how many of them wait in a batcher.

A batcher's timeout exists to let batch-mates arrive; when every request in the server is
already parked in a batcher, no batch-mate can come but from the network, so waiting longer
only adds latency. `CountRequests` (app.http_api.middleware) counts requests in; batchers
count parks.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterator


class Traffic:
    """Requests in the server (counted by middleware) and how many wait in batchers."""

    def __init__(self) -> None:
        self.active = 0  # HTTP requests being handled
        self.parked = 0  # of those, submitted to a batcher and not answered yet
        self._watchers: set[asyncio.Event] = set()

    def enter(self) -> None:
        self.active += 1

    def leave(self) -> None:
        self.active -= 1
        for event in self._watchers:
            event.set()

    @property
    def others_busy(self) -> bool:
        """Whether some request is still being read, decoded or answered: a possible batch-mate."""
        return self.active > self.parked

    @contextlib.contextmanager
    def watching(self, event: asyncio.Event) -> Iterator[None]:
        """Set `event` whenever a request leaves, so a waiting batcher re-checks."""
        self._watchers.add(event)
        try:
            yield
        finally:
            self._watchers.discard(event)
