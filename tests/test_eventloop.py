"""app.eventloop: uvloop whose TCP servers accept every waiting connection per turn.

Real sockets on loopback, the real loop; a busy server is imitated by turns that block for a
few milliseconds (as writing a batch's answers does), releasing the GIL like TensorFlow."""

from __future__ import annotations

import asyncio
import socket
import subprocess
import sys
import textwrap
import threading
import time

import pytest

from app.eventloop import GreedyServer, new_event_loop

BUSY_TURN_S = 0.005
BURST = 100


class Recorder(asyncio.Protocol):
    """Answers b"hi <its peer's port>" on connecting, echoes what it gets."""

    made: list[float] = []

    def connection_made(self, transport: asyncio.Transport) -> None:
        self.made.append(time.perf_counter())
        self.transport = transport
        transport.write(b"hi %d\n" % transport.get_extra_info("peername")[1])

    def data_received(self, data: bytes) -> None:
        self.transport.write(data)


def run(coroutine):
    loop = new_event_loop()
    try:
        return loop.run_until_complete(coroutine)
    finally:
        loop.close()


def connect_burst(port: int, count: int) -> list[socket.socket]:
    clients = []
    for _ in range(count):
        client = socket.socket()
        client.setblocking(False)
        client.connect_ex(("127.0.0.1", port))  # EINPROGRESS: the handshake goes on
        clients.append(client)
    return clients


def test_a_busy_loop_accepts_a_burst_of_connections_in_a_turn_or_two():
    """uvloop alone took ~one connection per turn: 100 connections over ~0.5 s here."""
    made: list[float] = []
    connected: list[float] = []  # how long the clients took to start their handshakes

    class Timed(Recorder):
        pass

    Timed.made = made

    async def scenario() -> None:
        loop = asyncio.get_running_loop()
        server = await loop.create_server(Timed, "127.0.0.1", 0, backlog=2048)
        assert isinstance(server, GreedyServer)
        port = server.sockets[0].getsockname()[1]
        busy = True

        def turn() -> None:
            time.sleep(BUSY_TURN_S)  # a turn's work, GIL released
            if busy:
                loop.call_soon(turn)

        loop.call_soon(turn)
        clients: list[socket.socket] = []

        def connect() -> None:
            clients.extend(connect_burst(port, BURST))
            connected.append(time.perf_counter() - started)

        connecting = threading.Thread(target=connect)
        started = time.perf_counter()
        connecting.start()
        while len(made) < BURST and time.perf_counter() - started < 10:
            await asyncio.sleep(0)
        busy = False
        connecting.join()
        server.close()
        await server.wait_closed()
        for client in clients:
            client.close()

    run(scenario())
    assert len(made) == BURST
    spread = made[-1] - made[0]
    assert spread < connected[0] + 10 * BUSY_TURN_S, f"accepted over {spread * 1000:.0f} ms"


def test_connections_carry_data_both_ways_and_know_their_peer():
    Recorder.made = []

    async def scenario() -> tuple[bytes, bytes, int]:
        loop = asyncio.get_running_loop()
        server = await loop.create_server(Recorder, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        greeting = await reader.readline()
        writer.write(b"ping\n")
        echoed = await reader.readline()
        own_port = writer.get_extra_info("sockname")[1]
        writer.close()
        server.close()
        await server.wait_closed()
        return greeting, echoed, own_port

    greeting, echoed, own_port = run(scenario())
    assert greeting == b"hi %d\n" % own_port  # the server saw this client's address
    assert echoed == b"ping\n"


def test_a_taken_port_is_refused_with_its_address():
    taken = socket.socket()
    taken.bind(("127.0.0.1", 0))
    taken.listen()
    port = taken.getsockname()[1]

    async def scenario() -> None:
        await asyncio.get_running_loop().create_server(Recorder, "127.0.0.1", port)

    try:
        with pytest.raises(OSError, match=rf"bind on address \('127.0.0.1', {port}\)"):
            run(scenario())
    finally:
        taken.close()


def test_closing_stops_accepting_and_closes_only_the_sockets_it_bound():
    handed_in = socket.socket()
    handed_in.bind(("127.0.0.1", 0))

    async def scenario() -> tuple[bool, bool, int, int]:
        loop = asyncio.get_running_loop()
        bound = await loop.create_server(Recorder, "127.0.0.1", 0)
        given = await loop.create_server(Recorder, sock=handed_in)
        bound_port = bound.sockets[0].getsockname()[1]
        bound.close()
        given.close()
        await bound.wait_closed()
        await given.wait_closed()
        return (bound.is_serving(), given.is_serving(), bound.sockets[0].fileno(),
                bound_port)

    bound_serving, given_serving, bound_fd, bound_port = run(scenario())
    assert not bound_serving and not given_serving
    assert bound_fd == -1  # closed: it was the server's
    assert handed_in.fileno() != -1  # its owner closes it (uvicorn does)
    handed_in.close()
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.1", bound_port), timeout=2).close()


def test_tls_servers_are_left_to_uvloop():
    import ssl

    async def scenario():
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        server = await asyncio.get_running_loop().create_server(
            Recorder, "127.0.0.1", 0, ssl=context)
        server.close()
        return server

    assert not isinstance(run(scenario()), GreedyServer)


OUT_OF_DESCRIPTORS = textwrap.dedent("""
    import asyncio, os, resource, sys
    from app.eventloop import new_event_loop

    class Hello(asyncio.Protocol):
        def connection_made(self, transport):
            transport.write(b"hi\\n")

    async def main():
        loop = asyncio.get_running_loop()
        server = await loop.create_server(Hello, "127.0.0.1", 0)
        print(server.sockets[0].getsockname()[1], flush=True)
        # room for a few connections only: the rest meet EMFILE
        open_now = len(os.listdir("/proc/self/fd"))
        resource.setrlimit(resource.RLIMIT_NOFILE, (open_now + 3, open_now + 3))
        await asyncio.sleep(30)

    loop = new_event_loop()
    loop.run_until_complete(main())
""")


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
def test_running_out_of_descriptors_pauses_accepting_and_loses_no_connection():
    server = subprocess.Popen([sys.executable, "-c", OUT_OF_DESCRIPTORS],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        port = int(server.stdout.readline())
        clients = [socket.create_connection(("127.0.0.1", port), timeout=5) for _ in range(8)]
        greeted = []
        for client in clients:
            client.settimeout(0.5)
            try:
                greeted.append(client.recv(16) == b"hi\n")
            except TimeoutError:
                greeted.append(False)
        assert 0 < sum(greeted) < len(clients)  # some got in, the rest wait in the queue
        for client, got_in in zip(clients, greeted, strict=True):
            if got_in:
                client.close()  # frees descriptors: the server accepts again within ~1 s
        waiting = [c for c, got_in in zip(clients, greeted, strict=True) if not got_in]
        for client in waiting[:2]:
            client.settimeout(5)
            assert client.recv(16) == b"hi\n"
        for client in waiting:
            client.close()
        assert server.poll() is None  # still serving
    finally:
        server.kill()
        _, errors = server.communicate()
    assert "accepting again in 1 s" in errors
