"""The server's event loop: uvloop, with listening sockets that take every waiting connection.

libuv (under uvloop) accepts one connection per turn of the event loop. Under load a turn
lasts milliseconds (a batch's answers are written in it), so a burst of new connections waits
in the kernel's accept queue: 256 clients connecting to a busy server were accepted over a
second, about one per 5 ms, and each one's first request waited as long before the server
read it (docs/PROFILING.md, "Issue 14, seventh round"). asyncio's own loop accepts up to the
backlog per turn; `new_event_loop()` gives uvloop with that behaviour for plain TCP servers
(TLS and other options go to uvloop's own).

Only a process alone on its socket should take everything: with several workers on one
socket, one per turn is what spreads connections to the least busy worker, so app.__main__
uses this loop for one process only.
"""

from __future__ import annotations

import asyncio
import errno
import logging
import socket
from collections.abc import Callable
from typing import Any

import uvloop

log = logging.getLogger(__name__)

# Out of descriptors or memory: accepting again at once would fail again (asyncio's choice).
RESOURCE_ERRORS = frozenset({errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM})
PAUSE_AFTER_RESOURCE_ERROR_S = 1.0


class Loop(uvloop.Loop):
    """uvloop, whose TCP servers without TLS accept every waiting connection per turn."""

    async def create_server(self, protocol_factory: Callable[[], asyncio.Protocol],
                            host: Any = None, port: Any = None, *,
                            sock: socket.socket | None = None, backlog: int = 100,
                            ssl: Any = None, **kwargs: Any) -> asyncio.AbstractServer:
        if ssl is not None or kwargs:
            return await super().create_server(protocol_factory, host, port, sock=sock,
                                               backlog=backlog, ssl=ssl, **kwargs)
        if sock is not None:  # handed in: its owner closes it
            return GreedyServer(self, protocol_factory, [sock], backlog, owned=False)
        return GreedyServer(self, protocol_factory, await self._bind(host, port), backlog,
                            owned=True)

    async def _bind(self, host: Any, port: Any) -> list[socket.socket]:
        """One socket per address of `host` (all interfaces when empty), as asyncio binds."""
        found = await self.getaddrinfo(host or None, port, family=socket.AF_UNSPEC,
                                       type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
        sockets: list[socket.socket] = []
        try:
            for family, kind, proto, _, address in dict.fromkeys(found):
                sock = socket.socket(family, kind, proto)
                sockets.append(sock)
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, True)
                if family == socket.AF_INET6:
                    sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, True)
                try:
                    sock.bind(address)
                except OSError as err:
                    raise OSError(err.errno, f"error while attempting to bind on address "
                                             f"{address!r}: {err.strerror}") from None
        except BaseException:
            for sock in sockets:
                sock.close()
            raise
        return sockets


def new_event_loop() -> Loop:
    """The loop factory uvicorn takes as `loop="app.eventloop:new_event_loop"`."""
    return Loop()


class GreedyServer(asyncio.AbstractServer):
    """Listening sockets read by the loop: each wake-up accepts up to `backlog` connections
    and hands each to the loop as an accepted socket (uvloop's transport, the same protocol)."""

    def __init__(self, loop: Loop, protocol_factory: Callable[[], asyncio.Protocol],
                 sockets: list[socket.socket], backlog: int, owned: bool):
        self._loop = loop
        self._protocol_factory = protocol_factory
        self._sockets = tuple(sockets)
        self._backlog = max(1, backlog)
        self._owned = owned
        self._closed = loop.create_future()
        self._connecting: set[asyncio.Task] = set()
        for sock in self._sockets:
            sock.setblocking(False)
            sock.listen(backlog)
            loop.add_reader(sock.fileno(), self._accept, sock)

    def _accept(self, listener: socket.socket) -> None:
        for _ in range(self._backlog):
            try:
                conn, _ = listener.accept()
            except (BlockingIOError, InterruptedError, ConnectionAbortedError):
                return  # nothing left, or a client gave up before we got to it
            except OSError as err:
                self._accept_failed(listener, err)
                return
            conn.setblocking(False)
            task = self._loop.create_task(self._connect(conn))
            self._connecting.add(task)
            task.add_done_callback(self._connecting.discard)

    async def _connect(self, conn: socket.socket) -> None:
        try:
            await self._loop.connect_accepted_socket(self._protocol_factory, conn)
        except Exception:  # one connection's failure is not the server's
            log.exception("could not set up an accepted connection")
            conn.close()

    def _accept_failed(self, listener: socket.socket, err: OSError) -> None:
        if err.errno not in RESOURCE_ERRORS:
            log.error("accepting a connection failed: %s", err)
            return
        log.error("accepting a connection failed (%s); accepting again in %.0f s",
                  err, PAUSE_AFTER_RESOURCE_ERROR_S)
        self._loop.remove_reader(listener.fileno())
        self._loop.call_later(PAUSE_AFTER_RESOURCE_ERROR_S, self._resume, listener)

    def _resume(self, listener: socket.socket) -> None:
        if self.is_serving():
            self._loop.add_reader(listener.fileno(), self._accept, listener)

    # asyncio.AbstractServer
    def close(self) -> None:
        """Stop accepting; close the sockets this server bound (uvicorn closes those it
        handed in). Open connections are left to their owner: uvicorn drains them."""
        if not self.is_serving():
            return
        self._closed.set_result(None)
        for sock in self._sockets:
            self._loop.remove_reader(sock.fileno())
            if self._owned:
                sock.close()

    async def wait_closed(self) -> None:
        if self._connecting:  # connections being set up when it closed
            await asyncio.gather(*self._connecting, return_exceptions=True)

    def get_loop(self) -> asyncio.AbstractEventLoop:
        return self._loop

    def is_serving(self) -> bool:
        return not self._closed.done()

    @property
    def sockets(self) -> tuple[socket.socket, ...]:
        return self._sockets

    async def start_serving(self) -> None:
        """Serving starts when the server is made, as `create_server`'s default."""

    async def serve_forever(self) -> None:
        """Until closed (uvicorn runs the loop itself and never calls this)."""
        await asyncio.shield(self._closed)
