"""Domain events on the wire: names, AMQP topology, envelope."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import aio_pika
from aio_pika.abc import AbstractChannel, AbstractExchange, AbstractIncomingMessage
from google.protobuf.message import Message
from google.protobuf.unknown_fields import UnknownFieldSet

from bread.events.v1 import events_pb2

# Every domain event message, by its full protobuf name; that name is the
# routing key and the AMQP "type".
EVENT_TYPES: dict[str, type[Message]] = {
    descriptor.full_name: getattr(events_pb2, name)
    for name, descriptor in events_pb2.DESCRIPTOR.message_types_by_name.items()
}

CONTENT_TYPE = "application/x-protobuf"
# A quorum queue dead-letters a message redelivered this often: the backstop
# for a message that crashes its consumer before it can dead-letter it itself
# (consumers retry failures in place and never requeue them).
DELIVERY_LIMIT = 10
# How long the replayable event log keeps events.
LOG_RETENTION_DAYS = 7
LOG_RETENTION = f"{LOG_RETENTION_DAYS}D"
# The event's creation time in microseconds since the epoch: the AMQP timestamp has whole
# seconds only, too coarse for the lag from an event's creation to its consumers.
CREATED_HEADER = "x-created-us"


def event_type(message: Message | type[Message]) -> str:
    return message.DESCRIPTOR.full_name


@dataclass(frozen=True)
class Topology:
    """Names of the exchanges and queues for one event exchange."""

    exchange: str

    @property
    def dead_letter_exchange(self) -> str:
        return f"{self.exchange}.dlx"

    @property
    def log_stream(self) -> str:
        return f"{self.exchange}.log"

    @staticmethod
    def dead_letter_queue(queue: str) -> str:
        return f"{queue}.dlq"


async def declare_exchange(channel: AbstractChannel, topology: Topology) -> AbstractExchange:
    """The event exchange and the stream that keeps every event for replay.

    Producers declare both before they publish, so no event is published
    before the log can hold it.
    """
    exchange = await channel.declare_exchange(
        topology.exchange, aio_pika.ExchangeType.TOPIC, durable=True
    )
    log = await declare_log_stream(channel, topology)
    await log.bind(exchange, routing_key="#")
    return exchange


async def declare_log_stream(
    channel: AbstractChannel, topology: Topology
) -> aio_pika.abc.AbstractQueue:
    """The stream that keeps every event for LOG_RETENTION (a replayable log).

    Reading a stream needs a prefetch (basic.qos) and takes an offset
    (x-stream-offset: "first", "next", ...) as a consumer argument.
    """
    return await channel.declare_queue(
        topology.log_stream,
        durable=True,
        arguments={"x-queue-type": "stream", "x-max-age": LOG_RETENTION},
    )


async def declare_service_queue(
    channel: AbstractChannel, topology: Topology, queue: str, event_types: list[str]
) -> aio_pika.abc.AbstractQueue:
    """A service's durable quorum queue, bound to the events it handles, with its DLQ."""
    exchange = await declare_exchange(channel, topology)
    dlx = await channel.declare_exchange(
        topology.dead_letter_exchange, aio_pika.ExchangeType.DIRECT, durable=True
    )
    dlq_name = topology.dead_letter_queue(queue)
    dlq = await channel.declare_queue(dlq_name, durable=True, arguments={"x-queue-type": "quorum"})
    await dlq.bind(dlx, routing_key=dlq_name)
    service_queue = await channel.declare_queue(
        queue,
        durable=True,
        arguments={
            "x-queue-type": "quorum",
            "x-delivery-limit": DELIVERY_LIMIT,
            "x-dead-letter-exchange": topology.dead_letter_exchange,
            "x-dead-letter-routing-key": dlq_name,
            # Keep a dead-lettered message until the DLQ has confirmed it.
            "x-dead-letter-strategy": "at-least-once",
            "x-overflow": "reject-publish",
        },
    )
    for name in event_types:
        await service_queue.bind(exchange, routing_key=name)
    return service_queue


def new_event_id() -> str:
    return str(uuid.uuid4())


def to_amqp(
    event_id: str,
    type_name: str,
    correlation_id: str,
    payload: bytes,
    created: datetime,
    source: str = "",
) -> aio_pika.Message:
    # Stored times are naive UTC.
    created = created.replace(tzinfo=UTC)
    return aio_pika.Message(
        body=payload,
        headers={CREATED_HEADER: round(created.timestamp() * 1_000_000)},
        message_id=event_id,
        # The emitting service, for the order timeline.
        app_id=source or None,
        type=type_name,
        correlation_id=correlation_id,
        timestamp=created,
        content_type=CONTENT_TYPE,
        delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
    )


