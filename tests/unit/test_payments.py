"""pay_svc's use cases against an in-memory database: one charge per order, refunds on the
saga's say-so (each exactly once), a void that refuses a late Pay, and who sees what."""

from __future__ import annotations

import pytest
from google.protobuf.message import Message

from bread.events.v1 import events_pb2 as ev
from pay_svc.domain import APPROVED, CANCELED, PAYMENTS, VOIDED
from pay_svc.models import Payment
from pay_svc.payments import Payments
from servicekit.db import Database
from servicekit.errors import FailedPrecondition, InvalidArgument, NotFound
from servicekit.identity import Caller, Role
from servicekit.outbox import Outbox
from tests.unit.fakes import database_of, deliver, recorded

ALICE = Caller("alice", Role.CUSTOMER)
BOB = Caller("bob", Role.CUSTOMER)
OPERATOR = Caller("olga", Role.OPERATOR)


db = database_of(Payment)


@pytest.fixture
async def payments(db: Database) -> Payments:
    return Payments(db, Outbox(db))


async def rows(db: Database, order_id: str) -> list[Payment]:
    return await db.run(lambda: list(Payment.select().where(Payment.order_id == order_id)))


def test_the_transition_table_is_the_designs() -> None:
    assert dict(PAYMENTS.transitions) == {APPROVED: {CANCELED}, CANCELED: set(), VOIDED: set()}


async def test_pay_approves_and_says_so(payments: Payments, db: Database) -> None:
    payment = await payments.pay("o1", "alice", 25000)
    assert (payment.order_id, payment.customer_id, payment.amount, payment.status) == (
        "o1",
        "alice",
        25000,
        APPROVED,
    )
    assert await recorded(db) == [
        ev.PaymentApproved(payment_id=payment.id, order_id="o1", customer_id="alice", amount=25000)
    ]


async def test_a_second_pay_for_an_order_returns_the_first_payment(
    payments: Payments, db: Database
) -> None:
    first = await payments.pay("o1", "alice", 25000)
    again = await payments.pay("o1", "alice", 25000)
    assert (again.id, again.status) == (first.id, APPROVED)
    assert len(await rows(db, "o1")) == 1
    assert [type(e) for e in await recorded(db)] == [ev.PaymentApproved]


@pytest.mark.parametrize(("order_id", "amount"), [("", 100), ("o1", 0), ("o1", -5)])
async def test_a_bad_pay_is_invalid(
    payments: Payments, db: Database, order_id: str, amount: int
) -> None:
    with pytest.raises(InvalidArgument):
        await payments.pay(order_id, "alice", amount)
    assert await db.run(Payment.select().count) == 0


def refund_trigger(name: str, order_id: str) -> Message:
    return {
        "OrderCanceled": ev.OrderCanceled(order_id=order_id, reason="changed my mind"),
        "BakeryRejected": ev.BakeryRejected(order_id=order_id, reason="no flour"),
        "OrderFailed": ev.OrderFailed(
            order_id=order_id, customer_id="alice", price=25000, reason="payment DEADLINE_EXCEEDED"
        ),
    }[name]


@pytest.mark.parametrize(
    ("trigger", "reason"),
    [
        ("OrderCanceled", "changed my mind"),
        ("BakeryRejected", "no flour"),
        ("OrderFailed", "order failed: payment DEADLINE_EXCEEDED"),
    ],
)
async def test_a_charge_is_refunded_exactly_once(
    payments: Payments, db: Database, trigger: str, reason: str
) -> None:
    payment = await payments.pay("o1", "alice", 25000)
    # Twice, as two events (a republished one, or two of the saga's): one refund.
    assert await deliver(db, payments.handlers(), refund_trigger(trigger, "o1"))
    assert await deliver(db, payments.handlers(), refund_trigger(trigger, "o1"))
    [row] = await rows(db, "o1")
    assert (row.status, row.reason) == (CANCELED, reason)
    assert (await recorded(db))[1:] == [
        ev.PaymentCanceled(payment_id=payment.id, order_id="o1", amount=25000, reason=reason)
    ]


