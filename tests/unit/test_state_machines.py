"""Every status change is one conditional update: of two replicas that both decide to
move a row, one moves it and the other is told; a move the table does not list changes
nothing; handlers must handle domain events."""

from __future__ import annotations

from typing import Any

import peewee
import pytest

from bakery_svc import domain as bakery
from bakery_svc.models import Ticket
from bread.events.v1 import events_pb2
from bread.order.v1 import order_pb2
from order_svc import domain as order
from order_svc.models import Order
from pay_svc import domain as pay
from pay_svc.models import Payment
from servicekit.inbox import by_type_name
from servicekit.state import StateMachine


@pytest.fixture(autouse=True)
def database() -> None:
    db = peewee.SqliteDatabase(":memory:")
    db.bind([Order, Ticket, Payment])
    db.create_tables([Order, Ticket, Payment])


def an_order(status: int) -> str:
    Order.create(id="o1", customer_id="c", item="cake", qty=1, unit_price=1, price=1, status=status)
    return "o1"


def a_row(model: type[peewee.Model], status: int) -> peewee.Field:
    """A row of model in status, keyed "o1"; its key field."""
    if model is Order:
        an_order(status)
        return Order.id
    if model is Ticket:
        Ticket.create(order_id="o1", status=status)
        return Ticket.order_id
    Payment.create(id="o1", order_id="o1", customer_id="c", amount=1, status=status)
    return Payment.id


@pytest.mark.parametrize(
    ("machine", "model"),
    [(order.ORDERS, Order), (bakery.TICKETS, Ticket), (pay.PAYMENTS, Payment)],
    ids=["order", "ticket", "payment"],
)
def test_every_move_the_table_does_not_list_changes_nothing(
    machine: StateMachine, model: type[peewee.Model]
) -> None:
    statuses = list(machine.transitions)
    for source in statuses:
        for target in statuses:
            if target in machine.transitions[source]:
                continue
            model.delete().execute()
            key = a_row(model, source)
            assert not machine.move(key, "o1", target, reason="no"), (source, target)
            row: Any = model.get(key == "o1")
            assert (row.status, row.reason) == (source, ""), (source, target)


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
