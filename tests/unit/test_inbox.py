"""The inbox consumer with a fake channel and dead-letter exchange: an event is applied
once, a batch is one transaction, a deterministic failure gets 3 attempts and then the
dead-letter queue (with its error, confirmed before the ack), a transient one is waited
out without spending attempts, and an undecodable delivery is dead-lettered at once."""

from __future__ import annotations

import logging
import pathlib
from collections.abc import AsyncIterator, Callable
from typing import Any

import peewee
import pytest
from google.protobuf.message import Message

from bread.events.v1 import events_pb2 as ev
from servicekit import inbox
from servicekit.db import Database
from servicekit.events import Topology
from servicekit.inbox import Consumer, InboxEvent, apply_once
from servicekit.supervise import Backoff
from tests.unit.fakes import FakeChannel, FakeExchange, FakeIncoming, incoming, received

QUEUE = "test.q"


class Applied(peewee.Model):
    """What the test handlers do: one row per applied event."""

    id = peewee.AutoField()
    order_id = peewee.CharField()
    type_name = peewee.CharField()


class Handlers:
    """OrderPlaced is applied; BakeryRejected with reason "poison" always fails; one with
    reason "flaky" fails transiently (`transient`, the database away) `flaky_times` times
    first."""

    def __init__(self) -> None:
        self.calls: list[str] = []
        self.flaky_times = 5
        self.transient: Callable[[], Exception] = lambda: peewee.OperationalError("locked")

    def table(self) -> dict[type[Message], Callable[[Any, Any], object]]:
        return {ev.OrderPlaced: self.apply, ev.BakeryRejected: self.apply}

    def apply(self, event: Any, _: object) -> None:
        self.calls.append(event.order_id)
        Applied.create(order_id=event.order_id, type_name=type(event).__name__)
        if getattr(event, "reason", "") == "poison":
            raise ValueError(f"cannot apply {event.order_id}")
        if getattr(event, "reason", "") == "flaky" and self.flaky_times > 0:
            self.flaky_times -= 1
            raise self.transient()


