"""The read model keeps the furthest state whatever order events arrive in."""

import itertools
from datetime import datetime, timedelta

import peewee
import pytest

from bread.events.v1 import events_pb2 as ev
from customer_svc import projection
from customer_svc.models import Mypage
from servicekit.events import ReceivedEvent, event_type

T0 = datetime(2026, 1, 1, 12, 0, 0)


@pytest.fixture(autouse=True)
def database() -> None:
    db = peewee.SqliteDatabase(":memory:")
    db.bind([Mypage])
    db.create_tables([Mypage])


def apply(events: list) -> Mypage:
    handlers = projection.handlers()
    for seconds, event in events:
        meta = ReceivedEvent("id", event_type(event), "o1", event, T0 + timedelta(seconds=seconds))
        handlers[type(event)](event, meta)
    return Mypage.get_by_id("o1")


SAGA = [
    (
        0,
        ev.OrderPlaced(
            order_id="o1", customer_id="c1", item="cake", qty=2, price=50000, payment_id="p1"
        ),
    ),
    (1, ev.PaymentApproved(order_id="o1", payment_id="p1", customer_id="c1", amount=50000)),
    (2, ev.BakeryAccepted(order_id="o1")),
    (3, ev.OrderDelivered(order_id="o1")),
]


@pytest.mark.parametrize("order", list(itertools.permutations(range(4))))
def test_any_arrival_order_ends_delivered(order: tuple[int, ...]) -> None:
    Mypage.delete().execute()
    row = apply([SAGA[i] for i in order])
    assert (row.order_status, row.payment_status, row.bakery_status) == (
        "DELIVERED",
        "APPROVED",
        "DELIVERED",
    )
    assert (row.customer_id, row.item, row.qty, row.price, row.payment_id) == (
        "c1",
        "cake",
        2,
        50000,
        "p1",
    )
    assert row.created == T0 and row.updated == T0 + timedelta(seconds=3)


def test_late_placement_does_not_undo_a_cancel() -> None:
    row = apply(
        [
            (2, ev.OrderCancelRequested(order_id="o1", reason="changed my mind")),
            (3, ev.TicketClosed(order_id="o1", reason="changed my mind")),
            (4, ev.OrderCanceled(order_id="o1", reason="changed my mind")),
            (5, ev.PaymentCanceled(order_id="o1", payment_id="p1", amount=50000)),
            (0, SAGA[0][1]),
            (1, SAGA[1][1]),
        ]
    )
    assert (row.order_status, row.payment_status, row.bakery_status) == (
        "CANCELED",
        "CANCELED",
        "CLOSED",
    )
    assert row.reason == "changed my mind"


def test_a_refused_cancel_ends_delivered_whatever_the_order() -> None:
    refused = [
        (2, ev.BakeryAccepted(order_id="o1")),
        (3, ev.OrderCancelRequested(order_id="o1", reason="too slow")),
        (4, ev.OrderDelivered(order_id="o1")),
        (5, ev.CancelRefused(order_id="o1", reason="cancel refused: already delivered")),
    ]
    for arrival in itertools.permutations(refused):
        Mypage.delete().execute()
        row = apply([*SAGA[:2], *arrival])
        assert (row.order_status, row.payment_status, row.bakery_status) == (
            "DELIVERED",
            "APPROVED",
            "DELIVERED",
        )


def test_the_reason_is_the_end_s_whatever_the_arrival_order() -> None:
    endings = {
        "cancel refused": [
            (3, ev.OrderCancelRequested(order_id="o1", reason="too slow")),
            (4, ev.OrderDelivered(order_id="o1")),
            (5, ev.CancelRefused(order_id="o1", reason="cancel refused: delivered")),
        ],
        "rejected while canceling": [
            (3, ev.OrderCancelRequested(order_id="o1", reason="too slow")),
            (4, ev.BakeryRejected(order_id="o1", reason="out of flour")),
            (5, ev.CancelRefused(order_id="o1", reason="cancel refused: REJECTED")),
        ],
    }
    expected = {
        "cancel refused": "cancel refused: delivered",
        "rejected while canceling": "out of flour",
    }
    for name, events in endings.items():
        for arrival in itertools.permutations(events):
            Mypage.delete().execute()
            assert apply([*SAGA[:2], *arrival]).reason == expected[name], (name, arrival)
