"""`make bench` in a few seconds: POST /orders through the edge keeps pace with a one-hop read.

wrk (the same driver as `make bench`, harness/tools.py) runs GET /menu and then POST /orders
against the same system; orders must reach 0.03 x the menu's rate measured in this run (issue
10; the goal is far above it), and every request must be answered 2xx. A ratio, so a slow or
busy machine does not fail it; a regression that costs orders several times their CPU does.
"""

from __future__ import annotations

import json

import pytest

from harness.system import BreadSystem
from harness.tools import ToolRun, wrk

FLOOR = 0.03  # POST /orders / GET /menu
CONNECTIONS = 16  # below the edge's PlaceOrder breaker (64), so a busy machine sheds nothing
SECONDS = 3


def load(system: BreadSystem, paths: list[str], seconds: int, **options: object) -> ToolRun:
    return wrk(
        system.http,
        paths,
        token=system.token(),
        connections=CONNECTIONS,
        seconds=seconds,
        **options,
    )


@pytest.mark.timeout(60)
def test_orders_keep_pace_with_the_menu(system: BreadSystem) -> None:
    body = json.dumps({"item": "cake", "qty": 1, "customerId": "smoke"}, separators=(",", ":"))
    place = {"method": "POST", "body": body}
    load(system, ["/menu"], 1)  # warm-up: connections, the first calls of each path
    load(system, ["/orders"], 1, **place)

    menu = load(system, ["/menu"], SECONDS)
    orders = load(system, ["/orders"], SECONDS, **place)

    for run in (menu, orders):
        assert run.errors == 0 and run.non_2xx == 0, run
    figures = f"POST /orders {orders.rate:,.0f}/s, GET /menu {menu.rate:,.0f}/s"
    assert orders.rate >= FLOOR * menu.rate, figures
