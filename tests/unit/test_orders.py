"""order_svc's use cases against an in-memory database and a fake pay: placing (and
its idempotency), canceling, the saga's answers, the sweeper, and who sees what."""

from __future__ import annotations

import asyncio
import uuid
from datetime import datetime, timedelta
from typing import Any

import grpc
import pytest
from google.protobuf.message import Message

from bread.events.v1 import events_pb2 as ev
from harness.load import FAILED_ORDER
from order_svc.domain import (
    CANCELED,
    CANCELING,
    CONFIRMED,
    DELIVERED,
    FAILED,
    ORDERS,
    PAID,
    PENDING,
    REJECTED,
    status_name,
)
from order_svc.menu import DEFAULT_MENU
from order_svc.models import Order
from order_svc.orders import Orders
from servicekit.clock import utcnow
from servicekit.db import Database
from servicekit.errors import (
    AlreadyExists,
    DeadlineExceeded,
    DomainError,
    FailedPrecondition,
    InvalidArgument,
    NotFound,
    Unavailable,
)
from servicekit.identity import Caller, Role
from servicekit.outbox import Outbox
from tests.unit.fakes import FakePay, database_of, deliver, eventually, recorded

ALICE = Caller("alice", Role.CUSTOMER)
BOB = Caller("bob", Role.CUSTOMER)
BAKER = Caller("bea", Role.BAKER)
OPERATOR = Caller("olga", Role.OPERATOR)
ALL_STATUSES = [PENDING, PAID, CONFIRMED, CANCELING, FAILED, REJECTED, CANCELED, DELIVERED]


db = database_of(Order)


@pytest.fixture
async def orders(db: Database, pay: FakePay) -> Orders:
    return Orders(db, Outbox(db), DEFAULT_MENU, pay)


async def stored(db: Database, order_id: str) -> Order:
    return await db.run(Order.get_by_id, order_id)


async def an_order(
    db: Database,
    status: int,
    customer: str = "alice",
    created: datetime | None = None,
    request_id: str | None = None,
) -> str:
    """An order stored as if it had got this far."""
    order_id = str(uuid.uuid4())
    await db.run(
        lambda: Order.create(
            id=order_id,
            customer_id=customer,
            item="cake",
            qty=1,
            unit_price=25000,
            price=25000,
            status=status,
            payment_id="" if status in (PENDING, FAILED) else "pay-1",
            created=created or utcnow(),
            request_id=request_id,
        )
    )
    return order_id


def test_the_transition_table_is_the_designs() -> None:
    """docs/DESIGN.md, "The saga's states and messages", as a table."""
    assert dict(ORDERS.transitions) == {
        PENDING: {PAID, FAILED},
        PAID: {CONFIRMED, REJECTED, CANCELING, DELIVERED},
        CONFIRMED: {DELIVERED, CANCELING},
        CANCELING: {CANCELED, DELIVERED, REJECTED},
        FAILED: set(),
        REJECTED: set(),
        CANCELED: set(),
        DELIVERED: set(),
    }


# ------------------------------------------------------------------------------ place


async def test_an_approved_payment_places_the_order(
    orders: Orders, pay: FakePay, db: Database
) -> None:
    order = await orders.place("cake", 2, "alice")
    assert pay.calls == [(order.id, "alice", 50000)]
    assert (order.status, order.payment_id) == (PAID, f"pay-{order.id}")
    row = await stored(db, order.id)
    assert (row.status, row.payment_id, row.unit_price, row.price, row.request_id) == (
        PAID,
        f"pay-{order.id}",
        25000,
        50000,
        None,
    )
    assert await recorded(db) == [
        ev.OrderPlaced(
            order_id=order.id,
            customer_id="alice",
            item="cake",
            qty=2,
            price=50000,
            payment_id=f"pay-{order.id}",
        )
    ]


