"""`python -m app`: serve with uvicorn on TFSERVE_HOST:TFSERVE_PORT (default 0.0.0.0:8089).

On SIGTERM uvicorn stops accepting connections, lets in-flight requests finish (at most
TFSERVE_SHUTDOWN_GRACE_S), then the lifespan drains the batchers and the process exits 0.
"""

import logging
import os
import signal

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # before TensorFlow is imported

import uvicorn  # noqa: E402

from app.logs import configure  # noqa: E402
from app.main import create_app  # noqa: E402
from app.settings import get_settings  # noqa: E402

settings = get_settings()
log_config = configure(settings.log_level, settings.log_format)
# uvicorn handles SIGTERM/SIGINT gracefully, then re-raises the signal to the handler that was
# in place before it: this one, so a drained shutdown exits 0 instead of dying by the signal.
for stop_signal in (signal.SIGTERM, signal.SIGINT):
    signal.signal(stop_signal, lambda number, _: logging.info("stopped by signal %d", number))
uvicorn.run(create_app(settings), host=settings.host, port=settings.port,
            log_config=log_config, log_level=settings.log_level.lower(),
            timeout_graceful_shutdown=settings.shutdown_grace_s)
