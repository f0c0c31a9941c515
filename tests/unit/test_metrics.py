"""Metrics: the request interceptor counts each unary call once under its real status code
and leaves unknown methods and streams alone; the outbox, relay and orders are read as
Prometheus sees them; database gauges are read on the database thread at scrape time; an
event's creation time travels to the microsecond, for the consumers' lag."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any

import grpc
import pytest
from prometheus_client import REGISTRY
from prometheus_client.metrics_core import Metric

from bread.events.v1 import events_pb2 as ev
from order_svc.domain import CANCELED, PAID
from order_svc.models import Order
from order_svc.orders import orders_by_status
from servicekit import metrics
from servicekit.clock import utcnow
from servicekit.db import Database
from servicekit.decoding import RefuseUndecodable
from servicekit.events import CREATED_HEADER, from_amqp, to_amqp
from servicekit.outbox import Outbox, OutboxEvent, backlog_gauges
from tests.unit.fakes import FakeExchange, FakeIncoming, database_of
from tests.unit.test_orders import an_order

SERVICE = "test.v1.Probe"
db = database_of(Order)


def sample(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


def handled(method: str, code: str) -> float:
    return sample(
        "bread_grpc_server_handled_total", grpc_service=SERVICE, grpc_method=method, grpc_code=code
    )


def timed(method: str) -> float:
    return sample(
        "bread_grpc_server_handling_seconds_count", grpc_service=SERVICE, grpc_method=method
    )


async def ok(request: bytes, context: grpc.aio.ServicerContext) -> bytes:
    return request


async def not_found(request: bytes, context: grpc.aio.ServicerContext) -> bytes:
    await context.abort(grpc.StatusCode.NOT_FOUND, "no such thing")
    raise AssertionError("abort() raises")


async def boom(request: bytes, context: grpc.aio.ServicerContext) -> bytes:
    raise RuntimeError("a bug")


async def quietly_failed(request: bytes, context: grpc.aio.ServicerContext) -> bytes:
    context.set_code(grpc.StatusCode.FAILED_PRECONDITION)
    return b""


async def stream(request: bytes, context: grpc.aio.ServicerContext) -> AsyncIterator[bytes]:
    yield request


@pytest.fixture
async def channel() -> AsyncIterator[grpc.aio.Channel]:
    unary = {
        name: grpc.unary_unary_rpc_method_handler(behavior)
        for name, behavior in {
            "Ok": ok,
            "NotFound": not_found,
            "Boom": boom,
            "QuietlyFailed": quietly_failed,
        }.items()
    }
    server = grpc.aio.server(interceptors=[metrics.MeasureRequests(), RefuseUndecodable()])
    server.add_generic_rpc_handlers(
        [
            grpc.method_handlers_generic_handler(
                SERVICE, {**unary, "Stream": grpc.unary_stream_rpc_method_handler(stream)}
            )
        ]
    )
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as client:
        yield client
    await server.stop(None)


async def call(channel: grpc.aio.Channel, method: str) -> grpc.StatusCode:
    try:
        await channel.unary_unary(f"/{SERVICE}/{method}")(b"x")
    except grpc.aio.AioRpcError as error:
        return error.code()
    return grpc.StatusCode.OK


@pytest.mark.parametrize(
    ("method", "code"),
    [
        ("Ok", "OK"),
        ("NotFound", "NOT_FOUND"),
        ("Boom", "UNKNOWN"),
        ("QuietlyFailed", "FAILED_PRECONDITION"),
    ],
)
async def test_each_call_is_counted_once_under_the_code_the_client_got(
    channel: grpc.aio.Channel, method: str, code: str
) -> None:
    before, times = handled(method, code), timed(method)
    for _ in range(3):
        assert (await call(channel, method)).name == code
    assert handled(method, code) == before + 3
    assert timed(method) == times + 3


async def test_unknown_methods_and_streams_make_no_series(channel: grpc.aio.Channel) -> None:
    assert await call(channel, "NoSuchMethod") == grpc.StatusCode.UNIMPLEMENTED
    assert [r async for r in channel.unary_stream(f"/{SERVICE}/Stream")(b"x")] == [b"x"]
    names = {
        sample.labels.get("grpc_method")
        for family in REGISTRY.collect()
        if family.name == "bread_grpc_server_handled"
        for sample in family.samples
    }
    assert "NoSuchMethod" not in names and "Stream" not in names


def values(families: list[Metric]) -> dict[tuple[str, tuple[str, ...]], float]:
    return {
        (sample.name, tuple(sample.labels.values())): sample.value
        for family in families
        for sample in family.samples
    }


async def test_the_backlog_is_the_unsent_rows_and_the_oldest_ones_age(db: Database) -> None:
    assert values(await db.run(lambda: list(backlog_gauges()))) == {
        ("bread_outbox_rows", ()): 0,
        ("bread_outbox_oldest_seconds", ()): 0,
    }
    outbox = Outbox(db)
    await db.transaction(outbox.record, ev.BakeryAccepted(order_id="o1"), "o1")
    await db.transaction(outbox.record, ev.OrderDelivered(order_id="o1"), "o1")
    old = utcnow() - timedelta(seconds=40)
    await db.run(lambda: OutboxEvent.update(created=old).where(OutboxEvent.id == 1).execute())
    gauges = values(await db.run(lambda: list(backlog_gauges())))
    assert gauges[("bread_outbox_rows", ())] == 2
    assert 40 <= gauges[("bread_outbox_oldest_seconds", ())] < 45

    published = sample("bread_outbox_published_total", type="bread.events.v1.OrderDelivered")
    exchange = FakeExchange("bread.events").typed()
    assert await outbox.publish_batch(exchange) == 2
    # The relay's next round deletes the confirmed rows (with its next claim).
    assert await outbox.publish_batch(exchange) == 0
    assert sample("bread_outbox_published_total", type="bread.events.v1.OrderDelivered") == (
        published + 1
    )
    assert values(await db.run(lambda: list(backlog_gauges())))[("bread_outbox_rows", ())] == 0


async def test_a_failed_publish_is_counted(db: Database) -> None:
    outbox = Outbox(db)
    await db.transaction(outbox.record, ev.BakeryAccepted(order_id="o1"), "o1")
    exchange = FakeExchange("bread.events")
    exchange.error = ConnectionResetError("broker went away")
    failures = sample("bread_outbox_publish_failures_total")
    with pytest.raises(ConnectionResetError):
        await outbox.publish_batch(exchange.typed())
    assert sample("bread_outbox_publish_failures_total") == failures + 1


async def test_orders_are_counted_by_status_every_status_listed(db: Database) -> None:
    for status in (PAID, PAID, CANCELED):
        await an_order(db, status)
    counts = values(await db.run(lambda: list(orders_by_status())))
    assert counts[("bread_orders", ("PAID",))] == 2
    assert counts[("bread_orders", ("CANCELED",))] == 1
    assert counts[("bread_orders", ("PENDING",))] == 0
    assert len(counts) == 8


async def test_database_gauges_are_read_on_the_database_thread_at_scrape_time(
    db: Database,
) -> None:
    threads: list[str] = []

    def reader() -> list[Metric]:
        threads.append(threading.current_thread().name)
        return list(backlog_gauges())

    collector = metrics.DatabaseGauges(db, [reader])
    assert threads == []  # nothing is read until a scrape
    # Prometheus' scrape runs collect() on the metrics server's thread.
    families = await asyncio.to_thread(lambda: list(collector.collect()))
    assert [f.name for f in families] == ["bread_outbox_rows", "bread_outbox_oldest_seconds"]
    assert len(threads) == 1 and threads[0].startswith("db")


async def test_a_scrape_leaves_out_database_gauges_it_cannot_read(db: Database) -> None:
    def broken() -> list[Metric]:
        raise RuntimeError("database away")

    collector = metrics.DatabaseGauges(db, [broken])
    assert await asyncio.to_thread(lambda: list(collector.collect())) == []


def test_the_creation_time_travels_to_the_microsecond() -> None:
    created = utcnow().replace(microsecond=123456)
    message = to_amqp("e1", "bread.events.v1.OrderDelivered", "o1", b"\n\x02o1", created)
    delivery = FakeIncoming(
        body=message.body,
        message_id="e1",
        type=message.type,
        correlation_id="o1",
        headers=dict(message.headers),
        timestamp=message.timestamp,
        routing_key=message.type,
    )
    assert from_amqp(delivery).published.replace(tzinfo=None) == created  # type: ignore[arg-type]


@pytest.mark.parametrize("forged", ["soon", -5, 2**60, None])
def test_a_forged_creation_time_falls_back_to_the_amqp_timestamp(forged: Any) -> None:
    created = utcnow().replace(microsecond=0)
    message = to_amqp("e1", "bread.events.v1.OrderDelivered", "o1", b"\n\x02o1", created)
    delivery = FakeIncoming(
        body=message.body,
        message_id="e1",
        type=message.type,
        correlation_id="o1",
        headers={CREATED_HEADER: forged},
        timestamp=message.timestamp,
        routing_key=message.type,
    )
    assert from_amqp(delivery).published == message.timestamp  # type: ignore[arg-type]
