"""Prometheus metrics of a service, served at http://<GRPC_BIND>:<METRICS_PORT>/metrics.

Counters and histograms are updated where things happen (a request, a publish, an applied
event) and cost a few microseconds each. What needs a query (the outbox backlog, orders by
status) is read only when Prometheus scrapes, on the service's database thread: no cost per
request, and no cost at all when nobody scrapes. The process metrics (CPU, memory, open
files, GC) are prometheus-client's defaults. The names are listed in README.md.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from typing import Any
from wsgiref.simple_server import WSGIServer

import grpc
from prometheus_client import REGISTRY, Counter, Gauge, Histogram, start_http_server
from prometheus_client.metrics_core import Metric
from prometheus_client.registry import Collector

from servicekit.db import Database
from servicekit.events import EVENT_TYPES
from servicekit.interceptors import WrapHandlers

log = logging.getLogger(__name__)

GRPC_LABELS = ("grpc_service", "grpc_method")
GRPC_HANDLED = Counter(
    "bread_grpc_server_handled",
    "Unary gRPC calls answered, by service, method and status code",
    [*GRPC_LABELS, "grpc_code"],
)
GRPC_SECONDS = Histogram(
    "bread_grpc_server_handling_seconds",
    "Time from a unary call's arrival at the servicer until its answer",
    GRPC_LABELS,
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)
OUTBOX_PUBLISHED = Counter(
    "bread_outbox_published", "Events the outbox relay published (broker-confirmed)", ["type"]
)
OUTBOX_PUBLISH_FAILURES = Counter(
    "bread_outbox_publish_failures",
    "Relay batches the broker did not confirm (their rows are handed back and retried)",
)
EVENTS_CONSUMED = Counter(
    "bread_events_consumed",
    "Events committed and acked (applied, or skipped as a redelivered duplicate)",
    ["type"],
)
EVENTS_RETRIED = Counter(
    "bread_events_retried",
    "Attempts at an event that failed and will be repeated: reason transient (its database "
    "is away, waited out) or failed (the handler raised; 3 attempts, then dead-lettered)",
    ["type", "reason"],
)
EVENTS_DEAD_LETTERED = Counter(
    "bread_events_dead_lettered", "Events parked in the service's dead-letter queue", ["type"]
)
EVENT_LAG = Histogram(
    "bread_event_lag_seconds",
    "From an event's creation (its outbox row) until this consumer committed it",
    ["type"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 900),
)
READY = Gauge("bread_ready", "1 while the service reports ready (its own health name SERVING)")

# A delivery's type as a label: forged or broken deliveries must not mint new series.
UNKNOWN_TYPE = "unknown"


class ByType(dict[str, Any]):
    """A metric's children by event type, kept: labels() takes a lock and builds a key on
    every call, which the relay and the consumer would pay per event."""

    def __init__(self, metric: Counter | Histogram) -> None:
        super().__init__()
        self.metric = metric

    def __missing__(self, type_name: str) -> Any:
        child = self[type_name] = self.metric.labels(type_name)
        return child


PUBLISHED_BY_TYPE = ByType(OUTBOX_PUBLISHED)
CONSUMED_BY_TYPE = ByType(EVENTS_CONSUMED)
LAG_BY_TYPE = ByType(EVENT_LAG)


def event_label(type_name: str | None) -> str:
    return type_name if type_name in EVENT_TYPES else UNKNOWN_TYPE


def serve(address: str, port: int) -> WSGIServer:
    """Serve /metrics (prometheus-client's threaded server); shutdown() stops it."""
    server, _ = start_http_server(port, address)
    return server


class MeasureRequests(WrapHandlers):
    """Counts unary calls by method and status code and times them.

    Only methods the server has are measured (an unknown method answers UNIMPLEMENTED
    unmeasured), so a client cannot mint series with made-up names; streams (health Watch,
    reflection) are not measured either: their duration is not a latency. It goes first, before
    RefuseUndecodable: undecodable requests are counted too, and every handler it is given is
    a coroutine.
    """

    def wrap(self, handler: grpc.RpcMethodHandler, method: str) -> grpc.RpcMethodHandler:
        return handler if handler.unary_unary is None else measured(handler, method)


def measured(handler: grpc.RpcMethodHandler, method: str) -> grpc.RpcMethodHandler:
    """handler (unary-unary) counted and timed as method ("/package.Service/Method")."""
    service, _, name = method.lstrip("/").rpartition("/")
    seconds = GRPC_SECONDS.labels(service, name)
    # The label children by code, made on first use: one dict lookup per call after that.
    handled: dict[grpc.StatusCode, Any] = {}
    behavior = handler.unary_unary

    def count(code: grpc.StatusCode, started: float) -> None:
        seconds.observe(time.perf_counter() - started)
        child = handled.get(code)
        if child is None:
            child = handled[code] = GRPC_HANDLED.labels(service, name, code.name)
        child.inc()

    async def unary(request: Any, context: grpc.aio.ServicerContext) -> Any:
        started = time.perf_counter()
        try:
            # RefuseUndecodable, the next interceptor, makes every handler a coroutine.
            response = await behavior(request, context)
        except asyncio.CancelledError:
            count(grpc.StatusCode.CANCELLED, started)
            raise
        except BaseException:
            # context.abort() set the code before raising; anything else is UNKNOWN to grpc.
            count(_code(context) or grpc.StatusCode.UNKNOWN, started)
            raise
        count(_code(context) or grpc.StatusCode.OK, started)
        return response

    return grpc.unary_unary_rpc_method_handler(
        unary, handler.request_deserializer, handler.response_serializer
    )


def _code(context: grpc.aio.ServicerContext) -> grpc.StatusCode | None:
    """The code a servicer set or aborted with, None if it set none."""
    code = context.code()
    if code is None or isinstance(code, grpc.StatusCode):
        return code
    # grpc.aio hands back the C core's integer code.
    return _BY_NUMBER.get(code, grpc.StatusCode.UNKNOWN)


_BY_NUMBER = {code.value[0]: code for code in grpc.StatusCode}

# Reads metric families on the database thread.
Reader = Callable[[], Iterable[Metric]]


class DatabaseGauges(Collector):
    """Metric families read from the database when Prometheus scrapes.

    collect() runs on the metrics server's thread; the readers run on the service's
    database thread (through the event loop), in one hop, like any other query. A scrape
    that cannot get an answer in SCRAPE_TIMEOUT_SECONDS leaves these families out rather
    than hang: the other metrics, and an operator looking at them, still get through.
    """

    SCRAPE_TIMEOUT_SECONDS = 2.0

    def __init__(self, db: Database, readers: Sequence[Reader]) -> None:
        self.db = db
        self.readers = list(readers)
        self.loop = asyncio.get_running_loop()
        self._lock = threading.Lock()

    def _read(self) -> list[Metric]:
        return [family for reader in self.readers for family in reader()]

    def collect(self) -> Iterable[Metric]:
        # One read at a time: scrapes that pile up must not queue work on the database.
        with self._lock:
            future = asyncio.run_coroutine_threadsafe(self.db.run(self._read), self.loop)
            try:
                return future.result(self.SCRAPE_TIMEOUT_SECONDS)
            except Exception as exc:
                future.cancel()
                log.warning("database metrics left out of this scrape: %r", exc)
                return []

    def describe(self) -> Iterable[Metric]:
        # Nothing at registration: describing would otherwise query the database.
        return []


def register(collector: Collector) -> Callable[[], None]:
    """Add collector to the served registry; returns what removes it again."""
    REGISTRY.register(collector)
    return lambda: REGISTRY.unregister(collector)
