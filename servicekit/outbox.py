"""Transactional outbox: events are stored with the state change, then relayed.

`Outbox.record` runs inside the caller's database transaction, so an event
exists exactly when its state change does. The relay publishes stored events
with publisher confirms and deletes a row only after the broker confirmed it:
a crash or a broker outage delays events but never loses one. A crash between
confirm and delete republishes the event; consumers skip it by its id.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

import aio_pika
import peewee
from aio_pika.abc import AbstractExchange
from google.protobuf.message import Message

from servicekit.clock import utcnow
from servicekit.db import Database
from servicekit.events import event_type, new_event_id, to_amqp

log = logging.getLogger(__name__)


class OutboxEvent(peewee.Model):
    id = peewee.AutoField()
    event_id = peewee.CharField(max_length=36, unique=True)
    type_name = peewee.CharField(max_length=100)
    order_id = peewee.CharField(max_length=64)
    payload = peewee.BlobField()
    created = peewee.DateTimeField()

    class Meta:
        table_name = "outbox"


class Outbox:
    # Events per publish round; confirms for a batch are awaited together.
    BATCH = 200
    # Unsent rows are looked for this often even without a wake-up.
    POLL_SECONDS = 1.0
    RETRY_SECONDS = 1.0

    def __init__(self, db: Database) -> None:
        self.db = db
        self._wake = asyncio.Event()
        self._loop = asyncio.get_running_loop()

    def record(self, message: Message, order_id: str) -> None:
        """Store an event; call on the database thread inside the transaction."""
        OutboxEvent.create(
            event_id=new_event_id(),
            type_name=event_type(message),
            order_id=order_id,
            payload=message.SerializeToString(),
            created=utcnow(),
        )
        # The relay's next read is queued on the same database thread, behind
        # this transaction, so it sees the row once the transaction commits.
        self._loop.call_soon_threadsafe(self._wake.set)

    async def relay(self, exchange: AbstractExchange) -> None:
        """Publish stored events until cancelled."""
        while True:
            try:
                if await self.publish_batch(exchange):
                    continue
            except (TimeoutError, aio_pika.exceptions.AMQPError, ConnectionError) as exc:
                log.warning("outbox relay paused: %r", exc)
                await asyncio.sleep(self.RETRY_SECONDS)
                continue
            self._wake.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self.POLL_SECONDS)

    async def publish_batch(self, exchange: AbstractExchange) -> int:
        """Publish the oldest unsent events; returns how many were sent."""
        rows = await self.db.run(
            lambda: list(OutboxEvent.select().order_by(OutboxEvent.id).limit(self.BATCH))
        )
        if not rows:
            return 0
        # publish() returns once the broker confirmed the message.
        await asyncio.gather(
            *(
                exchange.publish(
                    to_amqp(row.event_id, row.type_name, row.order_id, row.payload, row.created),
                    routing_key=row.type_name,
                    mandatory=False,
                )
                for row in rows
            )
        )
        ids = [row.id for row in rows]
        await self.db.run(lambda: OutboxEvent.delete().where(OutboxEvent.id.in_(ids)).execute())
        return len(rows)
