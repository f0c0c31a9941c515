"""Transactional outbox: events are stored with the state change, then relayed.

`Outbox.record` runs inside the caller's database transaction, so an event
exists exactly when its state change does. The relay publishes stored events
with publisher confirms and deletes a row only after the broker confirmed it:
a crash or a broker outage delays events but never loses one. A crash between
confirm and delete republishes the event; consumers skip it by its id.

Replicas share the table. A relay claims a batch for LEASE (on PostgreSQL and
MariaDB with `FOR UPDATE SKIP LOCKED`, so two relays never claim one row),
which makes an event published once in normal operation; a relay that died
holding a claim leaves rows that another takes over when the lease runs out.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Iterable
from datetime import timedelta

import peewee
from aio_pika.abc import AbstractExchange
from google.protobuf.message import Message
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.metrics_core import Metric

from servicekit import metrics, tracing
from servicekit.clock import utcnow
from servicekit.db import Database, locked
from servicekit.events import event_type, new_event_id, to_amqp
from servicekit.sql import KeysStatement, Statement, insert

log = logging.getLogger(__name__)


class OutboxEvent(peewee.Model):
    id = peewee.AutoField()
    event_id = peewee.CharField(max_length=36, unique=True)
    type_name = peewee.CharField(max_length=100)
    order_id = peewee.CharField(max_length=64)
    payload = peewee.BlobField()
    created = peewee.DateTimeField()
    # Until when a relay holds the row (NULL: unclaimed).
    claimed_until = peewee.DateTimeField(null=True)
    # The W3C traceparent the event was recorded under (NULL: not traced), so that its
    # publish and its consumers join the trace of the call or event that caused it.
    trace_context = peewee.TextField(null=True)

    class Meta:
        table_name = "outbox"


# Events per publish round; confirms for a batch are awaited together.
BATCH = 200

_RECORD = insert(OutboxEvent)
# The oldest unclaimed rows; on PostgreSQL and MariaDB rows another relay is
# claiming are skipped (SQLite has one writer and no row locks).
_UNCLAIMED = Statement(
    OutboxEvent,
    lambda s: locked(
        OutboxEvent.select()
        .where(OutboxEvent.claimed_until.is_null() | (OutboxEvent.claimed_until < s.now))
        .order_by(OutboxEvent.id)
        .limit(BATCH),
        skip_locked=True,
    ),
)
_CLAIM = KeysStatement(
    OutboxEvent,
    lambda s, ids: OutboxEvent.update(claimed_until=s.until).where(OutboxEvent.id.in_(ids)),
)
_RELEASE = KeysStatement(
    OutboxEvent,
    lambda s, ids: OutboxEvent.update(claimed_until=None).where(OutboxEvent.id.in_(ids)),
)
_DELETE = KeysStatement(
    OutboxEvent, lambda s, ids: OutboxEvent.delete().where(OutboxEvent.id.in_(ids))
)


class Outbox:
    # Unsent rows are looked for this often even without a wake-up.
    POLL_SECONDS = 1.0
    # Long enough for a batch's confirms even from a busy broker.
    LEASE = timedelta(seconds=10)

    def __init__(self, db: Database, source: str = "") -> None:
        self.db = db
        # The service that emits these events (AMQP app_id).
        self.source = source
        self._wake = asyncio.Event()
        # Ids of rows the broker confirmed, deleted with the next claim.
        self._sent: list[int] = []
        self._loop = asyncio.get_running_loop()

    def record(self, message: Message, order_id: str) -> None:
        """Store an event; call on the database thread inside the transaction."""
        _RECORD.run(
            event_id=new_event_id(),
            type_name=event_type(message),
            order_id=order_id,
            payload=message.SerializeToString(),
            created=utcnow(),
            claimed_until=None,
            trace_context=tracing.current_traceparent(),
        )
        # The relay's next read is queued on the same database thread, behind
        # this transaction, so it sees the row once the transaction commits.
        self._loop.call_soon_threadsafe(self._wake.set)

    async def relay(self, exchange: AbstractExchange) -> None:
        """Publish stored events until cancelled; raises when the broker fails
        (the broker session that runs it then reconnects)."""
        try:
            while True:
                if await self.publish_batch(exchange):
                    continue
                self._wake.clear()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), self.POLL_SECONDS)
        finally:
            # Stopping or broker lost: delete what was confirmed (best effort; if
            # this fails, the rows go out again once their lease ends, and
            # consumers skip them by id).
            if self._sent:
                with contextlib.suppress(Exception):
                    await asyncio.shield(self.db.run(_DELETE.run, self._sent))
                self._sent = []

    async def publish_batch(self, exchange: AbstractExchange) -> int:
        """Publish the oldest unclaimed events; returns how many were sent.

        Rows confirmed by the broker are deleted in the same database job as
        the next claim: one trip to the database per batch, not two."""
        rows = await self.db.transaction(self._delete_and_claim, self._sent)
        self._sent = []  # deleted once that transaction committed
        if not rows:
            return 0
        ids = [row.id for row in rows]
        try:
            await asyncio.gather(*(self._publish(exchange, row) for row in rows))
        except BaseException as error:
            if not isinstance(error, asyncio.CancelledError):  # a stop is no failure
                metrics.OUTBOX_PUBLISH_FAILURES.inc()
            # Broker lost or shutting down: hand the rows back at once rather
            # than when the lease runs out (best effort; the lease is the backstop).
            with contextlib.suppress(Exception):
                await asyncio.shield(self.db.run(_RELEASE.run, ids))
            raise
        self._sent = ids
        for row in rows:
            metrics.PUBLISHED_BY_TYPE[row.type_name].inc()
        return len(rows)

    async def _publish(self, exchange: AbstractExchange, row: OutboxEvent) -> None:
        message = to_amqp(
            row.event_id, row.type_name, row.order_id, row.payload, row.created, self.source
        )
        with tracing.producer_span(
            row.trace_context, row.type_name, row.event_id, row.order_id, message.headers
        ):
            # publish() returns once the broker confirmed the message.
            await exchange.publish(message, routing_key=row.type_name, mandatory=False)

    def _delete_and_claim(self, sent: list[int]) -> list[OutboxEvent]:
        if sent:
            _DELETE.run(sent)
        now = utcnow()
        rows = _UNCLAIMED.select(now=now)
        if rows:
            _CLAIM.run([row.id for row in rows], until=now + self.LEASE)
        return rows


def backlog_gauges() -> Iterable[Metric]:
    """The unsent rows and the age of the oldest (0 when none); read at scrape time on the
    database thread. One aggregate over a table that is near empty while the relay keeps up."""
    rows, oldest = OutboxEvent.select(
        peewee.fn.COUNT(OutboxEvent.id), peewee.fn.MIN(OutboxEvent.created)
    ).scalar(as_tuple=True)
    # SQLite hands an aggregate's datetime back as text.
    oldest = OutboxEvent.created.adapt(oldest)
    age = (utcnow() - oldest).total_seconds() if oldest is not None else 0.0
    yield GaugeMetricFamily("bread_outbox_rows", "Events stored but not yet published", rows)
    yield GaugeMetricFamily(
        "bread_outbox_oldest_seconds", "Age of the oldest unpublished event", max(age, 0.0)
    )
