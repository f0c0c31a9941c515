"""Start a service, report its health, and stop it without dropping work.

Liveness is the overall health status (""): it answers as long as the event
loop does. Readiness is the service's own name: SERVING once its database and
broker are connected and its consumer runs, NOT_SERVING while a dependency has
been down longer than a grace period, and from the first moment of shutdown.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import signal
import time
from collections.abc import Awaitable, Callable, Coroutine, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar

import aio_pika
import grpc
import peewee
import uvloop
from aio_pika.abc import AbstractRobustConnection
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection

from servicekit import logs
from servicekit.api import PUBLIC_SERVICES
from servicekit.db import Database
from servicekit.events import Topology, declare_exchange
from servicekit.inbox import Consumer, Handler, InboxEvent
from servicekit.outbox import Outbox, OutboxEvent
from servicekit.settings import Settings
from servicekit.spec import ServiceSpec

log = logging.getLogger(__name__)
T = TypeVar("T")

SERVING = health_pb2.HealthCheckResponse.SERVING
NOT_SERVING = health_pb2.HealthCheckResponse.NOT_SERVING

WATCH_INTERVAL_SECONDS = 1.0
CONNECT_RETRY_SECONDS = 1.0


@dataclass(frozen=True)
class Runtime:
    """What a service's wiring gets to build its servicers and handlers from."""

    settings: Settings
    db: Database
    outbox: Outbox


@dataclass
class Wiring:
    # (add_XServicer_to_server, servicer) pairs.
    servicers: list[tuple[Callable[[Any, grpc.aio.Server], None], Any]]
    # Event type name → handler; the service consumes when there are any.
    handlers: dict[str, Handler] = field(default_factory=dict)
    # Long-running tasks started once the dependencies are connected.
    background: list[Callable[[], Coroutine[Any, Any, None]]] = field(default_factory=list)


Wire = Callable[[Runtime], Wiring]


def main(spec: ServiceSpec, models: Sequence[type[peewee.Model]], wire: Wire) -> None:
    """Entry point of `python -m <service>`."""
    settings = Settings.from_env(spec.name, spec.default_port)
    logs.configure(spec.name, settings.log_level)
    uvloop.run(Service(spec, settings, models, wire).run())


class Service:
    def __init__(
        self,
        spec: ServiceSpec,
        settings: Settings,
        models: Sequence[type[peewee.Model]],
        wire: Wire,
    ) -> None:
        self.spec = spec
        self.settings = settings
        self.models: list[type[peewee.Model]] = [*models, OutboxEvent, InboxEvent]
        self.wire = wire
        self.topology = Topology(settings.exchange)
        self.health = health.aio.HealthServicer()
        self.connection: AbstractRobustConnection | None = None
        self.consumer: Consumer | None = None
        self.tasks: list[asyncio.Task[None]] = []
        self.draining = False

    async def run(self) -> None:
        settings = self.settings
        db = Database(settings.database_url, self.models)
        outbox = Outbox(db)
        wiring = self.wire(Runtime(settings, db, outbox))

        server = grpc.aio.server()
        for add, servicer in wiring.servicers:
            add(servicer, server)
        health_pb2_grpc.add_HealthServicer_to_server(self.health, server)
        reflection.enable_server_reflection(
            [*PUBLIC_SERVICES, health.SERVICE_NAME, reflection.SERVICE_NAME], server
        )
        server.add_insecure_port(f"{settings.grpc_bind}:{settings.grpc_port}")
        await server.start()
        # Everything built so far lives as long as the process: keep it out of
        # the collector's full passes, which otherwise pause the loop.
        gc.freeze()
        await self.health.set("", SERVING)
        await self._set_ready(False)
        log.info("listening on %s:%d", settings.grpc_bind, settings.grpc_port)

        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)

        startup = asyncio.create_task(self._start_dependencies(db, outbox, wiring))
        await stop.wait()
        startup.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await startup
        await self._shutdown(server, db)

    async def _start_dependencies(self, db: Database, outbox: Outbox, wiring: Wiring) -> None:
        await _retry("database", db.connect)
        self.connection = await _retry(
            "broker",
            lambda: aio_pika.connect_robust(
                # Named so operators (and tests) can tell whose connection is whose.
                self.settings.amqp_url,
                client_properties={"connection_name": self.settings.queue},
            ),
        )
        publish_channel = await self.connection.channel(publisher_confirms=True)
        exchange = await declare_exchange(publish_channel, self.topology)
        self.tasks.append(asyncio.create_task(outbox.relay(exchange)))
        if wiring.handlers:
            self.consumer = Consumer(db, self.topology, self.settings.queue, wiring.handlers)
            await self.consumer.start(await self.connection.channel())
        self.tasks.extend(asyncio.create_task(task()) for task in wiring.background)
        self.tasks.append(asyncio.create_task(self._watch_dependencies(db)))
        self.tasks.append(asyncio.create_task(db.checkpoint_wal()))
        log.info("dependencies connected")

    async def _watch_dependencies(self, db: Database) -> None:
        last_healthy = time.monotonic()
        while True:
            if await self._dependencies_healthy(db):
                last_healthy = time.monotonic()
            ready = time.monotonic() - last_healthy < self.settings.dependency_grace_seconds
            await self._set_ready(ready)
            await asyncio.sleep(WATCH_INTERVAL_SECONDS)

    async def _dependencies_healthy(self, db: Database) -> bool:
        try:
            await asyncio.wait_for(db.ping(), WATCH_INTERVAL_SECONDS)
        except Exception as exc:
            log.warning("database check failed: %r", exc)
            return False
        broker_up = self.connection is not None and self.connection.connected.is_set()
        consuming = self.consumer is None or self.consumer.running
        return broker_up and consuming

    async def _set_ready(self, ready: bool) -> None:
        status = SERVING if ready and not self.draining else NOT_SERVING
        await self.health.set(self.spec.readiness_name, status)

    async def _shutdown(self, server: grpc.aio.Server, db: Database) -> None:
        settings = self.settings
        self.draining = True
        await self._set_ready(False)
        log.info("draining for %.1fs", settings.drain_seconds)
        await asyncio.sleep(settings.drain_seconds)
        if self.consumer is not None:
            # Bounded: deliveries not acked by then are redelivered to another consumer.
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.consumer.stop(), settings.stop_grace_seconds)
        await server.stop(settings.stop_grace_seconds)
        for task in self.tasks:
            task.cancel()
        await asyncio.gather(*self.tasks, return_exceptions=True)
        if self.connection is not None:
            with contextlib.suppress(Exception):
                await self.connection.close()
        await db.close()
        log.info("stopped")


async def _retry(what: str, connect: Callable[[], Awaitable[T]]) -> T:
    """Connect, retrying until it works: dependencies may start after us."""
    while True:
        try:
            return await connect()
        except Exception as exc:
            log.warning("%s not reachable yet: %r", what, exc)
            await asyncio.sleep(CONNECT_RETRY_SECONDS)
