"""Idempotent event consumer: the inbox records each applied event's id.

A handler's effect, any events it records in the outbox and the inbox row are
committed in one transaction; the delivery is acked only after that commit.
A redelivered event finds its id in the inbox and is acked without effect.

Failures are told apart the way message buses do it (NServiceBus: immediate
retries, delayed retries, an error queue an operator redrives from):
- transient (the database restarts, a lock is held): the batch is retried in
  place with a growing delay for as long as it takes, still unacked, so it
  spends no delivery attempt and keeps its place in the queue;
- deterministic (a handler raises anything else): a few immediate retries,
  then the event goes to the dead-letter queue with its error;
- undecodable or senseless (servicekit.events.check_event): straight to the
  dead-letter queue.
The consumer never requeues a failing message, so poison counting does not
depend on how the broker counts redeliveries (RabbitMQ 4.3 changed what
basic.nack counts); the queue's x-delivery-limit is only the backstop for a
message that crashes its consumer process.
"""

from __future__ import annotations

import asyncio
import logging
import traceback
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

import aio_pika
import peewee
from aio_pika.abc import AbstractChannel, AbstractExchange, AbstractIncomingMessage
from google.protobuf.message import Message

from servicekit import metrics, tracing
from servicekit.clock import utcnow
from servicekit.db import Database
from servicekit.events import (
    EVENT_TYPES,
    InvalidEvent,
    ReceivedEvent,
    Topology,
    declare_service_queue,
    event_type,
    from_amqp,
    republished,
)
from servicekit.logs import order_id_var
from servicekit.sql import KeysStatement, insert
from servicekit.supervise import Backoff
from servicekit.transient import is_transient

log = logging.getLogger(__name__)

# A handler runs on the database thread inside the transaction; what it returns is ignored.
Handler = Callable[[Any, ReceivedEvent], object]
# Handlers by the event message class they handle.
Handlers = Mapping[type[Message], Handler]
# Called in the consumer's transaction with the events it applied (duplicates left out), once
# per transaction: a service's record of what it applied, in one insert (customer's timeline).
Applied = Callable[[list[ReceivedEvent]], object]

# Attempts at an event whose handler fails deterministically before it is dead-lettered.
ATTEMPTS = 3
RETRY_BACKOFF = Backoff(first=0.05, cap=5.0)


class InboxEvent(peewee.Model):
    event_id = peewee.CharField(max_length=36, primary_key=True)
    type_name = peewee.CharField(max_length=100)
    # Indexed for pruning (servicekit/pruning.py).
    applied = peewee.DateTimeField(index=True)

    class Meta:
        table_name = "inbox"


def by_type_name(handlers: Handlers) -> dict[str, Handler]:
    """Handlers keyed by routing key; refuses a class that is not a domain event,
    so a handler for a renamed or foreign message fails start-up, not silently."""
    unknown = [cls.__name__ for cls in handlers if EVENT_TYPES.get(event_type(cls)) is not cls]
    if unknown:
        raise TypeError(f"handlers for messages that are not domain events: {unknown}")
    return {event_type(cls): handler for cls, handler in handlers.items()}


_RECORD = insert(InboxEvent)
_FIND = KeysStatement(
    InboxEvent,
    lambda s, ids: InboxEvent.select(InboxEvent.event_id).where(InboxEvent.event_id.in_(ids)),
)


def apply_once(event: ReceivedEvent, handlers: Mapping[str, Handler]) -> bool:
    """Apply an event unless the inbox has it; call inside a transaction."""
    return bool(apply_new([event], handlers))


