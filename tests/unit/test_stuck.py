"""`make stuck`'s query: orders not final and unchanged longer than the threshold, oldest
first, each with the last event customer's timeline has for it."""

from __future__ import annotations

import pathlib
from datetime import timedelta

import peewee

from bread.order.v1.order_pb2 import OrderStatus
from customer_svc.models import TimelineEvent
from ops.stuck import LastEvent, find_stuck, report
from order_svc.models import Order
from servicekit.db import open_database
from tests.unit.fakes import T0

NOW = T0.replace(tzinfo=None) + timedelta(hours=1)


def database(path: pathlib.Path, model: type[peewee.Model]) -> str:
    url = f"sqlite:///{path}"
    db = open_database(url)
    db.bind([model])
    db.create_tables([model])
    return url


def order(order_id: str, status: int, seconds_ago: float) -> None:
    Order.create(
        id=order_id,
        customer_id="alice",
        item="cake",
        qty=1,
        unit_price=25000,
        price=25000,
        status=status,
        updated=NOW - timedelta(seconds=seconds_ago),
    )


def event(order_id: str, type_name: str, service: str, seconds_ago: float) -> None:
    TimelineEvent.create(
        order_id=order_id,
        event_id=f"{order_id}-{type_name}",
        type_name=f"bread.events.v1.{type_name}",
        service=service,
        event_time=NOW - timedelta(seconds=seconds_ago),
    )


def test_waiting_orders_past_the_threshold_with_their_last_event(tmp_path: pathlib.Path) -> None:
    urls = {
        "order": database(tmp_path / "order.db", Order),
        "customer": database(tmp_path / "customer.db", TimelineEvent),
    }
    order("paid-long-ago", OrderStatus.ORDER_STATUS_PAID, 600)
    event("paid-long-ago", "PaymentApproved", "pay", 601)
    event("paid-long-ago", "OrderPlaced", "order", 600)
    order("canceling", OrderStatus.ORDER_STATUS_CANCELING, 120)
    event("canceling", "OrderCancelRequested", "order", 120)
    order("pending-no-events", OrderStatus.ORDER_STATUS_PENDING, 90)
    order("paid-just-now", OrderStatus.ORDER_STATUS_PAID, 10)  # under the threshold
    order("delivered-long-ago", OrderStatus.ORDER_STATUS_DELIVERED, 900)  # final
    order("failed-long-ago", OrderStatus.ORDER_STATUS_FAILED, 900)  # final

    stuck = find_stuck(urls, timedelta(seconds=60), NOW)

    assert [(s.order_id, s.status) for s in stuck] == [
        ("paid-long-ago", "PAID"),
        ("canceling", "CANCELING"),
        ("pending-no-events", "PENDING"),
    ]
    assert stuck[0].last_event == LastEvent("OrderPlaced", "order", NOW - timedelta(seconds=600))
    assert stuck[1].last_event is not None and stuck[1].last_event.type == "OrderCancelRequested"
    assert stuck[2].last_event is None
    text = report(stuck, timedelta(seconds=60), NOW)
    assert "3 order(s) waiting more than 60 s" in text
    assert "CANCELING  for    120 s  last event OrderCancelRequested from order" in text
    assert find_stuck(urls, timedelta(seconds=3600), NOW) == []
    assert report([], timedelta(seconds=60), NOW) == "no order has waited more than 60 s"
