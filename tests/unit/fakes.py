"""Small fakes for the fast tests: pay, the broker's deliveries and exchanges, and a
service's database kept in memory the way a service has it (one thread owns the
connection, so an in-memory SQLite database lives exactly as long as the Database).

Read rows through `db.run`: a query on the test's own thread would open a second,
empty in-memory database.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, cast

import aio_pika
import grpc
import peewee
import pytest
from aio_pika.abc import AbstractChannel, AbstractExchange
from google.protobuf.message import Message

from bread.pay.v1 import pay_pb2
from order_svc.pay_client import PayClient, PaymentFailed
from servicekit.db import Database
from servicekit.events import CONTENT_TYPE, EVENT_TYPES, ReceivedEvent, event_type, new_event_id
from servicekit.inbox import Handlers, InboxEvent, apply_once, by_type_name
from servicekit.outbox import OutboxEvent

T0 = datetime(2026, 1, 1, 12, 0, 0)


async def memory_database(models: Sequence[type[peewee.Model]]) -> Database:
    """A service's Database on SQLite in memory, with the outbox and inbox tables."""
    db = Database("sqlite:///:memory:", [*models, OutboxEvent, InboxEvent])
    await db.connect()
    return db


def database_of(*models: type[peewee.Model]) -> Any:
    """A pytest fixture: a fresh memory_database of a service's models per test."""

    @pytest.fixture
    async def database() -> AsyncIterator[Database]:
        db = await memory_database(models)
        yield db
        await db.close()

    return database


async def recorded(db: Database) -> list[Message]:
    """The events in the outbox, oldest first, decoded; each is filed under its order."""

    def read() -> list[tuple[str, bytes, str]]:
        rows = OutboxEvent.select().order_by(OutboxEvent.id)
        return [(row.type_name, bytes(row.payload), row.order_id) for row in rows]

    events = []
    for type_name, payload, order_id in await db.run(read):
        message = EVENT_TYPES[type_name]()
        message.ParseFromString(payload)
        assert getattr(message, "order_id", None) == order_id, (type_name, order_id)
        events.append(message)
    return events


def received(message: Message, event_id: str = "") -> ReceivedEvent:
    """message as a consumer receives it (correlated by its order id)."""
    return ReceivedEvent(
        event_id=event_id or new_event_id(),
        type_name=event_type(message),
        order_id=getattr(message, "order_id", ""),
        message=message,
        published=T0,
    )


async def deliver(db: Database, handlers: Handlers, message: Message, event_id: str = "") -> bool:
    """Apply one event the way the consumer does: through the inbox, in one transaction."""
    return await db.transaction(apply_once, received(message, event_id), by_type_name(handlers))


async def eventually(check: Callable[[], Awaitable[object]], seconds: float = 2.0) -> None:
    """Wait until check() answers something true; fail after `seconds`."""
    for _ in range(int(seconds / 0.005)):
        if await check():
            return
        await asyncio.sleep(0.005)
    raise AssertionError(f"still not so after {seconds} s: {check}")


class FakePay(PayClient):
    """PayClient without a network: approves, or raises the PaymentFailed it is given;
    `hold` keeps calls waiting (a slow pay) until it is set."""

    def __init__(self, timeout: float = 1.0) -> None:
        self.timeout = timeout
        self.calls: list[tuple[str, str, int]] = []
        self.failure: PaymentFailed | None = None
        self.hold: asyncio.Event | None = None

    def fail(self, code: grpc.StatusCode, details: str = "") -> None:
        self.failure = PaymentFailed(code, details or f"pay says {code.name}")

    async def pay(self, order_id: str, customer_id: str, amount: int) -> pay_pb2.Payment:
        self.calls.append((order_id, customer_id, amount))
        if self.hold is not None:
            await self.hold.wait()
        if self.failure is not None:
            raise self.failure
        return pay_pb2.Payment(
            id=f"pay-{order_id}",
            order_id=order_id,
            customer_id=customer_id,
            amount=amount,
            status=pay_pb2.PaymentStatus.PAYMENT_STATUS_APPROVED,
        )


