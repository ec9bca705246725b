"""Soak: a long run of mixed open-loop traffic while model versions rotate; nothing may drift.

    python -m bench.soak [--models-dir models] [--minutes 20] [--rotate-every-s 120]
                         [--load 0.7] [--out bench/results] [--docs docs]

The server runs with its default settings but one on a scratch repository beside
`--models-dir` (symlinks, and a real copy of the rotated model): TFSERVE_WARMUP_FULL_BATCH=true,
so that each version takes at load the memory its largest call holds (TensorFlow keeps it)
and the memory check compares steady states, not before and after the first burst.
Traffic, on keep-alive connections: mnist JSON, imdb_sentiment raw text, inception_v3 photo
uploads and 1% bad inputs (broken JSON, a wrong shape, a file that is not an image, an empty
text list), arriving on a fixed
schedule at `--load` x the capacity measured first with the same mix (open loop: arrivals do
not wait for answers). Every `--rotate-every-s` a new version of `--rotate-model` is copied in
(hidden name, then renamed) and the oldest removed.

Pass: 0 unexpected answers (a good request gets 200, a bad one 400, 415 or 422, no transport
error); after warm-up (two rotation periods: the first unload) the server's resident memory
drifts at most 5% from the first window to the last (medians); non-socket file descriptors
and threads stay flat (the last window's median no higher than the first window's highest: a
thread that comes and goes is not a leak); the p99 of the last window is at most 1.2x that
of the first. Writes `soak.json` (every sample) and `soak.md`, and with `--docs` the plot
`soak.png` (RSS, p99 and req/s over time) into that folder. Exits 1 when a check fails.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import shutil
import statistics
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import asdict, dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

from bench.processes import descendants
from tests.load import exchange, post_request
from tests.server import running_server

SAMPLES = Path(__file__).resolve().parents[2] / "shared" / "samples"
GOOD_STATUSES = {200}
BAD_STATUSES = {400, 415, 422}
MEMORY_DRIFT = 0.05
UNEXPECTED_SHOWN = 5  # unexpected answers quoted in the report
P99_GROWTH = 1.2


@dataclass(frozen=True)
class Kind:
    """One kind of request in the mix: its bytes and the answers it may get."""

    name: str
    weight: float
    request: bytes
    expected: frozenset[int]


@dataclass
class Answered:
    kind: str
    started_s: float  # since the soak began
    seconds: float
    status: int | str  # HTTP status or the transport error's name
    expected: bool
    error: str = ""  # an unexpected error answer's body (its start)


@dataclass
class Sample:
    at_s: float
    rss_mib: float
    threads: int
    socket_fds: int
    other_fds: int


@dataclass
class Window:
    """One plot/report bucket."""

    start_s: float
    answered_per_s: float
    p99_ms: float | None
    rss_mib: float


@dataclass
class Report:
    minutes: float
    capacity_rps: float
    offered_rps: float
    requests: int
    by_kind: dict[str, dict[str, int]]
    unexpected: dict[str, int]
    rotations: list[float]
    rss_first_mib: float
    rss_last_mib: float
    memory_drift: float
    other_fds_first: int  # the first window's highest
    other_fds_last: int  # the last window's median
    threads_first: int
    threads_last: int
    p99_first_ms: float
    p99_last_ms: float
    # the first few unexpected answers: when, and what they said
    unexpected_errors: list[str] = field(default_factory=list)
    windows: list[Window] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)


# --- the traffic ---------------------------------------------------------------------------


def _multipart(name: str, data: bytes, content: str) -> tuple[bytes, str]:
    boundary = uuid.uuid4().hex
    body = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; "
            f"filename=\"{name}\"\r\nContent-Type: {content}\r\n\r\n").encode() + data + \
        f"\r\n--{boundary}--\r\n".encode()
    return body, f"multipart/form-data; boundary={boundary}"


def request_mix(netloc: str, samples: Path = SAMPLES) -> list[Kind]:
    """Good requests of three models and four kinds of bad input, 1% of the mix together."""
    photo = (samples / "images" / "koala.jpg").read_bytes()
    review = next(iter(sorted((samples / "reviews").glob("pos_*.txt")))).read_text()
    pixels = json.dumps({"instances": [[0.5] * 784]}).encode()
    upload, upload_type = _multipart("koala.jpg", photo, "image/jpeg")
    not_image, not_image_type = _multipart("notes.jpg", b"not a picture" * 50, "image/jpeg")
    good, bad = frozenset(GOOD_STATUSES), frozenset(BAD_STATUSES)

    def post(path: str, body: bytes, content_type: str = "application/json") -> bytes:
        return post_request(netloc, path, body, content_type)

    return [
        Kind("mnist", 0.74, post("/models/mnist/serving_default/predict", pixels), good),
        Kind("imdb_text", 0.15, post("/models/imdb_sentiment/predict/text",
                                     json.dumps({"texts": [review]}).encode()), good),
        Kind("inception_upload", 0.10, post("/models/inception_v3/predict/image", upload,
                                            upload_type), good),
        Kind("bad_json", 0.0025, post("/models/mnist/serving_default/predict",
                                      b'{"instances": [[0.5, '), bad),
        Kind("bad_shape", 0.0025, post("/models/mnist/serving_default/predict",
                                       b'{"instances": [[0.5, 0.5]]}'), bad),
        Kind("bad_image", 0.0025, post("/models/inception_v3/predict/image", not_image,
                                       not_image_type), bad),
        Kind("bad_text", 0.0025, post("/models/imdb_sentiment/predict/text",
                                      b'{"texts": []}'), bad),
    ]


class Connections:
    """Idle keep-alive connections, opened on demand: an open loop never waits for one.

    A connection idle for longer than `max_idle_s` is closed rather than reused: the server
    may be closing it at that moment (uvicorn's keep-alive timeout is 5 s), and a request
    written into that race is lost by the client, not the server, as browsers know.
    """

    def __init__(self, host: str, port: int, max_idle_s: float = 2.0) -> None:
        self.host, self.port, self.max_idle_s = host, port, max_idle_s
        self.idle: list[tuple[float, asyncio.StreamReader, asyncio.StreamWriter]] = []

    async def _take(self) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        while self.idle:
            since, reader, writer = self.idle.pop()
            if time.monotonic() - since < self.max_idle_s and not reader.at_eof():
                return reader, writer
            writer.close()
        return await asyncio.open_connection(self.host, self.port)

    async def send(self, request: bytes) -> tuple[int | str, bytes]:
        """The answer's status (or the transport error's name), and an error answer's body."""
        reader, writer = await self._take()
        try:
            answer = await exchange(reader, writer, request)
        except (OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError) as err:
            writer.close()
            return type(err).__name__, b""
        if answer.headers.get("connection", "").lower() == "close":
            writer.close()
        else:
            self.idle.append((time.monotonic(), reader, writer))
        return answer.status, answer.error

    def close(self) -> None:
        for _, _, writer in self.idle:
            writer.close()
        self.idle.clear()


