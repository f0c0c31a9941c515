"""The transactional outbox and its relay, with a fake exchange: an event exists exactly
when its state change commits, is published with its envelope, deleted only after the
confirm, handed back at once when the broker fails, and published by one relay at a time."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import timedelta

import aio_pika
import pytest

from bread.events.v1 import events_pb2 as ev
from servicekit.clock import utcnow
from servicekit.db import Database
from servicekit.events import CONTENT_TYPE
from servicekit.outbox import Outbox, OutboxEvent
from tests.unit.fakes import FakeExchange, eventually, memory_database, recorded


@pytest.fixture
async def db() -> AsyncIterator[Database]:
    database = await memory_database([])
    yield database
    await database.close()


@pytest.fixture
async def outbox(db: Database) -> Outbox:
    return Outbox(db)


async def claims(db: Database) -> list[object]:
    return await db.run(lambda: [r.claimed_until for r in OutboxEvent.select()])


async def test_an_event_exists_exactly_when_its_transaction_commits(
    outbox: Outbox, db: Database
) -> None:
    await db.transaction(outbox.record, ev.BakeryAccepted(order_id="o1"), "o1")

    def fails() -> None:
        outbox.record(ev.BakeryAccepted(order_id="o2"), "o2")
        raise RuntimeError("the state change failed")

    with pytest.raises(RuntimeError):
        await db.transaction(fails)
    assert await recorded(db) == [ev.BakeryAccepted(order_id="o1")]


async def test_the_relay_publishes_in_order_with_the_envelope_then_deletes(
    outbox: Outbox, db: Database
) -> None:
    events = [ev.BakeryAccepted(order_id="o1"), ev.OrderDelivered(order_id="o1")]
    for event in events:
        await db.transaction(outbox.record, event, "o1")
    ids = await db.run(lambda: [r.event_id for r in OutboxEvent.select().order_by(OutboxEvent.id)])
    exchange = FakeExchange("bread.events")
    assert await outbox.publish_batch(exchange.typed()) == 2
    assert await outbox.publish_batch(exchange.typed()) == 0
    assert await recorded(db) == []
    sent = [message for message, _ in exchange.published]
    assert [key for _, key in exchange.published] == [
        "bread.events.v1.BakeryAccepted",
        "bread.events.v1.OrderDelivered",
    ]
    assert [m.message_id for m in sent] == ids
    assert [m.type for m in sent] == [key for _, key in exchange.published]
    assert {m.correlation_id for m in sent} == {"o1"}
    assert {m.content_type for m in sent} == {CONTENT_TYPE}
    assert {m.delivery_mode for m in sent} == {aio_pika.DeliveryMode.PERSISTENT}
    assert all(m.timestamp is not None for m in sent)
    assert [m.body for m in sent] == [e.SerializeToString() for e in events]


async def test_a_failed_publish_hands_the_rows_back_at_once(outbox: Outbox, db: Database) -> None:
    await db.transaction(outbox.record, ev.BakeryAccepted(order_id="o1"), "o1")
    broken = FakeExchange()
    broken.error = ConnectionResetError("broker went away")
    with pytest.raises(ConnectionResetError):
        await outbox.publish_batch(broken.typed())
    assert await claims(db) == [None]  # not left claimed until the lease runs out
    healthy = FakeExchange()
    assert await outbox.publish_batch(healthy.typed()) == 1


async def test_a_claimed_row_is_left_to_its_relay_until_the_lease_runs_out(
    outbox: Outbox, db: Database
) -> None:
    await db.transaction(outbox.record, ev.BakeryAccepted(order_id="o1"), "o1")
    await db.run(
        lambda: OutboxEvent.update(claimed_until=utcnow() + timedelta(seconds=5)).execute()
    )
    other_relay = FakeExchange()
    assert await outbox.publish_batch(other_relay.typed()) == 0
    await db.run(
        lambda: OutboxEvent.update(claimed_until=utcnow() - timedelta(seconds=1)).execute()
    )
    assert await outbox.publish_batch(other_relay.typed()) == 1


async def test_recording_wakes_the_relay(outbox: Outbox, db: Database) -> None:
    exchange = FakeExchange()
    relay = asyncio.create_task(outbox.relay(exchange.typed()))
    try:
        await asyncio.sleep(0.01)  # the relay found nothing and waits (up to POLL_SECONDS)
        await db.transaction(outbox.record, ev.BakeryAccepted(order_id="o1"), "o1")

        async def published() -> bool:
            return bool(exchange.published)

        await eventually(published, seconds=Outbox.POLL_SECONDS / 2)
    finally:
        relay.cancel()