@pytest.mark.parametrize(
    ("code", "error"),
    [
        (grpc.StatusCode.UNAVAILABLE, Unavailable),
        (grpc.StatusCode.DEADLINE_EXCEEDED, DeadlineExceeded),
        (grpc.StatusCode.FAILED_PRECONDITION, FailedPrecondition),
        (grpc.StatusCode.INTERNAL, Unavailable),  # whatever else: outcome unknown, retry
    ],
)
async def test_a_failed_payment_fails_the_order(
    orders: Orders, pay: FakePay, db: Database, code: grpc.StatusCode, error: type[DomainError]
) -> None:
    pay.fail(code, "card says no")
    with pytest.raises(error) as raised:
        await orders.place("donut", 3, "alice", request_id="r1")
    # The client is told which order failed, in the words harness.load looks for.
    found = FAILED_ORDER.search(str(raised.value))
    assert found is not None, str(raised.value)
    order_id = found.group(1)
    assert pay.calls == [(order_id, "alice", 9000)]
    if code == grpc.StatusCode.FAILED_PRECONDITION:
        assert "declined (card says no)" in str(raised.value)
    row = await stored(db, order_id)
    assert (row.status, row.request_id, row.payment_id) == (FAILED, None, "")
    assert row.reason == f"payment {code.name}: card says no"
    assert await recorded(db) == [
        ev.OrderFailed(
            order_id=order_id,
            customer_id="alice",
            item="donut",
            qty=3,
            price=9000,
            reason=row.reason,
        )
    ]


async def test_a_failed_order_frees_its_request_id(
    orders: Orders, pay: FakePay, db: Database
) -> None:
    pay.fail(grpc.StatusCode.UNAVAILABLE)
    with pytest.raises(Unavailable):
        await orders.place("cake", 1, "alice", request_id="r1")
    pay.failure = None
    retried = await orders.place("cake", 1, "alice", request_id="r1")
    assert retried.status == PAID
    assert (await orders.place("cake", 1, "alice", request_id="r1")).id == retried.id
    assert len(pay.calls) == 2  # the failed attempt and the new one; the last retry paid nothing
    statuses = await db.run(lambda: sorted(o.status for o in Order.select()))
    assert statuses == sorted([FAILED, PAID])


@pytest.mark.parametrize(
    ("item", "qty", "customer", "request_id"),
    [
        ("pizza", 1, "alice", ""),
        ("cake", 0, "alice", ""),
        ("cake", 1, "", ""),
        ("cake", 1, "alice", "x" * 65),
    ],
)
async def test_a_bad_request_stores_nothing_and_charges_nothing(
    orders: Orders, pay: FakePay, db: Database, item: str, qty: int, customer: str, request_id: str
) -> None:
    with pytest.raises(InvalidArgument):
        await orders.place(item, qty, customer, request_id)
    assert pay.calls == []
    assert await db.run(Order.select().count) == 0


# ------------------------------------------------------------------------------ idempotent place


async def test_a_retry_gets_the_same_order_and_one_charge(
    orders: Orders, pay: FakePay, db: Database
) -> None:
    first = await orders.place("cake", 1, "alice", request_id="r1")
    again = await orders.place("cake", 1, "alice", request_id="r1")
    assert (again.id, again.status) == (first.id, PAID)
    assert len(pay.calls) == 1
    assert [type(e) for e in await recorded(db)] == [ev.OrderPlaced]


@pytest.mark.parametrize(("item", "qty"), [("donut", 1), ("cake", 2)])
async def test_a_request_id_reused_for_another_order_is_already_exists(
    orders: Orders, pay: FakePay, db: Database, item: str, qty: int
) -> None:
    await orders.place("cake", 1, "alice", request_id="r1")
    with pytest.raises(AlreadyExists):
        await orders.place(item, qty, "alice", request_id="r1")
    assert len(pay.calls) == 1
    assert await db.run(Order.select().count) == 1


async def test_request_ids_are_per_customer(orders: Orders, pay: FakePay) -> None:
    alices = await orders.place("cake", 1, "alice", request_id="r1")
    bobs = await orders.place("cake", 1, "bob", request_id="r1")
    assert alices.id != bobs.id and (alices.status, bobs.status) == (PAID, PAID)


async def test_without_a_request_id_every_call_is_a_new_order(orders: Orders, pay: FakePay) -> None:
    first = await orders.place("cake", 1, "alice")
    second = await orders.place("cake", 1, "alice")
    assert first.id != second.id and len(pay.calls) == 2


