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
    PREFETCH = 64

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
        self._in_flight = 0
        self._idle = asyncio.Event()
        self._idle.set()

    @property
    def running(self) -> bool:
        return self._consumer_tag is not None

    async def start(self, channel: AbstractChannel) -> None:
        await channel.set_qos(prefetch_count=self.PREFETCH)
        self._queue = await declare_service_queue(
            channel, self.topology, self.queue_name, sorted(self.handlers)
        )
        self._dead_letters = await channel.get_exchange(self.topology.dead_letter_exchange)
        self._consumer_tag = await self._queue.consume(self._on_message)

    async def stop(self) -> None:
        """Stop taking deliveries and wait for the ones being applied."""
        if self._queue is not None and self._consumer_tag is not None:
            tag, self._consumer_tag = self._consumer_tag, None
            try:
                await self._queue.cancel(tag)
            except aio_pika.exceptions.AMQPError as exc:
                log.warning("could not cancel consumer: %r", exc)
        await self._idle.wait()

    async def _on_message(self, incoming: AbstractIncomingMessage) -> None:
        self._in_flight += 1
        self._idle.clear()
        try:
            await self._handle(incoming)
        finally:
            self._in_flight -= 1
            if not self._in_flight:
                self._idle.set()

    async def _handle(self, incoming: AbstractIncomingMessage) -> None:
        order_id_var.set(incoming.correlation_id or "")
        try:
            event = from_amqp(incoming)
            await self.db.transaction(apply_once, event, self.handlers)
        except Exception as exc:
            await self._failed(incoming, exc)
            return
        await incoming.ack()

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