def apply_new(
    events: Sequence[ReceivedEvent], handlers: Mapping[str, Handler]
) -> list[ReceivedEvent]:
    """Apply, in order, the events the inbox does not have yet (one query finds
    them all); returns those it applied. Call inside a transaction."""
    found = _FIND.run([event.event_id for event in events])
    seen = {event_id for (event_id,) in found.fetchall()}
    now = utcnow()
    applied = []
    for event in events:
        if event.event_id in seen:
            log.info("skipping duplicate %s %s", event.type_name, event.event_id)
            continue
        seen.add(event.event_id)
        _RECORD.run(event_id=event.event_id, type_name=event.type_name, applied=now)
        handler = handlers.get(event.type_name)
        if handler is not None:
            with tracing.consumer_span(
                event.traceparent, event.type_name, event.event_id, event.order_id
            ):
                handler(event.message, event)
        applied.append(event)
    return applied


class Consumer:
    """Applies a queue's deliveries in order, a batch per database transaction.

    Batching is what makes consuming cheap: one transaction and one hop to the
    database thread for up to BATCH events instead of one each. A batch that
    fails deterministically is applied again one event at a time, so one bad
    event cannot hold back the others.

    One Consumer lives as long as the service; each broker session attaches it
    to a new channel and detaches it when the connection is lost (unacked
    deliveries then come back from the broker and the inbox drops repeats).
    """

    PREFETCH = 256
    BATCH = 128

    def __init__(
        self,
        db: Database,
        topology: Topology,
        queue: str,
        handlers: Handlers,
        on_applied: Applied | None = None,
    ) -> None:
        self.db = db
        self.topology = topology
        self.queue_name = queue
        self.handlers = by_type_name(handlers)
        self.on_applied = on_applied
        self._dead_letters: AbstractExchange | None = None
        self._queue: aio_pika.abc.AbstractQueue | None = None
        self._consumer_tag: str | None = None
        self._deliveries: asyncio.Queue[AbstractIncomingMessage] = asyncio.Queue()
        self._worker: asyncio.Task[None] | None = None
        # Whether every delivery taken so far on this channel was acked or
        # dead-lettered in turn (a batch that failed to apply leaves some unacked).
        self._settled_in_order = True

    async def attach(self, channel: AbstractChannel, dead_letters: AbstractExchange) -> None:
        """Start consuming on channel; dead letters are published through dead_letters,
        an exchange on a channel with publisher confirms."""
        await channel.set_qos(prefetch_count=self.PREFETCH)
        self._queue = await declare_service_queue(
            channel, self.topology, self.queue_name, sorted(self.handlers)
        )
        self._dead_letters = dead_letters
        self._deliveries = asyncio.Queue()
        self._settled_in_order = True
        self._worker = asyncio.create_task(self._work())
        self._consumer_tag = await self._queue.consume(self._deliveries.put)

    def detach(self) -> None:
        """The channel is gone: drop what it delivered (the broker redelivers it)."""
        self._consumer_tag = None
        if self._worker is not None:
            self._worker.cancel()
            self._worker = None

    async def stop(self) -> None:
        """Stop taking deliveries and apply the ones already received."""
        if self._queue is not None and self._consumer_tag is not None:
            tag, self._consumer_tag = self._consumer_tag, None
            try:
                await self._queue.cancel(tag)
            except aio_pika.exceptions.AMQPError as exc:
                log.warning("could not cancel consumer: %r", exc)
        if self._worker is not None:
            await self._deliveries.join()
            self.detach()

    async def _work(self) -> None:
        while True:
            batch = [await self._deliveries.get()]
            while len(batch) < self.BATCH and not self._deliveries.empty():
                batch.append(self._deliveries.get_nowait())
            try:
                await self._apply(batch)
            except Exception:  # the worker must outlive any one batch
                log.exception("applying %d deliveries failed; they will be redelivered", len(batch))
                self._settled_in_order = False
            finally:
                for _ in batch:
                    self._deliveries.task_done()

    async def _apply(self, batch: list[AbstractIncomingMessage]) -> None:
        events: list[tuple[AbstractIncomingMessage, ReceivedEvent]] = []
        for incoming in batch:
            # Undecodable, senseless (see events.check_event) or not for this queue: no
            # retry changes that, so it is dead-lettered at once and never applied.
            try:
                event = from_amqp(incoming)
                if event.type_name not in self.handlers:
                    raise InvalidEvent(f"{self.queue_name} takes no {event.type_name}")
                events.append((incoming, event))
            except Exception as exc:
                await self._dead_letter(incoming, exc)
        if not events:
            return
        if len(events) > 1:
            try:
                await self._commit([event for _, event in events])
            except Exception:
                # Someone in the batch fails deterministically: find out who, one by one.
                for incoming, event in events:
                    await self._apply_one(incoming, event)
                return
            await self._ack_batch([incoming for incoming, _ in events])
            for _, event in events:
                _consumed(event)
            return
        await self._apply_one(*events[0])

    async def _ack_batch(self, deliveries: list[AbstractIncomingMessage]) -> None:
        """Ack a committed batch: with one frame while every earlier delivery on
        this channel is settled (then acking up to the last acks exactly these)."""
        if self._settled_in_order:
            await deliveries[-1].ack(multiple=True)
            return
        for incoming in deliveries:
            await incoming.ack()

    async def _apply_one(self, incoming: AbstractIncomingMessage, event: ReceivedEvent) -> None:
        order_id_var.set(event.order_id)
        for attempt in range(1, ATTEMPTS + 1):
            try:
                await self._commit([event])
            except Exception as exc:
                if attempt == ATTEMPTS:
                    await self._dead_letter(incoming, exc)
                    return
                log.warning("event %s failed (attempt %d): %r", event.event_id, attempt, exc)
                metrics.EVENTS_RETRIED.labels(event.type_name, "failed").inc()
                await asyncio.sleep(RETRY_BACKOFF.delay(attempt))
            else:
                await incoming.ack()
                _consumed(event)
                return

    async def _commit(self, events: list[ReceivedEvent]) -> None:
        """One transaction for events; transient failures are waited out, not counted."""
        attempt = 0
        while True:
            try:
                await self.db.transaction(self._apply_all, events)
                return
            except Exception as exc:
                if not is_transient(exc):
                    raise
                attempt += 1
                log.warning("waiting to apply %d events: %r", len(events), exc)
                for event in events:
                    metrics.EVENTS_RETRIED.labels(event.type_name, "transient").inc()
                await asyncio.sleep(RETRY_BACKOFF.delay(attempt))

    def _apply_all(self, events: list[ReceivedEvent]) -> None:
        applied = apply_new(events, self.handlers)
        if applied and self.on_applied is not None:
            self.on_applied(applied)

    async def _dead_letter(self, incoming: AbstractIncomingMessage, exc: Exception) -> None:
        """Park the message in the dead-letter queue with its error, then ack it.
        The publish is confirmed before the ack, so a crash in between keeps it."""
        log.error("dead-lettering event %s: %r", incoming.message_id, exc)
        assert self._dead_letters is not None
        dead = republished(
            incoming,
            {
                **(incoming.headers or {}),
                "x-error": repr(exc)[:1000],
                "x-error-trace": "".join(traceback.format_exception(exc))[-4000:],
                "x-original-queue": self.queue_name,
            },
        )
        await self._dead_letters.publish(
            dead, routing_key=self.topology.dead_letter_queue(self.queue_name)
        )
        await incoming.ack()
        metrics.EVENTS_DEAD_LETTERED.labels(metrics.event_label(incoming.type)).inc()


def _consumed(event: ReceivedEvent) -> None:
    metrics.CONSUMED_BY_TYPE[event.type_name].inc()
    # Received times are UTC; a naive one (a test's) is taken as UTC too.
    published = event.published.replace(tzinfo=event.published.tzinfo or UTC)
    lag = (datetime.now(UTC) - published).total_seconds()
    metrics.LAG_BY_TYPE[event.type_name].observe(max(lag, 0.0))
