"""The buffered access log (app.http_api.access_log): uvicorn's line, written in batches,
none lost."""

from __future__ import annotations

import asyncio
import io
import json
import re

from app.http_api.access_log import AccessLog

SCOPE = {"type": "http", "method": "POST", "path": "/v1/models/mnist:predict",
         "query_string": b"x=1", "client": ("10.0.0.7", 51234), "http_version": "1.1",
         "root_path": ""}


def test_the_line_is_uvicorns_with_the_request_id_and_waits_for_the_flush():
    stream = io.StringIO()
    log = AccessLog(json_lines=False, stream=stream, flush_s=0.05)

    async def scenario() -> tuple[str, str]:
        log.add(SCOPE, 200, "req-1")
        log.add({**SCOPE, "query_string": b""}, 503, "req-2")
        before = stream.getvalue()
        await asyncio.sleep(0.15)
        return before, stream.getvalue()

    before, after = asyncio.run(scenario())
    assert before == ""  # buffered, not one write per response
    first, second = after.splitlines()
    assert re.fullmatch(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3} INFO uvicorn\.access \[req-1\]: "
                        r'10\.0\.0\.7:51234 - "POST /v1/models/mnist%3Apredict\?x=1 HTTP/1\.1" '
                        r"200", first), first
    assert second.endswith('[req-2]: 10.0.0.7:51234 - "POST /v1/models/mnist%3Apredict '
                           'HTTP/1.1" 503')


def test_json_lines_carry_the_json_formatters_fields_and_a_full_buffer_is_written_at_once():
    stream = io.StringIO()
    log = AccessLog(json_lines=True, stream=stream, flush_s=60, max_lines=3)

    async def scenario() -> None:
        for i in range(3):
            log.add(SCOPE, 200, f"id-{i}")

    asyncio.run(scenario())
    lines = [json.loads(line) for line in stream.getvalue().splitlines()]
    assert [line["request_id"] for line in lines] == ["id-0", "id-1", "id-2"]
    assert lines[0]["logger"] == "uvicorn.access" and lines[0]["level"] == "INFO"
    assert lines[0]["message"].endswith('"POST /v1/models/mnist%3Apredict?x=1 HTTP/1.1" 200')
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", lines[0]["time"])


def test_what_is_buffered_is_written_by_an_explicit_flush():
    stream = io.StringIO()
    log = AccessLog(json_lines=False, stream=stream, flush_s=60)

    async def scenario() -> None:
        log.add(SCOPE, 200, "last")

    asyncio.run(scenario())
    assert stream.getvalue() == ""
    log.flush()  # the lifespan's shutdown (and atexit) do this
    assert "[last]" in stream.getvalue()


def test_a_mounted_static_file_is_logged_once_not_under_its_doubled_prefix():
    # A Starlette mount adds its prefix to root_path and keeps the whole path in `path`.
    stream = io.StringIO()
    log = AccessLog(json_lines=False, stream=stream, flush_s=60)

    async def scenario() -> None:
        log.add({**SCOPE, "method": "GET", "path": "/static/ui/ui.css", "query_string": b"",
                 "root_path": "/static/ui"}, 200, "req-3")
        log.flush()

    asyncio.run(scenario())
    assert stream.getvalue().rstrip().endswith('"GET /static/ui/ui.css HTTP/1.1" 200')