@pytest.fixture(autouse=True)
def fast_retries(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(inbox, "RETRY_BACKOFF", Backoff(first=0.001, cap=0.002))


@pytest.fixture
async def db(request: pytest.FixtureRequest, tmp_path: pathlib.Path) -> AsyncIterator[Database]:
    # In memory unless a test asks for a file (parametrize "db" with "file", indirect): on
    # an OperationalError the Database drops its connection (the server may have gone
    # away), and an in-memory database goes with it.
    where = f"{tmp_path}/inbox.db" if getattr(request, "param", "") == "file" else ":memory:"
    database = Database(f"sqlite:///{where}", [Applied, InboxEvent])
    await database.connect()
    yield database
    await database.close()


@pytest.fixture
def handlers() -> Handlers:
    return Handlers()


class Broker:
    """The consumer attached to a fake channel, with a journal of publishes and acks."""

    def __init__(self, db: Database, handlers: Handlers) -> None:
        self.journal: list[str] = []
        self.channel = FakeChannel()
        self.dead_letters = FakeExchange("test.events.dlx", self.journal)
        self.consumer = Consumer(db, Topology("test.events"), QUEUE, handlers.table())
        self.transactions = 0
        self.outage = 0  # transactions still to fail as if the database were away
        real = db.transaction

        async def counted(*args: Any) -> Any:
            self.transactions += 1
            if self.outage > 0:
                self.outage -= 1
                raise peewee.OperationalError("could not connect to server")
            return await real(*args)

        db.transaction = counted  # type: ignore[method-assign,assignment]

    async def deliver(self, *messages: Message | FakeIncoming) -> list[FakeIncoming]:
        """Deliver messages (as one batch: nothing runs in between) and wait until each
        is settled."""
        deliveries = [
            m if isinstance(m, FakeIncoming) else incoming(m, journal=self.journal)
            for m in messages
        ]
        for delivery in deliveries:
            delivery.journal = self.journal
        await self.channel.put(QUEUE, *deliveries)
        await self.consumer._deliveries.join()
        return deliveries


@pytest.fixture
async def broker(db: Database, handlers: Handlers) -> AsyncIterator[Broker]:
    attached = Broker(db, handlers)
    await attached.consumer.attach(attached.channel.typed(), attached.dead_letters.typed())
    yield attached
    await attached.consumer.stop()


async def applied(db: Database) -> list[str]:
    return await db.run(lambda: [a.order_id for a in Applied.select().order_by(Applied.id)])


async def inbox_ids(db: Database) -> set[str]:
    return await db.run(lambda: {i.event_id for i in InboxEvent.select()})


def placed(order_id: str) -> ev.OrderPlaced:
    return ev.OrderPlaced(
        order_id=order_id, customer_id="c1", item="cake", qty=1, price=25000, payment_id="p1"
    )


# ------------------------------------------------------------------------------ apply_once


async def test_apply_once_applies_an_event_once(db: Database, handlers: Handlers) -> None:
    table = inbox.by_type_name(handlers.table())
    event = received(placed("o1"), event_id="e1")
    assert await db.transaction(apply_once, event, table)
    assert not await db.transaction(apply_once, event, table)
    assert handlers.calls == ["o1"]
    assert await inbox_ids(db) == {"e1"}


async def test_an_event_without_a_handler_is_recorded_and_skipped(
    db: Database, handlers: Handlers
) -> None:
    table = inbox.by_type_name(handlers.table())
    assert await db.transaction(apply_once, received(ev.OrderDelivered(order_id="o1"), "e2"), table)
    assert handlers.calls == [] and await inbox_ids(db) == {"e2"}


async def test_a_failing_handler_leaves_no_inbox_row(db: Database, handlers: Handlers) -> None:
    table = inbox.by_type_name(handlers.table())
    poison = received(ev.BakeryRejected(order_id="o1", reason="poison"), "e3")
    with pytest.raises(ValueError):
        await db.transaction(apply_once, poison, table)
    assert await inbox_ids(db) == set() and await applied(db) == []


# ------------------------------------------------------------------------------ the consumer


async def test_the_queue_is_bound_to_the_handled_events_with_a_dead_letter_queue(
    broker: Broker,
) -> None:
    queue = broker.channel.queues[QUEUE]
    assert queue.bindings == ["bread.events.v1.BakeryRejected", "bread.events.v1.OrderPlaced"]
    assert queue.arguments["x-dead-letter-routing-key"] == f"{QUEUE}.dlq"
    assert broker.channel.queues[f"{QUEUE}.dlq"].bindings == [f"{QUEUE}.dlq"]


async def test_a_batch_is_applied_in_one_transaction_then_acked(
    broker: Broker, db: Database
) -> None:
    deliveries = await broker.deliver(*(placed(f"o{n}") for n in range(5)))
    assert broker.transactions == 1
    assert await applied(db) == [f"o{n}" for n in range(5)]
    assert [d.acks for d in deliveries] == [1] * 5
    assert await inbox_ids(db) == {d.message_id for d in deliveries}
    assert broker.dead_letters.published == []


async def test_a_redelivery_is_acked_and_skipped(broker: Broker, db: Database) -> None:
    [first] = await broker.deliver(placed("o1"))
    again = incoming(placed("o1"), event_id=first.message_id or "")
    same_batch = incoming(placed("o1"), event_id=first.message_id or "")
    await broker.deliver(again)
    await broker.deliver(placed("o2"), same_batch)
    assert await applied(db) == ["o1", "o2"]
    assert (first.acks, again.acks, same_batch.acks) == (1, 1, 1)


async def test_a_poison_event_gets_three_attempts_then_the_dead_letter_queue(
    broker: Broker, db: Database, handlers: Handlers
) -> None:
    poison = incoming(ev.BakeryRejected(order_id="bad", reason="poison"))
    poison.headers = {"x-seen-by": "test"}
    good_before, _, good_after = await broker.deliver(placed("o1"), poison, placed("o2"))
    # The batch failed as a whole, then each event alone; the bad one three times.
    assert handlers.calls.count("bad") == 1 + inbox.ATTEMPTS
    assert await applied(db) == ["o1", "o2"]
    assert (good_before.acks, poison.acks, good_after.acks) == (1, 1, 1)
    assert poison.message_id not in await inbox_ids(db)
    [(dead, routing_key)] = broker.dead_letters.published
    assert routing_key == f"{QUEUE}.dlq"
    assert dead.body == poison.body
    assert (dead.message_id, dead.type, dead.correlation_id, dead.content_type) == (
        poison.message_id,
        poison.type,
        "bad",
        poison.content_type,
    )
    assert dead.headers["x-error"] == "ValueError('cannot apply bad')"
    assert "ValueError: cannot apply bad" in str(dead.headers["x-error-trace"])
    assert dead.headers["x-original-queue"] == QUEUE
    assert dead.headers["x-seen-by"] == "test"
    # Parked before it is acked: a crash in between keeps the message.
    dead_at = broker.journal.index(f"publish {poison.message_id} to {QUEUE}.dlq")
    assert broker.journal.index(f"ack {poison.message_id}") > dead_at


async def test_a_lone_poison_event_is_tried_three_times(broker: Broker, handlers: Handlers) -> None:
    [poison] = await broker.deliver(ev.BakeryRejected(order_id="bad", reason="poison"))
    assert handlers.calls == ["bad"] * inbox.ATTEMPTS
    assert poison.acks == 1 and len(broker.dead_letters.published) == 1


@pytest.mark.parametrize("db", ["file"], indirect=True)
async def test_a_transient_failure_is_waited_out_without_dead_lettering(
    broker: Broker, db: Database, handlers: Handlers
) -> None:
    handlers.flaky_times = inbox.ATTEMPTS + 2  # more failures than attempts: none is spent
    good, flaky = await broker.deliver(
        placed("o1"), ev.BakeryRejected(order_id="flaky", reason="flaky")
    )
    assert broker.dead_letters.published == []
    assert (good.acks, flaky.acks) == (1, 1)
    # The whole batch was retried in place, in order, and applied once.
    assert await applied(db) == ["o1", "flaky"]
    assert broker.transactions == inbox.ATTEMPTS + 3


@pytest.mark.parametrize("db", ["file"], indirect=True)
async def test_a_transient_failure_while_finding_the_poison_spends_no_attempt(
    broker: Broker, db: Database, handlers: Handlers
) -> None:
    handlers.flaky_times = inbox.ATTEMPTS + 2
    poison, flaky = await broker.deliver(
        ev.BakeryRejected(order_id="bad", reason="poison"),
        ev.BakeryRejected(order_id="flaky", reason="flaky"),
    )
    # One by one, the flaky event is waited out in place and applied; only the poison
    # is dead-lettered.
    assert [dead.message_id for dead, _ in broker.dead_letters.published] == [poison.message_id]
    assert (poison.acks, flaky.acks) == (1, 1)
    assert await applied(db) == ["flaky"]
    assert flaky.message_id in await inbox_ids(db)


async def test_an_event_the_queue_does_not_take_is_dead_lettered_at_once(
    broker: Broker, db: Database, handlers: Handlers
) -> None:
    stray, good = await broker.deliver(ev.OrderDelivered(order_id="o1"), placed("o2"))
    [(dead, _)] = broker.dead_letters.published
    assert dead.message_id == stray.message_id
    assert "test.q takes no bread.events.v1.OrderDelivered" in str(dead.headers["x-error"])
    assert (stray.acks, good.acks) == (1, 1)
    assert handlers.calls == ["o2"] and stray.message_id not in await inbox_ids(db)


@pytest.mark.parametrize(
    "broken",
    [
        FakeIncoming(body=b"", message_id="e1", type="bread.events.v1.NoSuchEvent"),
        FakeIncoming(body=b"", message_id="e2", type=None),
        FakeIncoming(body=placed("o9").SerializeToString(), message_id=None, type="x"),
        FakeIncoming(body=b"\xff\xff\xff", message_id="e3", type="bread.events.v1.OrderPlaced"),
    ],
    ids=["unknown type", "no type", "no id", "broken payload"],
)
async def test_an_undecodable_delivery_is_dead_lettered_at_once(
    broker: Broker, db: Database, handlers: Handlers, broken: FakeIncoming
) -> None:
    broken.acks = 0
    _, good = await broker.deliver(broken, placed("o1"))
    assert [routing_key for _, routing_key in broker.dead_letters.published] == [f"{QUEUE}.dlq"]
    [(dead, _)] = broker.dead_letters.published
    assert dead.body == broken.body and "x-error" in dead.headers
    assert (broken.acks, good.acks) == (1, 1)
    assert handlers.calls == ["o1"] and broker.transactions == 1


async def test_a_dead_letter_that_cannot_be_parked_is_not_acked(
    broker: Broker, handlers: Handlers
) -> None:
    broker.dead_letters.error = ConnectionResetError("broker went away")
    [poison] = await broker.deliver(ev.BakeryRejected(order_id="bad", reason="poison"))
    assert poison.acks == 0  # the broker redelivers it once the session is back
    assert broker.dead_letters.published == []


async def test_a_batch_after_an_unsettled_delivery_is_acked_one_by_one(
    broker: Broker, handlers: Handlers
) -> None:
    """A batch is acked with one frame (ack up to its last delivery) only while every
    earlier delivery is settled: one left unacked must stay so, for the broker to redeliver."""
    broker.dead_letters.error = ConnectionResetError("broker went away")
    [poison] = await broker.deliver(ev.BakeryRejected(order_id="bad", reason="poison"))
    broker.dead_letters.error = None
    later = await broker.deliver(placed("o1"), placed("o2"))
    assert poison.acks == 0
    assert [d.acks for d in later] == [1, 1]


async def test_a_long_database_outage_spends_no_attempt(
    broker: Broker, db: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(inbox, "RETRY_BACKOFF", Backoff(first=1e-9, cap=1e-9))
    quiet = logging.getLogger("servicekit.inbox")
    monkeypatch.setattr(quiet, "level", logging.CRITICAL)  # not 1,100 warnings
    broker.outage = 1100
    tries: list[int] = []
    real_commit = broker.consumer._commit

    async def commit(events: list[Any]) -> None:
        tries.append(len(events))
        await real_commit(events)

    monkeypatch.setattr(broker.consumer, "_commit", commit)
    [event] = await broker.deliver(placed("o1"))
    assert event.acks == 1 and broker.dead_letters.published == []
    assert await applied(db) == ["o1"]
    assert tries == [1]  # one attempt, however long it waited
