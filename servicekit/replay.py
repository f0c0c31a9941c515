"""Rebuild a read model by replaying the event log stream from its start.

Every event published to the exchange is also kept in a RabbitMQ stream
(`<exchange>.log`, see events.declare_exchange). Replaying it through the
same handlers and inbox gives the same rows; events already applied are
skipped, so a replay into a live database is harmless.
"""

from __future__ import annotations

import asyncio
import logging

import aio_pika

from servicekit.db import Database
from servicekit.events import ReceivedEvent, Topology, declare_log_stream, from_amqp
from servicekit.inbox import Applied, Handler, Handlers, apply_once, by_type_name

log = logging.getLogger(__name__)


async def replay(
    db: Database,
    amqp_url: str,
    topology: Topology,
    handlers: Handlers,
    idle_seconds: float = 2.0,
    on_applied: Applied | None = None,
) -> int:
    """Apply every event in the log; return how many were new. Stops once idle."""
    by_name = by_type_name(handlers)
    applied = 0
    connection = await aio_pika.connect(amqp_url)
    async with connection:
        channel = await connection.channel()
        await channel.set_qos(prefetch_count=500)  # streams need a prefetch
        stream = await declare_log_stream(channel, topology)
        async with stream.iterator(arguments={"x-stream-offset": "first"}) as deliveries:
            while True:
                try:
                    delivery = await asyncio.wait_for(anext(deliveries), idle_seconds)
                except TimeoutError:
                    break
                try:
                    event = from_amqp(delivery)
                except Exception as exc:  # forged or broken: the consumers dead-lettered it
                    log.warning("skipping event %s: %r", delivery.message_id, exc)
                    await delivery.ack()
                    continue
                if event.type_name in by_name:
                    applied += await db.transaction(_apply, event, by_name, on_applied)
                await delivery.ack()
    return applied


def _apply(event: ReceivedEvent, handlers: dict[str, Handler], on_applied: Applied | None) -> bool:
    """apply_once, telling on_applied (as the consumer does) when it was new."""
    if not apply_once(event, handlers):
        return False
    if on_applied is not None:
        on_applied([event])
    return True
