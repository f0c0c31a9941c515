"""Every status change is one conditional update: of two replicas that both decide to
move a row, one moves it and the other is told; handlers must handle domain events."""

from __future__ import annotations

import peewee
import pytest

from bakery_svc import domain as bakery
from bakery_svc.models import Ticket
from bread.events.v1 import events_pb2
from bread.order.v1 import order_pb2
from order_svc import domain as order
from order_svc.models import Order
from servicekit.inbox import by_type_name


@pytest.fixture(autouse=True)
def database() -> None:
    db = peewee.SqliteDatabase(":memory:")
    db.bind([Order, Ticket])
    db.create_tables([Order, Ticket])


def an_order(status: int) -> str:
    Order.create(id="o1", customer_id="c", item="cake", qty=1, unit_price=1, price=1, status=status)
    return "o1"


def test_of_two_racing_moves_one_wins() -> None:
    oid = an_order(order.CONFIRMED)
    assert order.ORDERS.move(Order.id, oid, order.CANCELING, reason="first")
    assert not order.ORDERS.move(Order.id, oid, order.CANCELING, reason="second")
    assert Order.get_by_id(oid).reason == "first"


def test_a_move_the_table_does_not_allow_changes_nothing() -> None:
    oid = an_order(order.DELIVERED)
    assert not order.ORDERS.move(Order.id, oid, order.CANCELING, reason="too late")
    assert not order.ORDERS.move(Order.id, oid, order.CONFIRMED)
    row = Order.get_by_id(oid)
    assert (row.status, row.reason) == (order.DELIVERED, "")


def test_delivery_and_cancel_close_exclude_each_other() -> None:
    Ticket.create(order_id="o1", status=bakery.ACCEPTED)
    assert bakery.TICKETS.move(Ticket.order_id, "o1", bakery.DELIVERED)
    assert not bakery.TICKETS.move(Ticket.order_id, "o1", bakery.CLOSED)
    Ticket.create(order_id="o2", status=bakery.ACCEPTED)
    assert bakery.TICKETS.move(Ticket.order_id, "o2", bakery.CLOSED)
    assert not bakery.TICKETS.move(Ticket.order_id, "o2", bakery.DELIVERED)


def test_handlers_must_be_for_domain_events() -> None:
    assert by_type_name({events_pb2.OrderPlaced: print}) == {"bread.events.v1.OrderPlaced": print}
    with pytest.raises(TypeError, match="Order"):
        by_type_name({order_pb2.Order: print})
