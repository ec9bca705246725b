"""`python -m app`: serve with uvicorn on TFSERVE_HOST:TFSERVE_PORT (default 0.0.0.0:8089).

On SIGTERM uvicorn stops accepting connections, lets in-flight requests finish (at most
TFSERVE_SHUTDOWN_GRACE_S), then the lifespan drains the batchers and the process exits 0.

With TFSERVE_WORKERS=N > 1 this process is a supervisor: uvicorn binds the port once and
runs N worker processes on it (each loads every model and builds its own app), forwards
SIGTERM to all of them and restarts one that dies; they share a folder (app.workers).
"""

import logging
import os
import shutil
import signal

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # before TensorFlow is imported

import uvicorn  # noqa: E402

from app.logs import configure  # noqa: E402
from app.settings import Settings, get_settings  # noqa: E402
from app.workers import prepare_shared_dir  # noqa: E402

# How long a worker may leave the supervisor's ping unanswered before it counts as hung and
# is replaced: loading a large model can hold the interpreter for seconds.
WORKER_HEALTHCHECK_S = 60
# uvloop accepting every waiting connection per turn: for a process alone on its socket
# (workers keep uvloop's one per turn, which spreads connections among them)
ONE_PROCESS_LOOP = "app.eventloop:new_event_loop"


def tls_options(settings: Settings) -> dict[str, str]:
    """HTTPS on the HTTP port when a certificate is set (gRPC takes the same pair)."""
    if not settings.tls:
        return {}
    return {"ssl_certfile": str(settings.tls_cert_file), "ssl_keyfile": str(settings.tls_key_file)}


def serve_one(settings: Settings, log_config: dict) -> None:
    from app.main import create_app  # TensorFlow: only in the process that serves

    # uvicorn handles SIGTERM/SIGINT gracefully, then re-raises the signal to the handler
    # that was in place before it: this one, so a drained shutdown exits 0.
    for stop_signal in (signal.SIGTERM, signal.SIGINT):
        signal.signal(stop_signal, lambda number, _: logging.info("stopped by signal %d", number))
    uvicorn.run(create_app(settings), host=settings.host, port=settings.port,
                log_config=log_config, log_level=settings.log_level.lower(),
                access_log=False,  # app.http_api.access_log writes the same lines, cheaper
                timeout_graceful_shutdown=settings.shutdown_grace_s,
                loop=ONE_PROCESS_LOOP, **tls_options(settings))


def serve_many(settings: Settings, log_config: dict, workers: int) -> None:
    shared, ours = prepare_shared_dir(settings.multiproc_dir)
    # the workers inherit these: prometheus-client's multiprocess mode, and the same count
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = str(shared)
    os.environ["TFSERVE_WORKERS"] = str(workers)
    logging.info("starting %d workers (shared state in %s)", workers, shared)
    try:
        uvicorn.run("app.main:create_app", factory=True, workers=workers,
                    host=settings.host, port=settings.port, log_config=log_config,
                    log_level=settings.log_level.lower(), access_log=False,
                    timeout_graceful_shutdown=settings.shutdown_grace_s,
                    timeout_worker_healthcheck=WORKER_HEALTHCHECK_S, **tls_options(settings))
    finally:
        if ours:
            shutil.rmtree(shared, ignore_errors=True)


def main() -> None:
    settings = get_settings()
    log_config = configure(settings.log_level, settings.log_format)
    workers = settings.worker_count
    if workers > 1:
        serve_many(settings, log_config, workers)
    else:
        serve_one(settings, log_config)


if __name__ == "__main__":
    main()
