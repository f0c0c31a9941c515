"""Structured JSON logs, one object per line, carrying the order id in play."""

from __future__ import annotations

import contextvars
import json
import logging
import sys
from typing import Any

# Set by servicers and event handlers; every log line made while it is set
# names the order, so one grep follows an order across all services.
order_id_var: contextvars.ContextVar[str] = contextvars.ContextVar("order_id", default="")


class JsonFormatter(logging.Formatter):
    def __init__(self, service: str) -> None:
        super().__init__()
        self.service = service

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": self.formatTime(record, "%Y-%m-%dT%H:%M:%S"),
            "level": record.levelname,
            "service": self.service,
            "logger": record.name,
            "message": record.getMessage(),
        }
        if order_id := order_id_var.get():
            entry["order_id"] = order_id
        if record.exc_info:
            entry["error"] = self.formatException(record.exc_info)
        return json.dumps(entry, ensure_ascii=False)


def configure(service: str, level: str) -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter(service))
    logging.basicConfig(level=level.upper(), handlers=[handler], force=True)
    # aio-pika and aiormq log every reconnect attempt at INFO with tracebacks.
    logging.getLogger("aiormq").setLevel(logging.WARNING)
    logging.getLogger("aio_pika").setLevel(logging.WARNING)
