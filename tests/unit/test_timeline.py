"""Where is my bread? customer keeps every event it applies (a batch's rows in its
transaction, duplicates left out) and shows an order's events, oldest first, with their
time and emitting service, to the order's customer or an operator only."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any

import grpc
import pytest
from google.protobuf.message import Message

from bread.customer.v1 import mypage_pb2
from bread.events.v1 import events_pb2 as ev
from customer_svc import projection, timeline
from customer_svc.convert import timeline_to_proto
from customer_svc.models import Mypage, TimelineEvent
from customer_svc.projection import Mypages
from customer_svc.servicer import MypageServicer
from customer_svc.timeline import Timelines
from servicekit.db import Database
from servicekit.events import Topology
from servicekit.identity import Caller, Role
from servicekit.inbox import Consumer
from tests.unit.fakes import (
    T0,
    Aborted,
    FakeChannel,
    FakeContext,
    FakeExchange,
    FakeIncoming,
    incoming,
    memory_database,
)

QUEUE = "test.customer"
ORDER = str(uuid.uuid4())
PLACED = ev.OrderPlaced(
    order_id=ORDER, customer_id="alice", item="cake", qty=1, price=25000, payment_id="p1"
)
APPROVED = ev.PaymentApproved(order_id=ORDER, payment_id="p1", customer_id="alice", amount=25000)
REQUESTED = ev.OrderCancelRequested(order_id=ORDER, reason="changed my mind")


def sent(message: Message, by: str, seconds: int) -> FakeIncoming:
    """message as published by the service `by`, `seconds` after T0."""
    delivery = incoming(message)
    delivery.app_id = by
    delivery.timestamp = T0 + timedelta(seconds=seconds)
    return delivery


@pytest.fixture
async def db() -> AsyncIterator[Database]:
    database = await memory_database([Mypage, TimelineEvent])
    yield database
    await database.close()


@pytest.fixture
async def consumer(db: Database) -> AsyncIterator[tuple[Consumer, FakeChannel]]:
    channel = FakeChannel()
    consumer = Consumer(
        db, Topology("test.events"), QUEUE, projection.handlers(), on_applied=timeline.record
    )
    await consumer.attach(channel.typed(), FakeExchange("test.events.dlx").typed())
    yield consumer, channel
    await consumer.stop()


async def deliver(consumer: tuple[Consumer, FakeChannel], *deliveries: FakeIncoming) -> None:
    await consumer[1].put(QUEUE, *deliveries)
    await consumer[0]._deliveries.join()


async def test_a_batch_of_applied_events_is_kept_once_each_in_one_insert(
    db: Database, consumer: tuple[Consumer, FakeChannel]
) -> None:
    inserts: list[int] = []
    real = timeline.record

    def counted(events: list[Any]) -> None:
        inserts.append(len(events))
        real(events)

    consumer[0].on_applied = counted
    approved = sent(APPROVED, "pay", 0)
    await deliver(consumer, approved, sent(PLACED, "order", 0), sent(REQUESTED, "order", 5))
    again = sent(APPROVED, "pay", 0)
    again.message_id = approved.message_id  # a redelivery: not applied, not kept again
    await deliver(consumer, again)
    assert inserts == [3]
    rows = await db.run(lambda: list(TimelineEvent.select()))
    assert len(rows) == 3


async def test_the_timeline_is_the_order_s_events_in_order_with_their_service(
    db: Database, consumer: tuple[Consumer, FakeChannel]
) -> None:
    # Arrival order is not event order: the cancel request came first here.
    await deliver(consumer, sent(REQUESTED, "order", 9))
    await deliver(consumer, sent(APPROVED, "pay", 1), sent(PLACED, "order", 2))
    found = timeline_to_proto(await Timelines(db).get(ORDER, Caller("alice", Role.CUSTOMER)))
    assert found.order_id == ORDER and found.order_status == "CANCELING"
    assert [(e.type, e.service, e.event_time.ToDatetime()) for e in found.events] == [
        ("PaymentApproved", "pay", (T0 + timedelta(seconds=1)).replace(tzinfo=None)),
        ("OrderPlaced", "order", (T0 + timedelta(seconds=2)).replace(tzinfo=None)),
        ("OrderCancelRequested", "order", (T0 + timedelta(seconds=9)).replace(tzinfo=None)),
    ]


async def test_the_owner_and_operators_see_it_others_and_unknown_ids_are_not_found(
    db: Database, consumer: tuple[Consumer, FakeChannel]
) -> None:
    await deliver(consumer, sent(PLACED, "order", 0))
    api = MypageServicer(Mypages(db), Timelines(db))

    async def ask(order_id: str, subject: str, role: str) -> Any:
        request = mypage_pb2.GetOrderTimelineRequest(order_id=order_id)
        return await api.GetOrderTimeline(request, FakeContext(subject, role).typed())

    assert [e.type for e in (await ask(ORDER, "alice", "customer")).events] == ["OrderPlaced"]
    assert [e.type for e in (await ask(ORDER, "olga", "operator")).events] == ["OrderPlaced"]
    for order_id, subject, role, code in [
        (ORDER, "bob", "customer", grpc.StatusCode.NOT_FOUND),  # someone else's: ids do not leak
        (str(uuid.uuid4()), "olga", "operator", grpc.StatusCode.NOT_FOUND),
        ("nope", "alice", "customer", grpc.StatusCode.INVALID_ARGUMENT),
        ("", "alice", "customer", grpc.StatusCode.INVALID_ARGUMENT),
        (ORDER, "bea", "baker", grpc.StatusCode.PERMISSION_DENIED),
    ]:
        with pytest.raises(Aborted) as refused:
            await ask(order_id, subject, role)
        assert refused.value.code == code, (order_id, subject, refused.value)
