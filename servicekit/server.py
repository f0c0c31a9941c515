"""Start a service, report its health, and stop it without dropping work.

Health names, as the kubelet, Envoy and operators ask for them:
- "" is liveness: SERVING while the event loop answers and no background task
  is stuck failing (see supervise.py). A stuck task turns it NOT_SERVING and
  the process stops gracefully with exit status 1, so that the kubelet and
  supervisord alike start a new one (supervisord only sees exits).
- the service's own name (e.g. bread.order.v1.OrderService) is readiness: can
  it serve its synchronous API? SERVING once its database is connected and
  while it answers, NOT_SERVING once it has been down longer than a grace
  period, and from the first moment of shutdown. The broker is not part of
  it: without the broker, requests are still served, their events wait in the
  outbox, and consumers resume by themselves when it returns.
- "database" and "broker" report each dependency on its own, for operators.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import signal
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

import grpc
import uvloop
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection

from servicekit import logs, metrics, tracing
from servicekit.api import PUBLIC_SERVICES
from servicekit.broker import BrokerSession
from servicekit.db import Database
from servicekit.decoding import RefuseUndecodable
from servicekit.events import Topology
from servicekit.inbox import Applied, Consumer, Handlers
from servicekit.migrations import Schema
from servicekit.outbox import Outbox, backlog_gauges
from servicekit.pruning import keep_inbox_pruned
from servicekit.settings import Settings
from servicekit.shared_schema import SHARED
from servicekit.spec import ServiceSpec
from servicekit.supervise import Backoff, Supervisor, TaskFactory

log = logging.getLogger(__name__)

SERVING = health_pb2.HealthCheckResponse.SERVING
NOT_SERVING = health_pb2.HealthCheckResponse.NOT_SERVING
DATABASE_HEALTH = "database"
BROKER_HEALTH = "broker"

WATCH_INTERVAL_SECONDS = 1.0


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
    # Event message class → handler; the service consumes when there are any.
    handlers: Handlers = field(default_factory=dict)
    # Told of each transaction's applied events, in it (servicekit.inbox.Applied).
    on_applied: Applied | None = None
    # Long-running tasks, supervised, started once the database is connected.
    background: list[TaskFactory] = field(default_factory=list)
    # Metric families read from the database at scrape time (the outbox's are always there).
    gauges: list[metrics.Reader] = field(default_factory=list)


Wire = Callable[[Runtime], Wiring]


def main(spec: ServiceSpec, schema: Schema, wire: Wire) -> None:
    """Entry point of `python -m <service>`; schema is the service's tables and their
    migrations (`<service>/migrations.py`)."""
    try:
        settings = Settings.from_env(spec.name, spec.default_port)
    except ValueError as error:
        sys.exit(f"{spec.name}: {error}")
    logs.configure(spec.name, settings.log_level)
    if settings.trace_sample_ratio > 0:
        tracing.configure(
            spec.name,
            settings.trace_sample_ratio,
            tracing.exporter(settings.otlp_endpoint, settings.trace_file),
        )
    sys.exit(uvloop.run(Service(spec, settings, schema, wire).run()))


class Service:
    def __init__(
        self,
        spec: ServiceSpec,
        settings: Settings,
        schema: Schema,
        wire: Wire,
    ) -> None:
        self.spec = spec
        self.settings = settings
        self.schemas = [SHARED, schema]
        self.models = [model for each in self.schemas for model in each.models]
        self.wire = wire
        self.health = health.aio.HealthServicer()
        self.supervisor = Supervisor()
        self.consumer: Consumer | None = None
        self.broker: BrokerSession | None = None
        self.started = False
        self.draining = False
        self.stop = asyncio.Event()
        self.exit_status = 0
        self._reported: dict[str, int] = {}
        self._unregister_gauges: Callable[[], None] | None = None

    async def run(self) -> int:
        """Serve until SIGTERM/SIGINT (exit status 0) or a stuck task (1)."""
        settings = self.settings
        db = Database(settings.database_url, self.models)
        outbox = Outbox(db, source=self.spec.name)
        wiring = self.wire(Runtime(settings, db, outbox))
        if wiring.handlers:
            self.consumer = Consumer(
                db, Topology(settings.exchange), settings.queue, wiring.handlers, wiring.on_applied
            )

        # Outermost first: requests refused as undecodable are counted too, and the server
        # span (when tracing) covers them. Bad request bytes are the client's error
        # (INVALID_ARGUMENT), not UNKNOWN.
        server = grpc.aio.server(
            interceptors=[
                metrics.MeasureRequests(),
                *tracing.server_interceptors(),
                RefuseUndecodable(),
            ]
        )
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
        for name in ("", DATABASE_HEALTH, BROKER_HEALTH, self.spec.readiness_name):
            self._reported[name] = SERVING if name == "" else NOT_SERVING
            await self.health.set(name, self._reported[name])
        metrics_server = metrics.serve(settings.grpc_bind, settings.metrics_port)
        log.info(
            "listening on %s:%d, metrics on :%d",
            settings.grpc_bind,
            settings.grpc_port,
            settings.metrics_port,
        )

        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, self.stop.set)

        startup = asyncio.create_task(self._start(db, outbox, wiring))
        await self.stop.wait()
        startup.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await startup
        await self._shutdown(server, db)
        metrics_server.shutdown()
        return self.exit_status

    async def _start(self, db: Database, outbox: Outbox, wiring: Wiring) -> None:
        """Connect and migrate the database (retried until it answers and its schema
        is current), then start every background task under the supervisor; the
        broker session connects and reconnects on its own."""
        attempt = 0
        while True:
            try:
                await db.connect(self.schemas)
                break
            except Exception as exc:
                attempt += 1
                log.warning("database not ready yet (unreachable, or migrating failed): %r", exc)
                await asyncio.sleep(Backoff(first=0.5, cap=5.0).delay(attempt))
        self._unregister_gauges = metrics.register(
            metrics.DatabaseGauges(db, [backlog_gauges, *wiring.gauges])
        )
        self.broker = BrokerSession(
            self.settings.amqp_url,
            self.settings.queue,
            Topology(self.settings.exchange),
            outbox,
            self.consumer,
        )
        self.supervisor.start("broker session", self.broker.run)
        for task in wiring.background:
            self.supervisor.start(task.__name__, task)
        if self.consumer is not None:
            retention = timedelta(days=self.settings.inbox_retention_days)
            self.supervisor.start("inbox pruning", lambda: keep_inbox_pruned(db, retention))
        if db.is_sqlite_file:
            self.supervisor.start("wal checkpoints", db.checkpoint_wal)
        self.supervisor.start("health watch", lambda: self._watch(db))
        self.started = True
        log.info("database connected; background tasks started")

    async def _watch(self, db: Database) -> None:
        last_healthy = time.monotonic()
        while True:
            database_up = await self._database_answers(db)
            if database_up:
                last_healthy = time.monotonic()
            await self._report(DATABASE_HEALTH, database_up)
            await self._report(BROKER_HEALTH, self.broker is not None and self.broker.connected)
            stuck = self.supervisor.stuck(self.settings.stuck_task_seconds)
            await self._report("", not stuck)
            if stuck and not self.stop.is_set():
                log.error("background tasks stuck failing: %s; restarting the process", stuck)
                self.exit_status = 1
                self.stop.set()
            await self._set_ready(
                time.monotonic() - last_healthy < self.settings.dependency_grace_seconds
            )
            await asyncio.sleep(WATCH_INTERVAL_SECONDS)

    @staticmethod
    async def _database_answers(db: Database) -> bool:
        try:
            await asyncio.wait_for(db.ping(), WATCH_INTERVAL_SECONDS)
        except Exception as exc:
            log.warning("database check failed: %r", exc)
            return False
        return True

    async def _report(self, name: str, up: bool) -> None:
        """Set a health name, logging each change."""
        status = SERVING if up else NOT_SERVING
        if self._reported.get(name) != status:
            self._reported[name] = status
            log.log(
                logging.INFO if up else logging.WARNING,
                "%s is %s",
                name or "liveness",
                health_pb2.HealthCheckResponse.ServingStatus.Name(status),
            )
        await self.health.set(name, status)

    async def _set_ready(self, ready: bool) -> None:
        ready = ready and self.started and not self.draining
        metrics.READY.set(ready)
        await self._report(self.spec.readiness_name, ready)

    async def _shutdown(self, server: grpc.aio.Server, db: Database) -> None:
        settings = self.settings
        self.draining = True
        await self._set_ready(False)
        log.info("draining for %.1fs", settings.drain_seconds)
        await asyncio.sleep(settings.drain_seconds)
        # The consumer and the server share one grace budget (the pod's
        # terminationGracePeriodSeconds is sized on it).
        deadline = time.monotonic() + settings.stop_grace_seconds
        if self.consumer is not None:
            # Bounded: deliveries not acked by then are redelivered to another consumer.
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.consumer.stop(), settings.stop_grace_seconds)
        await server.stop(max(deadline - time.monotonic(), 0.0))
        await self.supervisor.stop()
        if self._unregister_gauges is not None:
            self._unregister_gauges()
        await db.close()
        tracing.shutdown()  # exports the spans still buffered
        log.info("stopped")
