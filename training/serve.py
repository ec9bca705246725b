"""`python -m training.serve`: serve at once, and train the missing models beside the server.

What `make serve` runs. A new user's first answer should not wait for five models: the
server (`python -m app`, a child process) starts on the repository as it is, while the
models it lacks are trained here, fastest first, each exported atomically; the server's
repository poll loads each one as it appears. The terminal says which models are served,
which one is training (Keras' progress bar, an epoch at a time) and which wait, and where to
try them. The trainer's state also goes to `<models>/.training.json` (app.models.trainer_status),
which `GET /models` and the model pages show.

Ctrl-C or SIGTERM stops both. With nothing missing it is the server alone.
"""

from __future__ import annotations

import _thread
import argparse
import json
import logging
import os
import shlex
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import keras

from app.models.trainer_status import STALE_S, STATUS_FILE
from app.settings import Settings
from training import export
from training.cli import MODELS, PROFILES, train_one
from training.data import DataUnavailable
from training.fitting import watched_by

# Fastest first (quick profile, this project's 2-core machine: docs/MODELS.md), so the first
# answer comes from mnist within a minute; cifar10_transfer starts from cifar10.
TRAIN_ORDER = ("mnist", "imdb_sentiment", "inception_v3", "cifar10", "cifar10_transfer")
HEARTBEAT_S = STALE_S / 4
WATCH_EVERY_S = 1.0
log = logging.getLogger("training.serve")
assert sorted(TRAIN_ORDER) == sorted(MODELS)


class Status:
    """The trainer's state, written to the status file on each change and every HEARTBEAT_S."""

    def __init__(self, path: Path, names: list[str]):
        self.path = path
        self.models: dict[str, dict] = {name: {"state": "queued"} for name in names}
        self.lock = threading.Lock()
        self.write()

    def set(self, name: str, **entry: object) -> None:
        with self.lock:
            if entry.get("state") == "done":
                self.models.pop(name, None)
            else:
                self.models[name] = {**self.models.get(name, {}), **entry}
        self.write()

    def write(self) -> None:
        with self.lock:
            text = json.dumps({"updated": time.time(), "models": self.models})
        staging = self.path.with_name(f"{self.path.name}.{os.getpid()}.tmp")
        try:
            staging.write_text(text)
            staging.replace(self.path)
        except OSError as err:  # the server shows less; training goes on
            log.warning("cannot write %s: %s", self.path, err)

    def remove(self) -> None:
        self.path.unlink(missing_ok=True)


def missing_models(models_dir: Path, among: tuple[str, ...] = TRAIN_ORDER) -> list[str]:
    """The models of `among` with no version yet, in TRAIN_ORDER."""
    return [name for name in TRAIN_ORDER
            if name in among and not export.versions(models_dir / name)]


def start_server(models_dir: Path, settings: Settings, training: bool) -> subprocess.Popen:
    """`python -m app` on the same settings (port, .env), this repository. While models
    train, its log says only warnings unless TFSERVE_LOG_LEVEL asks for more: the access
    lines of this launcher's own status polls would bury the training's progress."""
    env = {**os.environ, "TFSERVE_MODEL_DIR": str(models_dir)}
    if training and "log_level" not in settings.model_fields_set:
        env["TFSERVE_LOG_LEVEL"] = "WARNING"
    return subprocess.Popen([sys.executable, "-m", "app"], env=env)


def watch(server: subprocess.Popen, base: str, status: Status, done: threading.Event) -> None:
    """Say when each model is served; stop the trainer if the server dies."""
    announced: set[str] = set()
    beat = time.monotonic()
    while not done.wait(WATCH_EVERY_S):
        if server.poll() is not None:
            print(f"\nthe server exited with {server.returncode}: stopping", flush=True)
            _thread.interrupt_main()
            return
        if time.monotonic() - beat > HEARTBEAT_S:
            status.write()
            beat = time.monotonic()
        try:
            listing = httpx.get(f"{base}/models", timeout=2).json()["models"]
        except (httpx.HTTPError, ValueError, KeyError):
            continue  # starting, or behind an API key: the log says the rest
        for name, model in listing.items():
            if model.get("default_version") and name not in announced:
                announced.add(name)
                print(f"\n>> {name} is served (version {model['default_version']}): "
                      f"{base}/ui/{name}", flush=True)


