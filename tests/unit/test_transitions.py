"""Every transition in every service's table (order_svc, bakery_svc and pay_svc domain.py)
is made by a use case: each is driven here through Orders, Tickets or Payments, in every way
the services make it, and the move the state machine made is checked. A transition added
to a table without a use case test here fails its own case below."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import Any

import grpc
import peewee
import pytest
from google.protobuf.message import Message

from bakery_svc import domain as bakery
from bakery_svc.models import Ticket
from bakery_svc.tickets import Tickets
from bread.events.v1 import events_pb2 as ev
from bread.pay.v1.pay_pb2 import PaymentStatus
from order_svc import domain as order
from order_svc.menu import DEFAULT_MENU
from order_svc.models import Order
from order_svc.orders import Orders
from pay_svc import domain as pay
from pay_svc.models import Payment
from pay_svc.payments import Payments
from servicekit.clock import utcnow
from servicekit.db import Database
from servicekit.errors import Unavailable
from servicekit.identity import Caller, Role
from servicekit.outbox import Outbox
from servicekit.state import StateMachine
from tests.unit.fakes import FakePay, database_of, deliver, eventually, recorded

MACHINES: dict[str, StateMachine] = {
    "order": order.ORDERS,
    "ticket": bakery.TICKETS,
    "payment": pay.PAYMENTS,
}
NAMES: dict[str, Callable[[int], str]] = {
    "order": order.status_name,
    "ticket": bakery.status_name,
    "payment": lambda s: PaymentStatus.Name(s).removeprefix("PAYMENT_STATUS_"),  # type: ignore[arg-type]
}
ALICE = Caller("alice", Role.CUSTOMER)
OPERATOR = Caller("olga", Role.OPERATOR)

# One database for the three services' tables: each use case touches its own only.
db = database_of(Order, Payment, Ticket)


class World:
    """The three services' use cases, pay faked, and rows stored as if they got this far."""

    def __init__(self, db: Database, pay: FakePay) -> None:
        self.db, self.pay = db, pay
        self.orders = Orders(db, Outbox(db), DEFAULT_MENU, pay)
        self.tickets = Tickets(db, Outbox(db))
        self.payments = Payments(db, Outbox(db))

    async def order(self, status: int, **fields: Any) -> str:
        order_id = str(uuid.uuid4())
        await self.db.run(
            lambda: Order.create(
                **{
                    "id": order_id,
                    "customer_id": "alice",
                    "item": "cake",
                    "qty": 1,
                    "unit_price": 25000,
                    "price": 25000,
                    "status": status,
                    **fields,
                }
            )
        )
        return order_id

    async def ticket(self, status: int) -> str:
        order_id = str(uuid.uuid4())
        if status == bakery.OPEN:  # as the bakery opens one
            await self.to_bakery(ev.OrderPlaced(order_id=order_id, item="cake", qty=1))
        else:
            await self.db.run(lambda: Ticket.create(order_id=order_id, status=status))
        return order_id

    async def charged(self) -> str:
        order_id = str(uuid.uuid4())
        await self.payments.pay(order_id, "alice", 25000)
        return order_id

    async def to_order(self, event: Message) -> None:
        assert await deliver(self.db, self.orders.handlers(), event)

    async def to_bakery(self, event: Message) -> None:
        assert await deliver(self.db, self.tickets.handlers(), event)

    async def to_pay(self, event: Message) -> None:
        assert await deliver(self.db, self.payments.handlers(), event)


Driver = Callable[[World], Awaitable[None]]
Transition = tuple[str, int, int]
DRIVERS: dict[Transition, list[Driver]] = {}


def drives(machine: str, source: int, target: int) -> Callable[[Driver], Driver]:
    def register(driver: Driver) -> Driver:
        DRIVERS.setdefault((machine, source, target), []).append(driver)
        return driver

    return register


# ------------------------------------------------------------------------------ order


@drives("order", order.PENDING, order.PAID)
async def pay_approves_a_placement(w: World) -> None:
    await w.orders.place("cake", 1, "alice")


@drives("order", order.PENDING, order.FAILED)
async def pay_fails_a_placement(w: World) -> None:
    w.pay.fail(grpc.StatusCode.UNAVAILABLE)
    with pytest.raises(Unavailable):
        await w.orders.place("cake", 1, "alice")


@drives("order", order.PENDING, order.FAILED)
async def the_sweeper_fails_a_placement_left_pending(w: World) -> None:
    await w.order(order.PENDING, created=utcnow() - timedelta(seconds=3 * w.pay.timeout))
    sweeper = asyncio.create_task(w.orders.sweep_stale_payments())
    try:
        await eventually(lambda: recorded(w.db))
    finally:
        sweeper.cancel()


@drives("order", order.PAID, order.CONFIRMED)
async def the_bakery_accepts(w: World) -> None:
    await w.to_order(ev.BakeryAccepted(order_id=await w.order(order.PAID)))


@drives("order", order.PAID, order.REJECTED)
async def the_bakery_rejects(w: World) -> None:
    await w.to_order(ev.BakeryRejected(order_id=await w.order(order.PAID), reason="no flour"))


@drives("order", order.PAID, order.CANCELING)
async def the_customer_cancels_a_paid_order(w: World) -> None:
    await w.orders.cancel(await w.order(order.PAID), "changed my mind", ALICE)


