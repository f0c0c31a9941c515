"""Forged events on the real exchange: decodable protobuf that makes no sense (empty,
absurd or unprintable order ids, a payload of another type, negative money and counts,
a huge payload, an event for a queue that does not take it) aimed at a real order.
Every consumer that receives one dead-letters it with its error, none is applied (not
one stored row changes), and the consumers go on: a real order still flows to the end."""

from __future__ import annotations

import asyncio
import os
import sqlite3
import subprocess
import sys
import uuid
from collections.abc import Iterator
from typing import Any

import aio_pika
import pytest
from google.protobuf.message import Message

from bread.events.v1 import events_pb2 as ev
from harness.polling import wait_for
from harness.processes import ROOT
from harness.system import BreadSystem, running_system
from ops.dead_letters import DeadLetter, list_dead_letters
from servicekit.events import event_type
from servicekit.settings import DEFAULT_AMQP_URL
from tests.hostile.state import assert_unharmed, differences, processes, settled

# Which services consume which event (their handlers; customer takes every event).
TAKES = {
    "order": {
        "BakeryAccepted",
        "BakeryRejected",
        "OrderDelivered",
        "TicketClosed",
        "CancelRefused",
    },
    "pay": {"OrderCanceled", "BakeryRejected", "OrderFailed"},
    "bakery": {"OrderPlaced", "OrderCancelRequested"},
    "customer": {descriptor.name for descriptor in ev.DESCRIPTOR.message_types_by_name.values()},
}


@pytest.fixture(scope="module")
def system(tmp_path_factory: pytest.TempPathFactory) -> Iterator[BreadSystem]:
    with running_system(tmp_path_factory.mktemp("forged")) as bread:
        yield bread


def deliver_order(system: BreadSystem, customer: str) -> dict:
    """Place, accept and deliver an order; return it once Mypage shows it DELIVERED."""
    with system.client() as http:
        order = http.post("/orders", json={"item": "cake", "qty": 1, "customerId": customer})
        assert order.status_code == 200, order.text
        oid = order.json()["id"]
        wait_for(lambda: http.get(f"/bakeries/{oid}").status_code == 200, what="the ticket")
        for action in ("accept", "deliver"):
            assert http.post(f"/bakeries/{oid}:{action}", json={}).status_code == 200
        wait_for(
            lambda: http.get(f"/mypages/{oid}").json().get("orderStatus") == "DELIVERED",
            timeout=20,
            what="Mypage DELIVERED",
        )
        return dict(order.json())


def forged(order_id: str, payment_id: str) -> list[tuple[str, aio_pika.Message, str]]:
    """(what, message, routing key) for each forgery, aimed at a real order and payment."""

    def message(
        body: Message | bytes,
        correlation: str | None = order_id,
        type_name: str | None = None,
        event_id: str | None = None,
    ) -> aio_pika.Message:
        assert type_name or isinstance(body, Message)
        return aio_pika.Message(
            body if isinstance(body, bytes) else body.SerializeToString(),
            message_id=event_id if event_id is not None else str(uuid.uuid4()),
            type=type_name or event_type(body),  # type: ignore[arg-type]
            correlation_id=correlation,
            delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
        )

    def placed(**changes: object) -> ev.OrderPlaced:
        facts: dict[str, Any] = {
            "order_id": order_id,
            "customer_id": "mallory",
            "item": "cake",
            "qty": 1,
            "price": 25000,
            "payment_id": payment_id,
        }
        return ev.OrderPlaced(**{**facts, **changes})

    refund = ev.PaymentCanceled(payment_id=payment_id, order_id=order_id, amount=-25000)
    odd = "o\x00\u202e\x1b"
    cases = [
        ("empty order id", message(placed(order_id=""), correlation="")),
        ("absurd order id", message(placed(order_id="o" * 250), correlation="o" * 250)),
        ("unprintable order id", message(placed(order_id=odd), correlation=odd)),
        ("negative qty", message(placed(qty=-3))),
        (
            "negative price",
            message(
                ev.OrderFailed(order_id=order_id, customer_id="m", item="cake", qty=1, price=-9)
            ),
        ),
        ("negative refund", message(refund)),
        ("payload of another type", message(refund, type_name=event_type(ev.OrderPlaced))),
        (
            "correlation not the order",
            message(ev.BakeryRejected(order_id=order_id), correlation="x"),
        ),
        ("NUL in a reason", message(ev.OrderCanceled(order_id=order_id, reason="\x00"))),
        ("huge payload", message(placed(customer_id="c" * 100_000))),
        ("absurd event id", message(ev.OrderDelivered(order_id=order_id), event_id="e" * 250)),
    ]
    routed = [(what, msg, str(msg.type)) for what, msg in cases]
    # Published under another type's routing key: bakery and customer take it as OrderPlaced.
    wrong_key = message(ev.BakeryAccepted(order_id=order_id))
    routed.append(("published under another type", wrong_key, event_type(ev.OrderPlaced)))
    return routed


