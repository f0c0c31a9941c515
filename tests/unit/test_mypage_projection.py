"""The read model keeps the furthest state whatever order events arrive in."""

import itertools
from datetime import datetime, timedelta

import peewee
import pytest

from bread.events.v1 import events_pb2 as ev
from customer_svc import domain, projection
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


# What each event sets on a row of its own: (order, payment, bakery) status. Every event
# the projection handles is listed, so a new handler comes with its statuses here.
SETS: dict[type, tuple[str, str, str]] = {
    ev.OrderPlaced: ("PAID", "", "OPEN"),
    ev.OrderFailed: ("FAILED", "", ""),
    ev.OrderCancelRequested: ("CANCELING", "", ""),
    ev.TicketClosed: ("", "", "CLOSED"),
    ev.CancelRefused: ("", "", ""),
    ev.OrderCanceled: ("CANCELED", "", ""),
    ev.PaymentApproved: ("", "APPROVED", ""),
    ev.PaymentCanceled: ("", "CANCELED", ""),
    ev.BakeryAccepted: ("CONFIRMED", "", "ACCEPTED"),
    ev.BakeryRejected: ("REJECTED", "", "REJECTED"),
    ev.OrderDelivered: ("DELIVERED", "", "DELIVERED"),
}
COLUMNS = {
    "order_status": (0, domain.ORDER_RANK),
    "payment_status": (1, domain.PAYMENT_RANK),
    "bakery_status": (2, domain.BAKERY_RANK),
}


def test_every_handled_event_is_listed() -> None:
    assert set(projection.handlers()) == set(SETS)


@pytest.mark.parametrize("event", list(SETS), ids=lambda e: e.__name__)
def test_each_event_sets_its_statuses(event: type) -> None:
    row = apply([(0, event(order_id="o1"))])
    assert (row.order_status, row.payment_status, row.bakery_status) == SETS[event]


@pytest.mark.parametrize("column", list(COLUMNS))
def test_a_status_moves_only_up_its_rank(column: str) -> None:
    """domain.py's rank table is Mypage's transitions: from each status a row moves to each
    higher-ranked one and stays put for any other, whichever event arrives."""
    at, rank = COLUMNS[column]
    setting = {sets[at]: event for event, sets in SETS.items() if sets[at]}
    assert set(setting) == set(rank)  # each ranked status is set by some event
    for current, new in itertools.product(rank, repeat=2):
        Mypage.delete().execute()
        row = apply([(0, setting[current](order_id="o1")), (1, setting[new](order_id="o1"))])
        expected = new if rank[new] > rank[current] else current
        assert getattr(row, column) == expected, (current, new)