@drives("order", order.PAID, order.DELIVERED)
async def the_delivery_overtakes_the_acceptance(w: World) -> None:
    await w.to_order(ev.OrderDelivered(order_id=await w.order(order.PAID)))


@drives("order", order.CONFIRMED, order.DELIVERED)
async def the_bakery_delivers(w: World) -> None:
    await w.to_order(ev.OrderDelivered(order_id=await w.order(order.CONFIRMED)))


@drives("order", order.CONFIRMED, order.CANCELING)
async def an_operator_cancels_a_confirmed_order(w: World) -> None:
    await w.orders.cancel(await w.order(order.CONFIRMED), "on the phone", OPERATOR)


@drives("order", order.CANCELING, order.CANCELED)
async def the_bakery_closes_the_ticket(w: World) -> None:
    await w.to_order(ev.TicketClosed(order_id=await w.order(order.CANCELING), reason="oops"))


@drives("order", order.CANCELING, order.DELIVERED)
async def the_bread_left_before_the_cancel(w: World) -> None:
    await w.to_order(ev.OrderDelivered(order_id=await w.order(order.CANCELING)))


@drives("order", order.CANCELING, order.REJECTED)
async def the_bakery_rejected_before_the_cancel(w: World) -> None:
    await w.to_order(ev.BakeryRejected(order_id=await w.order(order.CANCELING)))


# ------------------------------------------------------------------------------ ticket


@drives("ticket", bakery.OPEN, bakery.ACCEPTED)
async def the_baker_accepts(w: World) -> None:
    await w.tickets.act(await w.ticket(bakery.OPEN), "accept")


@drives("ticket", bakery.OPEN, bakery.REJECTED)
async def the_baker_rejects(w: World) -> None:
    await w.tickets.act(await w.ticket(bakery.OPEN), "reject", "no flour")


@drives("ticket", bakery.ACCEPTED, bakery.DELIVERED)
async def the_baker_delivers(w: World) -> None:
    await w.tickets.act(await w.ticket(bakery.ACCEPTED), "deliver")


@drives("ticket", bakery.OPEN, bakery.CLOSED)
async def a_cancel_closes_an_open_ticket(w: World) -> None:
    await w.to_bakery(ev.OrderCancelRequested(order_id=await w.ticket(bakery.OPEN)))


@drives("ticket", bakery.ACCEPTED, bakery.CLOSED)
async def a_cancel_closes_an_accepted_ticket(w: World) -> None:
    await w.to_bakery(ev.OrderCancelRequested(order_id=await w.ticket(bakery.ACCEPTED)))


# ------------------------------------------------------------------------------ payment


@drives("payment", pay.APPROVED, pay.CANCELED)
async def a_canceled_order_is_refunded(w: World) -> None:
    await w.to_pay(ev.OrderCanceled(order_id=await w.charged(), reason="changed my mind"))


@drives("payment", pay.APPROVED, pay.CANCELED)
async def a_rejected_order_is_refunded(w: World) -> None:
    await w.to_pay(ev.BakeryRejected(order_id=await w.charged(), reason="no flour"))


@drives("payment", pay.APPROVED, pay.CANCELED)
async def a_failed_order_charged_late_is_refunded(w: World) -> None:
    await w.to_pay(ev.OrderFailed(order_id=await w.charged(), reason="payment outcome unknown"))


@drives("payment", pay.APPROVED, pay.CANCELED)
async def an_operator_refunds(w: World) -> None:
    payment = await w.payments.pay(str(uuid.uuid4()), "alice", 25000)
    await w.payments.cancel(payment.id, "goodwill")


# ------------------------------------------------------------------------------ the tests


def name(transition: Transition) -> str:
    machine, source, target = transition
    return f"{machine} {NAMES[machine](source)}->{NAMES[machine](target)}"


TABLES: list[Transition] = [
    (machine, source, target)
    for machine, states in MACHINES.items()
    for source, targets in states.transitions.items()
    for target in sorted(targets)
]


@pytest.fixture
async def world(db: Database, pay: FakePay) -> World:
    return World(db, pay)


@pytest.fixture
def moves(monkeypatch: pytest.MonkeyPatch) -> list[Transition]:
    """Every move a state machine made, as (machine, from, to)."""
    made: list[Transition] = []
    real = StateMachine.move
    machine_of = {id(states): machine for machine, states in MACHINES.items()}

    def move(
        self: StateMachine, key: peewee.Field, value: Any, target: int, **changes: Any
    ) -> bool:
        model: Any = key.model
        before = model.select(model.status).where(key == value).scalar()
        moved = real(self, key, value, target, **changes)
        if moved:
            made.append((machine_of[id(self)], before, target))
        return moved

    monkeypatch.setattr(StateMachine, "move", move)
    return made


@pytest.mark.parametrize(
    ("transition", "driver"),
    [
        pytest.param(t, driver, id=f"{name(t)} by {driver.__name__ if driver else 'nothing'}")
        for t in TABLES
        for driver in DRIVERS.get(t, [None])
    ],
)
async def test_each_transition_is_made_by_a_use_case(
    world: World, moves: list[Transition], transition: Transition, driver: Driver | None
) -> None:
    if driver is None:
        pytest.fail(f"no use case drives {name(transition)}: add one to {__name__}")
    await driver(world)
    assert [name(m) for m in moves] == [name(transition)]


def test_every_driver_is_for_a_transition_in_a_table() -> None:
    assert [name(t) for t in DRIVERS if t not in TABLES] == []