async def _one(connections: Connections, kind: Kind, began: float,
               answers: list[Answered]) -> None:
    started = time.perf_counter()
    status, error = await connections.send(kind.request)
    expected = status in kind.expected
    answers.append(Answered(kind.name, started - began, time.perf_counter() - started, status,
                            expected, "" if expected else error[:200].decode("utf-8", "replace")))


async def closed_loop(url: str, mix: list[Kind], clients: int, seconds: float,
                      seed: int = 1) -> float:
    """Answers 200 per second with `clients` back-to-back senders of the mix."""
    parts = urlsplit(url)
    connections = Connections(parts.hostname, parts.port)
    chooser = random.Random(seed)
    answers: list[Answered] = []
    began = time.perf_counter()

    async def client() -> None:
        while time.perf_counter() - began < seconds:
            kind = chooser.choices(mix, [k.weight for k in mix])[0]
            await _one(connections, kind, began, answers)

    await asyncio.gather(*(client() for _ in range(clients)))
    connections.close()
    return sum(a.status == 200 for a in answers) / (time.perf_counter() - began)


async def open_loop(url: str, mix: list[Kind], rate: float, seconds: float, pid: int,
                    rotate: Rotation, seed: int = 2) -> tuple[list[Answered], list[Sample]]:
    """Requests on a fixed schedule at `rate`/s, the server sampled every second, versions
    rotated on their own schedule."""
    parts = urlsplit(url)
    connections = Connections(parts.hostname, parts.port)
    chooser = random.Random(seed)
    answers: list[Answered] = []
    samples: list[Sample] = []
    began = time.perf_counter()
    pending: set[asyncio.Task] = set()

    async def sample() -> None:
        while (now := time.perf_counter() - began) < seconds:
            samples.append(process_sample(pid, now))
            if rotate.due(now):
                await asyncio.to_thread(rotate.step, now)
            await asyncio.sleep(1.0)

    sampler = asyncio.create_task(sample())
    for i in range(int(rate * seconds)):
        await asyncio.sleep(max(0.0, began + i / rate - time.perf_counter()))
        kind = chooser.choices(mix, [k.weight for k in mix])[0]
        task = asyncio.create_task(_one(connections, kind, began, answers))
        pending.add(task)
        task.add_done_callback(pending.discard)
    await asyncio.gather(sampler, *pending)
    connections.close()
    return answers, samples