async def publish(exchange: str, messages: list[tuple[aio_pika.Message, str]]) -> None:
    connection = await aio_pika.connect(DEFAULT_AMQP_URL)
    async with connection:
        channel = await connection.channel(publisher_confirms=True)
        target = await channel.get_exchange(exchange) if exchange else channel.default_exchange
        for msg, routing_key in messages:
            await target.publish(msg, routing_key=routing_key)


def test_forged_events_are_dead_lettered_and_never_applied(system: BreadSystem) -> None:
    real = deliver_order(system, "victim")
    before = settled(system)
    pids = processes(system)
    cases = forged(real["id"], real["paymentId"])
    asyncio.run(publish(system.exchange, [(msg, key) for _, msg, key in cases]))
    # A valid event sent straight to a queue whose service does not handle it.
    stray = aio_pika.Message(
        ev.PaymentApproved(
            payment_id=real["paymentId"], order_id=real["id"], customer_id="m", amount=1
        ).SerializeToString(),
        message_id=str(uuid.uuid4()),
        type=event_type(ev.PaymentApproved),
        correlation_id=real["id"],
    )
    bakery_queue = f"{system.queue_prefix}.bakery"
    asyncio.run(publish("", [(stray, bakery_queue)]))

    expected = {
        (f"{system.queue_prefix}.{service}", str(msg.message_id))
        for _, msg, key in cases
        for service, types in TAKES.items()
        if key.rpartition(".")[2] in types
    } | {(bakery_queue, str(stray.message_id))}

    def dead() -> list[DeadLetter]:
        return asyncio.run(list_dead_letters(DEFAULT_AMQP_URL, system.queue_prefix))

    wait_for(
        lambda: {(d.queue, d.event_id) for d in dead()} >= expected,
        timeout=30,
        what="every forged event dead-lettered by every consumer that got it",
    )
    letters = dead()
    assert {(d.queue, d.event_id) for d in letters} == expected
    assert all("InvalidEvent" in d.error for d in letters), [d.error for d in letters]
    assert not differences(before, settled(system))
    assert_unharmed(system, pids)
    # The consumers went on.
    assert deliver_order(system, "after-the-forgeries")["status"] == "ORDER_STATUS_PAID"


def test_a_rebuild_from_the_log_skips_the_forgeries(system: BreadSystem) -> None:
    """The event log keeps whatever was published, forgeries too: replaying it into a new
    read model skips them and gives the live rows."""
    real = deliver_order(system, "replayed")
    what, forgery, key = forged(real["id"], real["paymentId"])[3]
    assert what == "negative qty"
    asyncio.run(publish(system.exchange, [(forgery, key)]))
    live = settled(system)["customer"]["mypages"]
    rebuilt_url = f"sqlite:///{system.tmp}/rebuilt-customer.db"
    env = {**os.environ, **system.env("customer"), "DATABASE_URL": rebuilt_url}
    subprocess.run(
        [sys.executable, "-m", "customer_svc.rebuild", "--reset"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        timeout=60,
        check=True,
    )
    with sqlite3.connect(rebuilt_url.removeprefix("sqlite:///")) as db:
        rebuilt = db.execute("SELECT * FROM mypages").fetchall()
    assert sorted(rebuilt) == sorted(live)
