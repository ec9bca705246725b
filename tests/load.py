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
    error: bytes = b""  # the body of a 4xx or 5xx, what it says went wrong


async def exchange(reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                   request: bytes) -> Answer:
    """One request on a keep-alive connection; the body is read (by Content-Length) and
    dropped, unless it answers an error."""
    writer.write(request)
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    headers = {}
    for line in lines[1:]:
        if ":" in line:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
    body = await reader.readexactly(int(headers.get("content-length", 0)))
    status = int(lines[0].split()[1])
    return Answer(status, headers, body if status >= 400 else b"")


def post_request(netloc: str, path: str, body: bytes, content_type: str = "application/json",
                 headers: dict[str, str] | None = None) -> bytes:
    """The bytes of one keep-alive POST."""
    extra = "".join(f"{k}: {v}\r\n" for k, v in (headers or {}).items())
    return (f"POST {path} HTTP/1.1\r\nHost: {netloc}\r\nContent-Type: {content_type}\r\n"
            f"Content-Length: {len(body)}\r\n{extra}\r\n").encode() + body


async def _connection(host: str, port: int, requests: list[bytes], next_index, answers: list):
    reader, writer = await asyncio.open_connection(host, port)
    try:
        while (index := next(next_index)) < len(requests):
            answers[index] = await exchange(reader, writer, requests[index])
    finally:
        writer.close()


async def run(url: str, path: str, body: bytes, count: int, clients: int,
              headers: callable = lambda i: {}) -> tuple[list[Answer], float]:
    """POST `body` to `path` `count` times over `clients` connections; (answers, seconds)."""
    parts = urlsplit(url)
    requests = [post_request(parts.netloc, path, body, headers=headers(i)) for i in range(count)]
    answers: list = [None] * count
    counter = itertools.count()
    started = time.perf_counter()
    await asyncio.gather(*(_connection(parts.hostname, parts.port, requests, counter, answers)
                           for _ in range(clients)))
    return answers, time.perf_counter() - started