# --- the server process ---------------------------------------------------------------------


def process_sample(pid: int, at_s: float) -> Sample:
    """Memory, threads and descriptors of the server and its children (workers)."""
    rss = 0.0
    threads = sockets = others = 0
    for process in [pid, *descendants(pid)]:
        with suppress(OSError):
            for line in Path(f"/proc/{process}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    rss += int(line.split()[1]) / 1024
                elif line.startswith("Threads:"):
                    threads += int(line.split()[1])
            for fd in Path(f"/proc/{process}/fd").iterdir():
                with suppress(OSError):
                    if os.readlink(fd).startswith("socket:"):
                        sockets += 1
                    else:
                        others += 1
    return Sample(round(at_s, 1), round(rss, 1), threads, sockets, others)


class Rotation:
    """Copies a new version of one model in (hidden name, then renamed), removes the oldest."""

    def __init__(self, model_dir: Path, every_s: float) -> None:
        self.model_dir, self.every_s = model_dir, every_s
        self.times: list[float] = []

    def versions(self) -> list[int]:
        return sorted(int(p.name) for p in self.model_dir.iterdir() if p.name.isdigit())

    def due(self, now: float) -> bool:
        return now >= self.every_s * (len(self.times) + 1)

    def step(self, now: float) -> None:
        versions = self.versions()
        newest = versions[-1] + 1
        hidden = self.model_dir / f".incoming-{newest}"
        shutil.copytree(self.model_dir / str(versions[-1]), hidden)
        hidden.rename(self.model_dir / str(newest))
        if len(versions) > 1:
            shutil.rmtree(self.model_dir / str(versions[0]))
        self.times.append(round(now, 1))


@contextmanager
def scratch_repository(models_dir: Path, rotated: str) -> Iterator[Path]:
    """The models as symlinks, the rotated one as a real copy of its newest version."""
    with tempfile.TemporaryDirectory(prefix="tfserve-soak-") as scratch:
        root = Path(scratch)
        for model in sorted(p for p in models_dir.iterdir() if p.is_dir()):
            if model.name == rotated:
                newest = max((v for v in model.iterdir() if v.name.isdigit()),
                             key=lambda v: int(v.name))
                shutil.copytree(newest, root / model.name / "1")
            else:
                (root / model.name).symlink_to(model.resolve())
        yield root


# --- the verdict -----------------------------------------------------------------------------


def p99_ms(answers: list[Answered]) -> float | None:
    good = sorted(a.seconds for a in answers if a.status == 200)
    return round(good[min(len(good) - 1, int(0.99 * len(good)))] * 1000, 1) if good else None


def windows(answers: list[Answered], samples: list[Sample], seconds: float,
            bucket_s: float) -> list[Window]:
    found = []
    start = 0.0
    while start < seconds:
        inside = [a for a in answers if start <= a.started_s < start + bucket_s]
        rss = [s.rss_mib for s in samples if start <= s.at_s < start + bucket_s]
        found.append(Window(start, round(len(inside) / bucket_s, 1), p99_ms(inside),
                            max(rss, default=0.0)))
        start += bucket_s
    return found


def judge(answers: list[Answered], samples: list[Sample], seconds: float, warmup_s: float,
          window_s: float, capacity: float, rate: float, rotations: list[float],
          bucket_s: float) -> Report:
    first = (warmup_s, warmup_s + window_s)
    last = (seconds - window_s, seconds)

    def inside(span, items, at):
        return [i for i in items if span[0] <= at(i) < span[1]]

    first_samples = inside(first, samples, lambda s: s.at_s)
    last_samples = inside(last, samples, lambda s: s.at_s)
    rss_first = statistics.median(s.rss_mib for s in first_samples)
    rss_last = statistics.median(s.rss_mib for s in last_samples)
    by_kind: dict[str, dict[str, int]] = {}
    unexpected: dict[str, int] = {}
    for answer in answers:
        counts = by_kind.setdefault(answer.kind, {})
        counts[str(answer.status)] = counts.get(str(answer.status), 0) + 1
        if not answer.expected:
            key = f"{answer.kind}:{answer.status}"
            unexpected[key] = unexpected.get(key, 0) + 1
    report = Report(
        minutes=round(seconds / 60, 1), capacity_rps=round(capacity, 1),
        offered_rps=round(rate, 1), requests=len(answers), by_kind=by_kind,
        unexpected=unexpected, unexpected_errors=[
            f"{a.kind} {a.status} at {a.started_s:.1f} s: {a.error}"
            for a in answers if not a.expected][:UNEXPECTED_SHOWN],
        rotations=rotations, rss_first_mib=round(rss_first, 1),
        rss_last_mib=round(rss_last, 1), memory_drift=round(rss_last / rss_first - 1, 4),
        other_fds_first=max(s.other_fds for s in first_samples),
        other_fds_last=round(statistics.median(s.other_fds for s in last_samples)),
        threads_first=max(s.threads for s in first_samples),
        threads_last=round(statistics.median(s.threads for s in last_samples)),
        p99_first_ms=p99_ms(inside(first, answers, lambda a: a.started_s)) or 0.0,
        p99_last_ms=p99_ms(inside(last, answers, lambda a: a.started_s)) or 0.0,
        windows=windows(answers, samples, seconds, bucket_s))
    report.problems = problems(report)
    return report


def problems(report: Report) -> list[str]:
    found = []
    if report.unexpected:
        found.append(f"unexpected answers: {report.unexpected}")
    if abs(report.memory_drift) > MEMORY_DRIFT:
        found.append(f"resident memory moved {report.memory_drift:+.1%} "
                     f"({report.rss_first_mib} -> {report.rss_last_mib} MiB)")
    if report.other_fds_last > report.other_fds_first:
        found.append(f"file descriptors grew: {report.other_fds_first} -> "
                     f"{report.other_fds_last}")
    if report.threads_last > report.threads_first:
        found.append(f"threads grew: {report.threads_first} -> {report.threads_last}")
    if report.p99_last_ms > P99_GROWTH * report.p99_first_ms:
        found.append(f"p99 grew from {report.p99_first_ms} to {report.p99_last_ms} ms")
    return found


def run(models_dir: Path, minutes: float = 20, rotate_every_s: float = 120,
        load: float = 0.7, rotate_model: str = "mnist", window_s: float = 300,
        bucket_s: float = 10, probe_s: float = 20, samples: Path = SAMPLES,
        **settings: object) -> tuple[Report, list[Answered], list[Sample]]:
    """The whole soak against a fresh server. Warm-up: two rotation periods, as the first
    version is unloaded at the second rotation (its threads and memory settle then)."""
    seconds = minutes * 60
    settings = {"warmup_full_batch": True, **settings}
    with scratch_repository(models_dir, rotate_model) as repository, \
            running_server(repository, **settings) as url:
        mix = request_mix(urlsplit(url).netloc, samples)
        asyncio.run(closed_loop(url, mix, 8, min(5.0, probe_s)))  # warm the connections
        capacity = asyncio.run(closed_loop(url, mix, 16, probe_s))
        rotation = Rotation(repository / rotate_model, rotate_every_s)
        answers, taken = asyncio.run(open_loop(url, mix, load * capacity, seconds, url.pid,
                                               rotation))
    warmup_s = min(2 * rotate_every_s, seconds / 3)
    report = judge(answers, taken, seconds, warmup_s=warmup_s,
                   window_s=min(window_s, (seconds - warmup_s) / 2), capacity=capacity,
                   rate=load * capacity, rotations=rotation.times, bucket_s=bucket_s)
    return report, answers, taken


# --- the report ------------------------------------------------------------------------------


def markdown(report: Report) -> str:
    figures = {k: v for k, v in asdict(report).items() if k not in ("windows", "problems")}
    lines = ["| figure | value |", "|---|---|"] + [f"| {k} | {v} |" for k, v in figures.items()]
    verdict = "all checks passed" if not report.problems else "; ".join(report.problems)
    return "\n".join(lines) + f"\n\n**{verdict}**\n"


def report_from(saved: dict) -> Report:
    """A Report read back from soak.json."""
    return Report(**{**saved, "windows": [Window(**w) for w in saved["windows"]]})


def plot(report: Report, path: Path) -> None:
    import matplotlib  # noqa: PLC0415 (only for the plot)

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt  # noqa: PLC0415

    minutes = [w.start_s / 60 for w in report.windows]
    figure, axes = plt.subplots(3, 1, figsize=(6.4, 5.2), sharex=True)
    series = [("RSS (MiB)", [w.rss_mib for w in report.windows]),
              ("p99 (ms)", [w.p99_ms for w in report.windows]),
              ("answers/s", [w.answered_per_s for w in report.windows])]
    for axis, (label, values) in zip(axes, series, strict=True):
        axis.plot(minutes, values, linewidth=1)
        axis.set_ylabel(label)
        axis.grid(alpha=0.3)
        for rotated in report.rotations:
            axis.axvline(rotated / 60, color="grey", linewidth=0.6, linestyle=":")
    for axis, (_, values) in zip(axes, series, strict=True):
        axis.set_ylim(0, 1.2 * max((v for v in values if v is not None), default=1))
    axes[-1].set_xlabel("minutes (dotted: a new version copied in, the oldest removed)")
    figure.suptitle(f"soak: {report.offered_rps} req/s offered "
                    f"({report.requests} requests), mixed traffic", fontsize=10)
    figure.tight_layout()
    figure.savefig(path, dpi=80)
    plt.close(figure)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models-dir", type=Path, default=Path("models"))
    parser.add_argument("--minutes", type=float, default=20.0)
    parser.add_argument("--rotate-every-s", type=float, default=120.0)
    parser.add_argument("--rotate-model", default="mnist")
    parser.add_argument("--load", type=float, default=0.7, help="offered load / capacity")
    parser.add_argument("--window-s", type=float, default=300.0,
                        help="the first and last windows compared")
    parser.add_argument("--out", type=Path, default=Path("bench/results"))
    parser.add_argument("--docs", type=Path, help="write the plot here (soak.png)")
    parser.add_argument("--replot", type=Path, help="only draw the plot of this soak.json")
    args = parser.parse_args()
    if args.replot:
        plot(report_from(json.loads(args.replot.read_text())["report"]),
             (args.docs or args.out) / "soak.png")
        return 0
    report, answers, samples = run(args.models_dir.resolve(), args.minutes,
                                   args.rotate_every_s, args.load, args.rotate_model,
                                   args.window_s)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "soak.json").write_text(json.dumps(
        {"report": asdict(report), "samples": [asdict(s) for s in samples]}, indent=1))
    (args.out / "soak.md").write_text(markdown(report))
    if args.docs:
        plot(report, args.docs / "soak.png")
    print(markdown(report))
    return 1 if report.problems else 0


if __name__ == "__main__":
    raise SystemExit(main())