async def test_of_two_concurrent_retries_the_later_gets_the_earlier_order(
    orders: Orders, pay: FakePay, db: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    lookups: list[tuple[Any, ...]] = []
    real_earlier = orders._earlier

    async def earlier(*args: Any) -> Order | None:
        lookups.append(args)
        return await real_earlier(*args)

    monkeypatch.setattr(orders, "_earlier", earlier)
    pay.hold = asyncio.Event()  # the first one's payment is in flight
    first = asyncio.create_task(orders.place("cake", 1, "alice", request_id="r1"))
    second = asyncio.create_task(orders.place("cake", 1, "alice", request_id="r1"))
    retried = await asyncio.wait_for(second, 5)
    # Both looked before either stored; the second lost the insert and looked again.
    assert len(lookups) == 3
    assert len(pay.calls) == 1 and retried.id == pay.calls[0][0]
    assert retried.status == PENDING
    pay.hold.set()
    placed = await asyncio.wait_for(first, 5)
    assert (placed.id, placed.status) == (retried.id, PAID)
    assert await db.run(Order.select().count) == 1


async def test_a_concurrent_insert_of_another_order_is_already_exists(
    orders: Orders, pay: FakePay, db: Database
) -> None:
    pay.hold = asyncio.Event()
    first = asyncio.create_task(orders.place("cake", 1, "alice", request_id="r1"))
    second = asyncio.create_task(orders.place("donut", 1, "alice", request_id="r1"))
    with pytest.raises(AlreadyExists):
        await asyncio.wait_for(second, 5)
    pay.hold.set()
    assert (await asyncio.wait_for(first, 5)).status == PAID
    assert len(pay.calls) == 1


# ------------------------------------------------------------------------------ cancel


@pytest.mark.parametrize("status", [PAID, CONFIRMED])
async def test_cancel_asks_the_bakery(orders: Orders, db: Database, status: int) -> None:
    order_id = await an_order(db, status)
    order = await orders.cancel(order_id, "changed my mind", ALICE)
    assert (order.status, order.reason) == (CANCELING, "changed my mind")
    assert (await stored(db, order_id)).status == CANCELING
    assert await recorded(db) == [
        ev.OrderCancelRequested(order_id=order_id, reason="changed my mind")
    ]


async def test_a_cancel_without_a_reason_gets_one(orders: Orders, db: Database) -> None:
    order_id = await an_order(db, PAID)
    assert (await orders.cancel(order_id, "", ALICE)).reason == "canceled by the customer"


async def test_asking_twice_is_fine_and_asks_the_bakery_once(orders: Orders, db: Database) -> None:
    order_id = await an_order(db, PAID)
    await orders.cancel(order_id, "first", ALICE)
    again = await orders.cancel(order_id, "second", ALICE)
    assert (again.status, again.reason) == (CANCELING, "first")
    await deliver(db, orders.handlers(), ev.TicketClosed(order_id=order_id, reason="first"))
    assert (await orders.cancel(order_id, "third", ALICE)).status == CANCELED
    assert [type(e) for e in await recorded(db)] == [ev.OrderCancelRequested, ev.OrderCanceled]


@pytest.mark.parametrize("status", [PENDING, FAILED, REJECTED, DELIVERED])
async def test_an_order_not_paid_or_already_ended_cannot_be_canceled(
    orders: Orders, db: Database, status: int
) -> None:
    order_id = await an_order(db, status)
    with pytest.raises(FailedPrecondition, match=f"{status_name(status)} cannot be canceled"):
        await orders.cancel(order_id, "please", ALICE)
    row = await stored(db, order_id)
    assert (row.status, row.reason) == (status, "")
    assert await recorded(db) == []


async def test_canceling_no_order_is_not_found(orders: Orders) -> None:
    with pytest.raises(NotFound):
        await orders.cancel("no-such-order", "", ALICE)


# ------------------------------------------------------------------------------ the saga


def bakery_event(name: str, order_id: str) -> Message:
    return {
        "BakeryAccepted": ev.BakeryAccepted(order_id=order_id),
        "BakeryRejected": ev.BakeryRejected(order_id=order_id, reason="out of flour"),
        "OrderDelivered": ev.OrderDelivered(order_id=order_id),
        "TicketClosed": ev.TicketClosed(order_id=order_id, reason="changed my mind"),
    }[name]


# What each of the bakery's events does to an order in each status (DESIGN.md); every
# status not listed stays as it was, so a late or repeated event never moves one back.
BAKERY_MOVES: dict[str, dict[int, int]] = {
    "BakeryAccepted": {PAID: CONFIRMED},
    "BakeryRejected": {PAID: REJECTED, CANCELING: REJECTED},
    "OrderDelivered": {PAID: DELIVERED, CONFIRMED: DELIVERED, CANCELING: DELIVERED},
    "TicketClosed": {CANCELING: CANCELED},
}


@pytest.mark.parametrize(
    ("event", "status"), [(event, status) for event in BAKERY_MOVES for status in ALL_STATUSES]
)
async def test_bakery_events_move_orders_only_forward(
    orders: Orders, db: Database, event: str, status: int
) -> None:
    order_id = await an_order(db, status)
    assert await deliver(db, orders.handlers(), bakery_event(event, order_id))
    expected = BAKERY_MOVES[event].get(status, status)
    assert status_name((await stored(db, order_id)).status) == status_name(expected)
    # Only closing the ticket of a CANCELING order makes the order speak: pay must refund.
    events = await recorded(db)
    assert [type(e) for e in events] == (
        [ev.OrderCanceled] if status == CANCELING and expected == CANCELED else []
    )


async def test_a_rejection_keeps_the_bakerys_reason(orders: Orders, db: Database) -> None:
    given, blank = await an_order(db, PAID), await an_order(db, PAID)
    await deliver(db, orders.handlers(), ev.BakeryRejected(order_id=given, reason="no flour"))
    await deliver(db, orders.handlers(), ev.BakeryRejected(order_id=blank))
    assert (await stored(db, given)).reason == "no flour"
    assert (await stored(db, blank)).reason == "rejected by the bakery"


async def test_a_closed_ticket_cancels_the_order_and_pay_refunds(
    orders: Orders, db: Database
) -> None:
    order_id = await an_order(db, PAID)
    await orders.cancel(order_id, "too slow", ALICE)
    closed = ev.TicketClosed(order_id=order_id, reason="too slow")
    await deliver(db, orders.handlers(), closed)
    await deliver(db, orders.handlers(), closed)  # the same answer again, as a new event
    row = await stored(db, order_id)
    assert (row.status, row.reason) == (CANCELED, "too slow")
    assert await recorded(db) == [
        ev.OrderCancelRequested(order_id=order_id, reason="too slow"),
        ev.OrderCanceled(order_id=order_id, reason="too slow"),
    ]


@pytest.mark.parametrize("refusal_first", [True, False])
async def test_a_refused_cancel_ends_delivered_with_the_reason(
    orders: Orders, db: Database, refusal_first: bool
) -> None:
    order_id = await an_order(db, CONFIRMED)
    await orders.cancel(order_id, "too slow", ALICE)
    refused = ev.CancelRefused(
        order_id=order_id, reason="cancel refused: the bread was already delivered"
    )
    answers = [refused, ev.OrderDelivered(order_id=order_id)]
    for answer in answers if refusal_first else reversed(answers):
        await deliver(db, orders.handlers(), answer)
    row = await stored(db, order_id)
    assert (row.status, row.reason) == (DELIVERED, refused.reason)
    assert [type(e) for e in await recorded(db)] == [ev.OrderCancelRequested]  # no refund


async def test_a_refusal_alone_keeps_the_order_canceling_and_says_why(
    orders: Orders, db: Database
) -> None:
    order_id = await an_order(db, PAID)
    await orders.cancel(order_id, "too slow", ALICE)
    refused = ev.CancelRefused(order_id=order_id, reason="cancel refused: the ticket is X")
    await deliver(db, orders.handlers(), refused)
    row = await stored(db, order_id)
    assert (row.status, row.reason) == (CANCELING, refused.reason)


@pytest.mark.parametrize("refusal_first", [True, False])
async def test_a_cancel_refused_by_a_rejected_ticket_ends_rejected_with_the_bakerys_reason(
    orders: Orders, db: Database, refusal_first: bool
) -> None:
    order_id = await an_order(db, PAID)
    await orders.cancel(order_id, "too slow", ALICE)
    answers: list[Message] = [
        ev.CancelRefused(order_id=order_id, reason="cancel refused: the ticket is REJECTED"),
        ev.BakeryRejected(order_id=order_id, reason="no flour"),
    ]
    for answer in answers if refusal_first else reversed(answers):
        await deliver(db, orders.handlers(), answer)
    row = await stored(db, order_id)
    assert (row.status, row.reason) == (REJECTED, "no flour")


# ------------------------------------------------------------------------------ the sweeper


async def test_the_sweeper_fails_orders_left_pending(
    orders: Orders, db: Database, pay: FakePay
) -> None:
    pay.timeout = 1.0
    stale = await an_order(db, PENDING, created=utcnow() - timedelta(seconds=3), request_id="r1")
    in_flight = await an_order(db, PENDING)  # younger than twice the pay timeout
    old_paid = await an_order(db, PAID, created=utcnow() - timedelta(hours=1))
    sweeper = asyncio.create_task(orders.sweep_stale_payments())
    try:
        await eventually(lambda: recorded(db))
    finally:
        sweeper.cancel()
    row = await stored(db, stale)
    assert (row.status, row.reason, row.request_id) == (FAILED, "payment outcome unknown", None)
    assert (await stored(db, in_flight)).status == PENDING
    assert (await stored(db, old_paid)).status == PAID
    assert await recorded(db) == [
        ev.OrderFailed(
            order_id=stale,
            customer_id="alice",
            item="cake",
            qty=1,
            price=25000,
            reason="payment outcome unknown",
        )
    ]


async def test_a_payment_approved_after_the_sweep_comes_too_late(
    orders: Orders, db: Database, pay: FakePay
) -> None:
    pay.timeout = 0.01
    pay.hold = asyncio.Event()
    placing = asyncio.create_task(orders.place("cake", 1, "alice"))

    async def called() -> bool:
        return bool(pay.calls)

    await eventually(called)
    await asyncio.sleep(0.05)  # older than twice the pay timeout: the call counts as dead
    sweeper = asyncio.create_task(orders.sweep_stale_payments())
    try:
        await eventually(lambda: recorded(db))
    finally:
        sweeper.cancel()
    pay.hold.set()
    with pytest.raises(Unavailable, match="came too late"):
        await asyncio.wait_for(placing, 5)
    order_id = pay.calls[0][0]
    assert (await stored(db, order_id)).status == FAILED
    # OrderFailed makes pay refund the late charge; the bakery never hears of the order.
    assert [type(e) for e in await recorded(db)] == [ev.OrderFailed]


# ------------------------------------------------------------------------------ who sees what


async def test_customers_see_their_own_orders_and_operators_all(
    orders: Orders, db: Database
) -> None:
    order_id = await an_order(db, PAID, customer="alice")
    assert (await orders.get(order_id, ALICE)).id == order_id
    assert (await orders.get(order_id, OPERATOR)).id == order_id
    with pytest.raises(NotFound) as missing:
        await orders.get("no-such-order", BOB)
    for stranger in (BOB, BAKER):
        with pytest.raises(NotFound) as others:
            await orders.get(order_id, stranger)
        # Someone else's order is answered exactly like one that does not exist.
        assert str(others.value) == str(missing.value).replace("no-such-order", order_id)


async def test_only_the_owner_or_an_operator_may_cancel(orders: Orders, db: Database) -> None:
    alices, other = await an_order(db, PAID, customer="alice"), await an_order(db, PAID)
    with pytest.raises(NotFound):
        await orders.cancel(alices, "mine now", BOB)
    assert (await stored(db, alices)).status == PAID
    assert await recorded(db) == []
    assert (await orders.cancel(other, "on the phone", OPERATOR)).status == CANCELING


async def test_lists_are_filtered_by_customer(orders: Orders, db: Database) -> None:
    mine = {await an_order(db, PAID, customer="alice") for _ in range(3)}
    theirs = await an_order(db, PAID, customer="bob")
    page, token = await orders.list_page("alice", 10, "")
    assert {o.id for o in page} == mine and token == ""
    everyone, _ = await orders.list_page("", 10, "")
    assert {o.id for o in everyone} == mine | {theirs}
    first, token = await orders.list_page("alice", 2, "")
    rest, last = await orders.list_page("alice", 2, token)
    assert {o.id for o in first + rest} == mine and last == ""
