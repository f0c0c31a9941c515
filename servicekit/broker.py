"""One connection to RabbitMQ and everything that lives on it.

A session connects, declares the topology, attaches the consumer and runs the
outbox relay; it ends when the connection or a channel is lost, or when the
relay fails, and the supervisor starts a new one after a backoff. Starting
over from nothing on every loss is what makes recovery dependable: no channel
half restored, no relay left waiting on a dead channel, and the start-up
itself is retried the same way as any later reconnect.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any

import aio_pika

from servicekit.events import Topology, declare_exchange
from servicekit.inbox import Consumer
from servicekit.outbox import Outbox

log = logging.getLogger(__name__)

CONNECT_TIMEOUT_SECONDS = 5.0


class BrokerLost(ConnectionError):
    """The connection or one of its channels closed under a running session."""


class BrokerSession:
    def __init__(
        self,
        amqp_url: str,
        connection_name: str,
        topology: Topology,
        outbox: Outbox,
        consumer: Consumer | None,
    ) -> None:
        self.amqp_url = amqp_url
        self.connection_name = connection_name
        self.topology = topology
        self.outbox = outbox
        self.consumer = consumer
        self.connected = False

    async def run(self) -> None:
        """Connect and relay/consume until something breaks; always raises."""
        lost = asyncio.Event()

        def on_close(*_: Any) -> None:
            lost.set()

        connection = await aio_pika.connect(
            self.amqp_url,
            timeout=CONNECT_TIMEOUT_SECONDS,
            # Named so operators (and tests) can tell whose connection is whose.
            client_properties={"connection_name": self.connection_name},
        )
        connection.close_callbacks.add(on_close)
        try:
            publish_channel = await connection.channel(publisher_confirms=True)
            publish_channel.close_callbacks.add(on_close)
            exchange = await declare_exchange(publish_channel, self.topology)
            if self.consumer is not None:
                consume_channel = await connection.channel()
                consume_channel.close_callbacks.add(on_close)
                dead_letters = await publish_channel.declare_exchange(
                    self.topology.dead_letter_exchange, aio_pika.ExchangeType.DIRECT, durable=True
                )
                await self.consumer.attach(consume_channel, dead_letters)
            self.connected = True
            log.info("broker connected")
            relay = asyncio.create_task(self.outbox.relay(exchange))
            watch = asyncio.create_task(lost.wait())
            try:
                await asyncio.wait({relay, watch}, return_when=asyncio.FIRST_COMPLETED)
            finally:
                relay.cancel()
                watch.cancel()
                await asyncio.gather(relay, watch, return_exceptions=True)
            if not relay.cancelled() and (error := relay.exception()) is not None:
                raise error
            raise BrokerLost("broker connection lost")
        finally:
            self.connected = False
            if self.consumer is not None:
                self.consumer.detach()
            with contextlib.suppress(Exception):
                await connection.close()
