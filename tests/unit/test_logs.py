"""Log lines are JSON with UTC milliseconds and the order and request in play."""

from __future__ import annotations

import json
import logging
import re

from bread.order.v1.order_pb2 import GetMenuRequest
from servicekit.errors import rpc
from servicekit.logs import ServiceFormatter, order_id_var, request_id_var


def line(message: str, exc: BaseException | None = None) -> dict:
    record = logging.LogRecord("orders", logging.WARNING, __file__, 1, message, (), None)
    if exc is not None:
        record.exc_info = (type(exc), exc, exc.__traceback__)
    return dict(json.loads(ServiceFormatter("order").format(record)))


def test_a_line_names_the_service_the_order_and_the_request() -> None:
    order_token, request_token = order_id_var.set("o1"), request_id_var.set("r1")
    try:
        entry = line("payment slow")
    finally:
        order_id_var.reset(order_token)
        request_id_var.reset(request_token)
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", entry.pop("time"))
    assert entry == {
        "service": "order",
        "level": "WARNING",
        "logger": "orders",
        "message": "payment slow",
        "order_id": "o1",
        "request_id": "r1",
    }


def test_an_exception_is_logged_with_its_traceback() -> None:
    try:
        raise ValueError("boom")
    except ValueError as error:
        entry = line("failed", error)
    assert "ValueError: boom" in entry["error"] and "order_id" not in entry


async def test_a_call_logs_under_the_edge_s_request_id() -> None:
    class Context:
        def invocation_metadata(self) -> tuple:
            return (("x-request-id", "r-42"),)

    class Servicer:
        @rpc
        async def Call(self, request: object, context: object) -> str:
            return request_id_var.get()

    assert await Servicer().Call(GetMenuRequest(), Context()) == "r-42"