async def test_two_different_refund_reasons_still_refund_once(
    payments: Payments, db: Database
) -> None:
    await payments.pay("o1", "alice", 25000)
    await deliver(db, payments.handlers(), refund_trigger("BakeryRejected", "o1"))
    await deliver(db, payments.handlers(), refund_trigger("OrderFailed", "o1"))
    await deliver(db, payments.handlers(), refund_trigger("OrderCanceled", "o1"))
    assert [type(e) for e in await recorded(db)] == [ev.PaymentApproved, ev.PaymentCanceled]
    assert [r.reason for r in await rows(db, "o1")] == ["no flour"]


async def test_a_rejection_without_a_reason_gets_one(payments: Payments, db: Database) -> None:
    await payments.pay("o1", "alice", 25000)
    await deliver(db, payments.handlers(), ev.BakeryRejected(order_id="o1"))
    assert [r.reason for r in await rows(db, "o1")] == ["rejected by the bakery"]


async def test_a_failed_order_never_charged_is_voided_and_a_late_pay_refused(
    payments: Payments, db: Database
) -> None:
    assert await deliver(db, payments.handlers(), refund_trigger("OrderFailed", "o1"))
    assert await deliver(db, payments.handlers(), refund_trigger("OrderFailed", "o1"))
    [row] = await rows(db, "o1")
    assert (row.status, row.customer_id, row.amount) == (VOIDED, "alice", 25000)
    with pytest.raises(FailedPrecondition, match="failed before it was paid"):
        await payments.pay("o1", "alice", 25000)
    assert [r.status for r in await rows(db, "o1")] == [VOIDED]
    assert await recorded(db) == []  # nothing was charged, nothing is refunded


@pytest.mark.parametrize("trigger", ["OrderCanceled", "BakeryRejected"])
async def test_a_refund_of_nothing_records_nothing(
    payments: Payments, db: Database, trigger: str
) -> None:
    await deliver(db, payments.handlers(), refund_trigger(trigger, "o1"))
    assert await rows(db, "o1") == []
    assert await recorded(db) == []


async def test_a_pay_after_the_refund_returns_the_refunded_payment(
    payments: Payments, db: Database
) -> None:
    first = await payments.pay("o1", "alice", 25000)
    await deliver(db, payments.handlers(), refund_trigger("OrderFailed", "o1"))
    again = await payments.pay("o1", "alice", 25000)
    # order's PayClient refuses anything but APPROVED (test_pay_client.py).
    assert (again.id, again.status) == (first.id, CANCELED)
    assert [type(e) for e in await recorded(db)] == [ev.PaymentApproved, ev.PaymentCanceled]


async def test_an_operators_cancel_refunds_once(payments: Payments, db: Database) -> None:
    payment = await payments.pay("o1", "alice", 25000)
    assert (await payments.cancel(payment.id, "")).status == CANCELED
    assert (await payments.cancel(payment.id, "again")).reason == "canceled"
    assert [type(e) for e in await recorded(db)] == [ev.PaymentApproved, ev.PaymentCanceled]
    with pytest.raises(NotFound):
        await payments.cancel("no-such-payment", "")


async def test_a_void_cannot_be_canceled_into_a_refund(payments: Payments, db: Database) -> None:
    await deliver(db, payments.handlers(), refund_trigger("OrderFailed", "o1"))
    [void] = await rows(db, "o1")
    assert (await payments.cancel(void.id, "refund it")).status == VOIDED
    assert await recorded(db) == []


async def test_customers_see_their_own_payments_and_operators_all(
    payments: Payments, db: Database
) -> None:
    alices = await payments.pay("o1", "alice", 25000)
    bobs = await payments.pay("o2", "bob", 3000)
    assert (await payments.get(alices.id, ALICE)).id == alices.id
    assert (await payments.get(alices.id, OPERATOR)).id == alices.id
    with pytest.raises(NotFound) as others:
        await payments.get(alices.id, BOB)
    with pytest.raises(NotFound) as missing:
        await payments.get("nope", BOB)
    assert str(others.value) == str(missing.value).replace("nope", alices.id)
    mine, _ = await payments.list_page("alice", "", 10, "")
    assert [p.id for p in mine] == [alices.id]
    everyone, _ = await payments.list_page("", "", 10, "")
    assert {p.id for p in everyone} == {alices.id, bobs.id}
    by_order, _ = await payments.list_page("", "o2", 10, "")
    assert [p.id for p in by_order] == [bobs.id]
    none_of_mine, _ = await payments.list_page("alice", "o2", 10, "")
    assert none_of_mine == []
