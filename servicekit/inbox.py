"""Idempotent event consumer: the inbox records each applied event's id.

A handler's effect, any events it records in the outbox and the inbox row are
committed in one transaction; the delivery is acked only after that commit.
A redelivered event finds its id in the inbox and is acked without effect.
"""

from __future__ import annotations

import asyncio
import logging
import traceback
from collections.abc import Callable
from typing import Any

import aio_pika
import peewee
from aio_pika.abc import AbstractChannel, AbstractExchange, AbstractIncomingMessage

from servicekit.clock import utcnow
from servicekit.db import Database
from servicekit.events import (
    MAX_ATTEMPTS,
    ReceivedEvent,
    Topology,
    declare_service_queue,
    from_amqp,
)
from servicekit.logs import order_id_var

log = logging.getLogger(__name__)

# A handler runs on the database thread inside the transaction.
Handler = Callable[[Any, ReceivedEvent], None]


class InboxEvent(peewee.Model):
    event_id = peewee.CharField(max_length=36, primary_key=True)
    type_name = peewee.CharField(max_length=100)
    applied = peewee.DateTimeField()

    class Meta:
        table_name = "inbox"


def apply_once(event: ReceivedEvent, handlers: dict[str, Handler]) -> bool:
    """Apply an event unless the inbox has it; call inside a transaction."""
    if InboxEvent.get_or_none(InboxEvent.event_id == event.event_id) is not None:
        log.info("skipping duplicate %s %s", event.type_name, event.event_id)
        return False
    InboxEvent.create(event_id=event.event_id, type_name=event.type_name, applied=utcnow())
    handler = handlers.get(event.type_name)
    if handler is not None:
        handler(event.message, event)
    return True


class Consumer:
    """Applies a queue's deliveries in order, a batch per database transaction.

    Batching is what makes consuming cheap: one transaction and one hop to the
    database thread for up to BATCH events instead of one each. A batch that
    fails is applied again one event at a time, so one bad event cannot hold
    back the others.
    """

    PREFETCH = 256
    BATCH = 128

    def __init__(
        self, db: Database, topology: Topology, queue: str, handlers: dict[str, Handler]
    ) -> None:
        self.db = db
        self.topology = topology
        self.queue_name = queue
        self.handlers = handlers
        self._dead_letters: AbstractExchange | None = None
        self._consumer_tag: str | None = None
        self._queue: aio_pika.abc.AbstractQueue | None = None
        self._deliveries: asyncio.Queue[AbstractIncomingMessage] = asyncio.Queue()
        self._worker: asyncio.Task[None] | None = None

    @property
    def running(self) -> bool:
        return (
            self._consumer_tag is not None
            and self._worker is not None
            and not (self._worker.done())
        )

    async def start(self, channel: AbstractChannel) -> None:
        await channel.set_qos(prefetch_count=self.PREFETCH)
        self._queue = await declare_service_queue(
            channel, self.topology, self.queue_name, sorted(self.handlers)
        )
        self._dead_letters = await channel.get_exchange(self.topology.dead_letter_exchange)
        self._worker = asyncio.create_task(self._work())
        self._consumer_tag = await self._queue.consume(self._deliveries.put)

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
            self._worker.cancel()

    async def _work(self) -> None:
        while True:
            batch = [await self._deliveries.get()]
            while len(batch) < self.BATCH and not self._deliveries.empty():
                batch.append(self._deliveries.get_nowait())
            try:
                await self._apply(batch)
            except Exception:  # the worker must outlive any one batch
                log.exception("applying %d deliveries failed; they will be redelivered", len(batch))
            finally:
                for _ in batch:
                    self._deliveries.task_done()

    async def _apply(self, batch: list[AbstractIncomingMessage]) -> None:
        events: list[tuple[AbstractIncomingMessage, ReceivedEvent]] = []
        for incoming in batch:
            try:
                events.append((incoming, from_amqp(incoming)))
            except Exception as exc:
                await self._failed(incoming, exc)
        if not events:
            return
        try:
            await self.db.transaction(self._apply_all, [event for _, event in events])
        except Exception as exc:
            if len(events) == 1:
                order_id_var.set(events[0][1].order_id)
                await self._failed(events[0][0], exc)
            else:
                for incoming, _ in events:
                    await self._apply([incoming])
            return
        for incoming, _ in events:
            await incoming.ack()

    def _apply_all(self, events: list[ReceivedEvent]) -> None:
        for event in events:
            apply_once(event, self.handlers)

    async def _failed(self, incoming: AbstractIncomingMessage, exc: Exception) -> None:
        # Quorum queues count redeliveries in x-delivery-count.
        attempts = int(str((incoming.headers or {}).get("x-delivery-count") or 0)) + 1
        if attempts < MAX_ATTEMPTS:
            log.warning("event %s failed (attempt %d): %r", incoming.message_id, attempts, exc)
            await incoming.nack(requeue=True)
            return
        log.error("dead-lettering event %s after %d attempts", incoming.message_id, attempts)
        assert self._dead_letters is not None
        dead = aio_pika.Message(
            body=incoming.body,
            headers={
                **(incoming.headers or {}),
                "x-error": repr(exc)[:1000],
                "x-error-trace": "".join(traceback.format_exception(exc))[-4000:],
                "x-original-queue": self.queue_name,
            },
            message_id=incoming.message_id,
            type=incoming.type,
            correlation_id=incoming.correlation_id,
            timestamp=incoming.timestamp,
            content_type=incoming.content_type,
            delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
        )
        await self._dead_letters.publish(
            dead, routing_key=self.topology.dead_letter_queue(self.queue_name)
        )
        await incoming.ack()
