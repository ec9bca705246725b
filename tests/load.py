"""A small keep-alive HTTP/1.1 load generator for tests that measure throughput.

httpx spends more CPU per request than the server on this 2-core machine (about 150 req/s
with 64 connections against wrk's 2,300 on the same server), so a throughput ratio measured
with it would measure the client. This one writes raw requests on N asyncio connections.
"""

from __future__ import annotations

import asyncio
import itertools
import time
from dataclasses import dataclass
from urllib.parse import urlsplit


@dataclass
class Answer:
    status: int
    headers: dict[str, str]


async def _connection(host: str, port: int, requests: list[bytes], next_index, answers: list):
    reader, writer = await asyncio.open_connection(host, port)
    try:
        while (index := next(next_index)) < len(requests):
            writer.write(requests[index])
            head = await reader.readuntil(b"\r\n\r\n")
            lines = head.decode("latin-1").split("\r\n")
            headers = {}
            for line in lines[1:]:
                if ":" in line:
                    name, _, value = line.partition(":")
                    headers[name.strip().lower()] = value.strip()
            await reader.readexactly(int(headers.get("content-length", 0)))
            answers[index] = Answer(int(lines[0].split()[1]), headers)
    finally:
        writer.close()


async def run(url: str, path: str, body: bytes, count: int, clients: int,
              headers: callable = lambda i: {}) -> tuple[list[Answer], float]:
    """POST `body` to `path` `count` times over `clients` connections; (answers, seconds)."""
    parts = urlsplit(url)
    requests = []
    for i in range(count):
        extra = "".join(f"{k}: {v}\r\n" for k, v in headers(i).items())
        requests.append(f"POST {path} HTTP/1.1\r\nHost: {parts.netloc}\r\n"
                        f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n"
                        f"{extra}\r\n".encode() + body)
    answers: list = [None] * count
    counter = itertools.count()
    started = time.perf_counter()
    await asyncio.gather(*(_connection(parts.hostname, parts.port, requests, counter, answers)
                           for _ in range(clients)))
    return answers, time.perf_counter() - started