@dataclass
class FakeIncoming:
    """What the consumer uses of aio-pika's incoming message."""

    body: bytes
    message_id: str | None
    type: str | None
    correlation_id: str | None = None
    headers: dict[str, Any] = field(default_factory=dict)
    # The emitting service (to_amqp sets it).
    app_id: str | None = None
    timestamp: datetime | None = T0
    content_type: str | None = CONTENT_TYPE
    # Where the broker says it came from: "" for the default exchange (a redrive).
    exchange: str = "bread.events"
    routing_key: str | None = None
    journal: list[str] = field(default_factory=list)
    acks: int = 0
    # The channel that delivered it (FakeChannel.put), for acks of several at once.
    earlier: list[FakeIncoming] = field(default_factory=list, repr=False)

    async def ack(self, multiple: bool = False) -> None:
        """Acks this delivery; with multiple, also every earlier one of its channel
        not acked yet, as AMQP's basic.ack does."""
        for delivery in [*self.earlier, self] if multiple else [self]:
            if delivery is self or not delivery.acks:
                delivery.acks += 1
                delivery.journal.append(f"ack {delivery.message_id}")


def incoming(
    message: Message, event_id: str = "", journal: list[str] | None = None
) -> FakeIncoming:
    """message as the relay publishes it (to_amqp's properties)."""
    return FakeIncoming(
        body=message.SerializeToString(),
        message_id=event_id or new_event_id(),
        type=event_type(message),
        routing_key=event_type(message),
        correlation_id=getattr(message, "order_id", ""),
        journal=journal if journal is not None else [],
    )


class FakeExchange:
    """An exchange whose publish is confirmed at once (or raises `error`); keeps what it got."""

    def __init__(self, name: str = "", journal: list[str] | None = None) -> None:
        self.name = name
        self.journal = journal if journal is not None else []
        self.published: list[tuple[aio_pika.Message, str]] = []
        self.error: BaseException | None = None

    async def publish(self, message: aio_pika.Message, routing_key: str, **_: Any) -> None:
        if self.error is not None:
            raise self.error
        self.published.append((message, routing_key))
        self.journal.append(f"publish {message.message_id} to {routing_key}")

    def typed(self) -> AbstractExchange:
        return cast(AbstractExchange, self)


class FakeQueue:
    def __init__(self, name: str, arguments: dict[str, Any] | None) -> None:
        self.name = name
        self.arguments = arguments or {}
        self.bindings: list[str] = []
        self.callback: Any = None

    async def bind(self, exchange: Any, routing_key: str) -> None:
        self.bindings.append(routing_key)

    async def consume(self, callback: Any) -> str:
        self.callback = callback
        return "consumer-tag"

    async def cancel(self, tag: str) -> None:
        self.callback = None


class FakeChannel:
    """Enough of a channel for Consumer.attach: qos, exchanges, queues, a consumer."""

    def __init__(self) -> None:
        self.queues: dict[str, FakeQueue] = {}
        self.exchanges: dict[str, FakeExchange] = {}
        self.delivered: list[FakeIncoming] = []

    async def set_qos(self, prefetch_count: int) -> None:
        pass

    async def declare_exchange(self, name: str, *_: Any, **__: Any) -> FakeExchange:
        return self.exchanges.setdefault(name, FakeExchange(name))

    async def declare_queue(
        self, name: str, durable: bool = False, arguments: dict[str, Any] | None = None
    ) -> FakeQueue:
        return self.queues.setdefault(name, FakeQueue(name, arguments))

    def typed(self) -> AbstractChannel:
        return cast(AbstractChannel, self)

    async def put(self, queue: str, *deliveries: FakeIncoming) -> None:
        """The broker delivers to the queue's consumer."""
        for delivery in deliveries:
            delivery.earlier = list(self.delivered)
            self.delivered.append(delivery)
            await self.queues[queue].callback(delivery)


class Aborted(Exception):
    """What FakeContext.abort raises (grpc.aio's raises AbortError after sending the status)."""

    def __init__(self, code: grpc.StatusCode, details: str) -> None:
        super().__init__(f"{code.name}: {details}")
        self.code = code
        self.details = details


class FakeContext:
    """A servicer context carrying the identity Envoy forwards, and any other headers."""

    def __init__(self, subject: str = "", role: str = "", **headers: str) -> None:
        metadata = {"x-bread-subject": subject, "x-bread-role": role, **headers}
        self.metadata = tuple((k, v) for k, v in metadata.items() if v)

    def invocation_metadata(self) -> tuple[tuple[str, str], ...]:
        return self.metadata

    async def abort(self, code: grpc.StatusCode, details: str = "") -> None:
        raise Aborted(code, details)

    def typed(self) -> grpc.aio.ServicerContext:
        return cast(grpc.aio.ServicerContext, self)
