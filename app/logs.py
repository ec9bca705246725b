"""Logging setup: plain text for people, or one JSON object per line for log collectors; every
line carries the request id of the request it was written for (app.tracing)."""

from __future__ import annotations

import json
import logging
import logging.config
import time

from app.tracing import RequestIDFilter


class JSONFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry = {"time": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
                 + f".{int(record.msecs):03d}Z",
                 "level": record.levelname, "logger": record.name,
                 "message": record.getMessage()}
        if getattr(record, "request_id", "-") != "-":
            entry["request_id"] = record.request_id
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry)


def configure(level: str, fmt: str) -> dict:
    """Configure the root logger; returns uvicorn's log_config so its lines match."""
    formatter = {"()": JSONFormatter} if fmt == "json" else {
        "format": "%(asctime)s %(levelname)s %(name)s [%(request_id)s]: %(message)s"}
    config = {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {"default": formatter},
        "filters": {"request_id": {"()": RequestIDFilter}},
        "handlers": {"default": {"class": "logging.StreamHandler", "formatter": "default",
                                 "filters": ["request_id"]}},
        "root": {"handlers": ["default"], "level": level},
        "loggers": {name: {"handlers": [], "propagate": True, "level": level}
                    for name in ("uvicorn", "uvicorn.error", "uvicorn.access")},
    }
    logging.config.dictConfig(config)
    return config