def republished(incoming: AbstractIncomingMessage, headers: dict[str, Any]) -> aio_pika.Message:
    """A delivered event as a new persistent message with these headers: the same id, type,
    correlation and time, for the dead-letter queue or back to its queue from there."""
    return aio_pika.Message(
        body=incoming.body,
        headers=headers,
        message_id=incoming.message_id,
        app_id=incoming.app_id,
        type=incoming.type,
        correlation_id=incoming.correlation_id,
        timestamp=incoming.timestamp,
        content_type=incoming.content_type,
        delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
    )


@dataclass(frozen=True)
class ReceivedEvent:
    event_id: str
    type_name: str
    order_id: str
    message: Message
    published: datetime
    # The service that emitted it ("" if the message does not say) and the trace it belongs
    # to (the traceparent header; None when not traced).
    source: str = ""
    traceparent: str | None = None


class InvalidEvent(ValueError):
    """A delivery that is not a bread event, or one that makes no sense: consumers
    dead-letter it at once and never apply it."""


# Bigger than any real event (they are a few hundred bytes).
MAX_EVENT_BYTES = 16 * 1024
# What the fields of an event may hold: ids (UUIDs) and names as long as the columns that
# keep them, reasons as long as the services cut them. Empty ids and names make no sense.
FIELD_LIMITS = {"order_id": 36, "payment_id": 36, "customer_id": 64, "item": 64, "reason": 200}
FREE_TEXT = {"reason"}
# Counts and money are positive.
POSITIVE = {"qty", "price", "amount"}
# C0 controls and DEL; free text may have tabs and line breaks (a cancel reason).
_CONTROL = {chr(c) for c in range(32) if chr(c) not in "\t\n\r"} | {chr(127)}


def from_amqp(incoming: AbstractIncomingMessage) -> ReceivedEvent:
    """Decode a delivery; raises InvalidEvent (a ValueError) for one that is not a known
    event or makes no sense (see check_event), DecodeError for a broken payload."""
    type_name = incoming.type or ""
    cls = EVENT_TYPES.get(type_name)
    event_id = incoming.message_id or ""
    if cls is None or not event_id:
        raise InvalidEvent(f"not a bread event: type={type_name!r} id={event_id!r}")
    if len(incoming.body) > MAX_EVENT_BYTES:
        raise InvalidEvent(f"{len(incoming.body)} bytes, more than any event has")
    if incoming.exchange and incoming.routing_key != type_name:
        raise InvalidEvent(f"a {type_name} published as {incoming.routing_key!r}")
    message = cls()
    message.ParseFromString(incoming.body)
    check_event(event_id, incoming.correlation_id or "", message)
    return ReceivedEvent(
        event_id=event_id,
        type_name=type_name,
        order_id=incoming.correlation_id or "",
        message=message,
        published=_created(incoming),
        source=incoming.app_id or "",
        traceparent=_header(incoming, "traceparent"),
    )


def _created(incoming: AbstractIncomingMessage) -> datetime:
    """When the event was created: to the microsecond from CREATED_HEADER, else from the AMQP
    timestamp (events from before the header, or a publisher without it)."""
    micros = (incoming.headers or {}).get(CREATED_HEADER)
    # A forged value must not break decoding: anything but a plausible time is ignored.
    if isinstance(micros, int) and 0 < micros < 2**53:
        return datetime.fromtimestamp(micros / 1_000_000, UTC)
    return incoming.timestamp or datetime.now(UTC)


def _header(incoming: AbstractIncomingMessage, name: str) -> str | None:
    value = (incoming.headers or {}).get(name)
    if isinstance(value, bytes):
        value = value.decode("ascii", "replace")
    return value if isinstance(value, str) else None


def check_event(event_id: str, correlation_id: str, message: Message) -> None:
    """InvalidEvent unless the envelope and the payload make sense together: a sane event
    id, the order id as correlation id, no fields of another message (a payload of another
    type), ids and names present, printable and not too long, positive counts and money."""
    name = message.DESCRIPTOR.name
    if len(event_id) > 36 or not event_id.isprintable():
        raise InvalidEvent(f"event id {event_id[:40]!r} is not an event id")
    if UnknownFieldSet(message):
        raise InvalidEvent(f"the payload has fields a {name} does not have")
    order_id = getattr(message, "order_id", "")
    if correlation_id != order_id:
        raise InvalidEvent(f"correlation id {correlation_id[:40]!r} is not order {order_id[:40]!r}")
    for field in message.DESCRIPTOR.fields:
        value = getattr(message, field.name)
        if field.name in FIELD_LIMITS:
            limit = FIELD_LIMITS[field.name]
            if len(value) > limit:
                raise InvalidEvent(f"{name}.{field.name} is longer than {limit} characters")
            if field.name in FREE_TEXT:
                if not _CONTROL.isdisjoint(value):
                    raise InvalidEvent(f"{name}.{field.name} has control characters")
            elif not value.strip() or not value.isprintable():
                raise InvalidEvent(f"{name}.{field.name} {value!r} is empty or unprintable")
        elif field.name in POSITIVE and value <= 0:
            raise InvalidEvent(f"{name}.{field.name} must be positive, not {value}")