class Progress(keras.callbacks.Callback):
    """Each epoch's start, into the status file."""

    def __init__(self, name: str, status: Status):
        super().__init__()
        self.name, self.status = name, status

    def on_epoch_begin(self, epoch: int, logs: dict | None = None) -> None:
        self.status.set(self.name, state="training", epoch=epoch + 1,
                        epochs=int(self.params.get("epochs") or 0))


def train_missing(names: list[str], models_dir: Path, profile: str, status: Status) -> int:
    """Train and export each model in turn; the number that failed."""
    verbose = 1 if sys.stdout.isatty() else 2  # progress bars on a terminal, lines in logs
    trained: dict[str, keras.Model] = {}
    failed = 0
    for position, name in enumerate(names, 1):
        then = f"; then {', '.join(names[position:])}" if position < len(names) else ""
        print(f"\n== training {name} ({profile} profile), {position} of {len(names)}{then} ==",
              flush=True)
        status.set(name, state="training")
        try:
            with watched_by(Progress(name, status)):
                result = train_one(name, profile, None, verbose, models_dir, trained)
            result.metrics["profile"] = profile
            result.metrics["command"] = "python -m training.serve " + shlex.join(
                ["--profile", profile, "--models-dir", str(models_dir)])
            path = export.write(result, models_dir)
        except (DataUnavailable, FileExistsError, ValueError) as err:
            print(f"error: {name}: {err}", file=sys.stderr, flush=True)
            status.set(name, state="failed", error=str(err))
            failed += 1
            continue
        trained[name] = result.model
        status.set(name, state="done")
        print(f">> {name}: exported {path} in {result.metrics.get('wall_time_s', '?')} s "
              f"(validation accuracy {result.metrics.get('val_accuracy', '-')}); the server "
              "loads it at its next repository poll", flush=True)
    return failed


def _stop_on_sigterm() -> None:
    def stop(number: int, _frame: object) -> None:
        raise KeyboardInterrupt(f"signal {number}")

    signal.signal(signal.SIGTERM, stop)


def run(models_dir: Path, profile: str, among: tuple[str, ...] = TRAIN_ORDER) -> int:
    models_dir.mkdir(parents=True, exist_ok=True)
    settings = Settings(model_dir=models_dir)
    base = f"http://localhost:{settings.port}"
    names = missing_models(models_dir, among)
    status = Status(models_dir / STATUS_FILE, names) if names else None
    server = start_server(models_dir, settings, training=bool(names))
    _stop_on_sigterm()
    print(f"\ntfserve: {base}/ (Swagger UI), {base}/ui (model pages)"
          + (f"; training beside it, fastest first: {', '.join(names)} (the server logs "
             "warnings only meanwhile: TFSERVE_LOG_LEVEL=INFO for its access log)"
             if names else ""), flush=True)
    done = threading.Event()
    try:
        if status is not None:
            watcher = threading.Thread(target=watch, args=(server, base, status, done),
                                       name="watch", daemon=True)
            watcher.start()
            failed = train_missing(names, models_dir, profile, status)
            print(f"\ntraining finished: {len(names) - failed} of {len(names)} models "
                  f"exported; serving on {base}/ (Ctrl-C stops)", flush=True)
            done.set()
            status.remove()
        return server.wait()
    except KeyboardInterrupt:
        return 0 if server.poll() is None else server.returncode
    finally:
        done.set()
        if status is not None:
            status.remove()
        if server.poll() is None:
            server.send_signal(signal.SIGTERM)
            try:
                server.wait(timeout=60)
            except subprocess.TimeoutExpired:
                server.kill()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m training.serve",
        description="Serve the model repository now; train the models it lacks beside it.")
    parser.add_argument("--profile", choices=PROFILES, default="quick",
                        help="as `python -m training` (default: quick)")
    parser.add_argument("--models-dir", type=Path, default=Path("models"))
    parser.add_argument("--only", nargs="+", choices=MODELS, default=TRAIN_ORDER,
                        metavar="MODEL", help="train only these of the missing models")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    for noisy in ("tensorflow", "httpx"):  # "Assets written to ...", every status poll
        logging.getLogger(noisy).setLevel(logging.WARNING)
    keras.utils.set_random_seed(0)  # as `python -m training`'s default --seed
    return run(args.models_dir, args.profile, tuple(args.only))


if __name__ == "__main__":
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    raise SystemExit(main())
