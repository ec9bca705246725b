"""`python -m app`: serve with uvicorn on TFSERVE_HOST:TFSERVE_PORT (default 0.0.0.0:8089)."""

import logging
import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # before TensorFlow is imported

import uvicorn  # noqa: E402

from app.main import create_app  # noqa: E402
from app.settings import get_settings  # noqa: E402

settings = get_settings()
logging.basicConfig(level=settings.log_level,
                    format="%(asctime)s %(levelname)s %(name)s: %(message)s")
uvicorn.run(create_app(settings), host=settings.host, port=settings.port,
            log_level=settings.log_level.lower(), timeout_graceful_shutdown=30)
