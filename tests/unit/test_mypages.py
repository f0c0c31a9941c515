"""customer_svc's Mypage: every path of the saga ends in the same row whatever order its
events arrive in, including the reason the order service shows; and who sees which row."""

from __future__ import annotations

import itertools
from datetime import timedelta

import peewee
import pytest
from google.protobuf.message import Message

from bread.events.v1 import events_pb2 as ev
from customer_svc import projection
from customer_svc.models import Mypage
from customer_svc.projection import Mypages
from servicekit.db import Database
from servicekit.errors import NotFound
from servicekit.events import ReceivedEvent, event_type
from servicekit.identity import Caller, Role
from tests.unit.fakes import T0, database_of, deliver

PLACED = ev.OrderPlaced(
    order_id="o1", customer_id="alice", item="cake", qty=1, price=25000, payment_id="p1"
)
APPROVED = ev.PaymentApproved(order_id="o1", payment_id="p1", customer_id="alice", amount=25000)
REFUNDED = ev.PaymentCanceled(order_id="o1", payment_id="p1", amount=25000, reason="refund")


@pytest.fixture
def memory() -> None:
    db = peewee.SqliteDatabase(":memory:")
    db.bind([Mypage])
    db.create_tables([Mypage])


def apply(events: list[Message]) -> Mypage:
    handlers = projection.handlers()
    for n, event in enumerate(events):
        meta = ReceivedEvent(f"e{n}", event_type(event), "o1", event, T0 + timedelta(seconds=n))
        handlers[type(event)](event, meta)
    return Mypage.get_by_id("o1")


def every_order(events: list[Message]) -> list[Mypage]:
    rows = []
    for arrival in itertools.permutations(events):
        Mypage.delete().execute()
        rows.append(apply(list(arrival)))
    return rows


def statuses(row: Mypage) -> tuple[str, str, str]:
    return (row.order_status, row.payment_status, row.bakery_status)


@pytest.mark.usefixtures("memory")
def test_a_failed_order_ends_failed_and_refunded_in_any_order() -> None:
    failed = ev.OrderFailed(
        order_id="o1", customer_id="alice", item="cake", qty=1, price=25000, reason="timeout"
    )
    for row in every_order([APPROVED, failed, REFUNDED]):
        assert statuses(row) == ("FAILED", "CANCELED", "")
        assert (row.customer_id, row.item, row.price) == ("alice", "cake", 25000)


@pytest.mark.usefixtures("memory")
def test_a_rejected_order_ends_rejected_and_refunded_in_any_order() -> None:
    rejected = ev.BakeryRejected(order_id="o1", reason="no flour")
    for row in every_order([PLACED, APPROVED, rejected, REFUNDED]):
        assert statuses(row) == ("REJECTED", "CANCELED", "REJECTED")
        assert row.reason == "no flour"


@pytest.mark.usefixtures("memory")
def test_a_canceled_order_ends_canceled_and_closed_in_any_order() -> None:
    canceled = [
        ev.OrderCancelRequested(order_id="o1", reason="too slow"),
        ev.TicketClosed(order_id="o1", reason="too slow"),
        ev.OrderCanceled(order_id="o1", reason="too slow"),
    ]
    for row in every_order([PLACED, *canceled]):
        assert statuses(row) == ("CANCELED", "", "CLOSED") and row.reason == "too slow"


REFUSALS = {
    "delivered": (
        ev.OrderDelivered(order_id="o1"),
        "cancel refused: the bread was already delivered",
        "cancel refused: the bread was already delivered",
    ),
    "rejected": (
        ev.BakeryRejected(order_id="o1", reason="no flour"),
        "cancel refused: the ticket is REJECTED already",
        "no flour",
    ),
}


@pytest.mark.parametrize("end", list(REFUSALS))
@pytest.mark.usefixtures("memory")
def test_a_refused_cancel_shows_the_order_services_reason_in_any_order(end: str) -> None:
    ending, refusal, shown_by_order_svc = REFUSALS[end]
    answers = [
        ev.OrderCancelRequested(order_id="o1", reason="too slow"),
        ending,
        ev.CancelRefused(order_id="o1", reason=refusal),
    ]
    reasons = {row.reason for row in every_order([PLACED, *answers])}
    assert reasons == {shown_by_order_svc}


db = database_of(Mypage)


async def test_customers_see_their_own_rows_and_operators_all(db: Database) -> None:
    handlers = projection.handlers()
    await deliver(db, handlers, PLACED)
    await deliver(db, handlers, ev.OrderPlaced(order_id="o2", customer_id="bob", item="donut"))
    mypages = Mypages(db)
    assert (await mypages.get("o1", Caller("alice", Role.CUSTOMER))).item == "cake"
    assert (await mypages.get("o1", Caller("olga", Role.OPERATOR))).item == "cake"
    with pytest.raises(NotFound):
        await mypages.get("o1", Caller("bob", Role.CUSTOMER))
    alices, _ = await mypages.list_page("alice", 10, "")
    assert [r.order_id for r in alices] == ["o1"]
    everyone, _ = await mypages.list_page("", 10, "")
    assert {r.order_id for r in everyone} == {"o1", "o2"}
