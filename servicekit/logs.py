"""Structured JSON logs (python-json-logger), one object per line: UTC time to the
millisecond, service, level, logger, message, the order and request in play, and the trace
and span (OpenTelemetry) when the line is written inside a traced call or event."""

from __future__ import annotations

import contextvars
import logging
import sys
from datetime import UTC, datetime
from typing import Any

from opentelemetry import trace
from pythonjsonlogger.json import JsonFormatter

# Set by servicers and event handlers; every log line made while it is set
# names the order, so one grep follows an order across all services.
order_id_var: contextvars.ContextVar[str] = contextvars.ContextVar("order_id", default="")
# The edge's x-request-id of the call being served: the same id as Envoy's access log.
request_id_var: contextvars.ContextVar[str] = contextvars.ContextVar("request_id", default="")


class ServiceFormatter(JsonFormatter):
    def __init__(self, service: str) -> None:
        super().__init__(
            "{levelname}{name}{message}",
            style="{",
            rename_fields={"levelname": "level", "name": "logger", "exc_info": "error"},
        )
        self.service = service

    def add_fields(
        self, log_data: dict[str, Any], record: logging.LogRecord, message_dict: dict[str, Any]
    ) -> None:
        log_data["time"] = (
            datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds")[:-6]
            + "Z"
        )
        log_data["service"] = self.service
        super().add_fields(log_data, record, message_dict)
        if order_id := order_id_var.get():
            log_data["order_id"] = order_id
        if request_id := request_id_var.get():
            log_data["request_id"] = request_id
        span = trace.get_current_span().get_span_context()
        if span.is_valid:
            log_data["trace_id"] = format(span.trace_id, "032x")
            log_data["span_id"] = format(span.span_id, "016x")


def configure(service: str, level: str) -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(ServiceFormatter(service))
    logging.basicConfig(level=level.upper(), handlers=[handler], force=True)
    # aio-pika and aiormq log every reconnect attempt at INFO with tracebacks.
    logging.getLogger("aiormq").setLevel(logging.WARNING)
    logging.getLogger("aio_pika").setLevel(logging.WARNING)
