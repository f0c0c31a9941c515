"""Trace context through the outbox and the broker, with the in-memory exporter: an event
recorded in a traced call keeps its traceparent in the outbox row, is published under a
producer span that puts it in the AMQP headers, and applied under a consumer span whose
own events carry the trace on. Off (ratio 0), nothing is kept, sent or recorded."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Iterator

import aio_pika
import pytest
from opentelemetry import trace
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.sdk.trace.sampling import ALWAYS_OFF

from bread.events.v1 import events_pb2 as ev
from bread.order.v1.order_pb2 import GetMenuRequest
from servicekit import tracing
from servicekit.db import Database
from servicekit.errors import rpc
from servicekit.events import from_amqp
from servicekit.inbox import apply_once
from servicekit.logs import order_id_var
from servicekit.outbox import Outbox, OutboxEvent
from tests.unit.fakes import FakeExchange, FakeIncoming, memory_database
from tests.unit.test_logs import line

PLACED = ev.OrderPlaced(
    order_id="o1", customer_id="alice", item="cake", qty=1, price=25000, payment_id="p1"
)
# Makes the spans of the calls that record events (its spans are not the ones looked at).
CALLS = TracerProvider().get_tracer("calls")


@pytest.fixture
def spans() -> Iterator[InMemorySpanExporter]:
    exporter = InMemorySpanExporter()
    tracing.configure("order", 1.0, exporter, batch=False)
    yield exporter
    tracing.shutdown()


@pytest.fixture
async def db() -> AsyncIterator[Database]:
    database = await memory_database([])
    yield database
    await database.close()


def ids(traceparent: str | None) -> tuple[str, str]:
    """The trace and parent span ids of a traceparent header."""
    assert traceparent is not None
    _, trace_id, span_id, _ = traceparent.split("-")
    return trace_id, span_id


def delivered(message: aio_pika.Message) -> FakeIncoming:
    """A published message as the consumer receives it."""
    return FakeIncoming(
        body=message.body,
        message_id=message.message_id,
        type=message.type,
        correlation_id=message.correlation_id,
        headers=dict(message.headers),
        app_id=message.app_id,
        routing_key=message.type,
    )


async def test_an_event_carries_its_trace_from_the_call_to_the_consumer_and_on(
    spans: InMemorySpanExporter, db: Database
) -> None:
    outbox = Outbox(db, source="order")
    # In a call's server span (in the services: the gRPC instrumentation's).
    with CALLS.start_as_current_span("PlaceOrder") as call:
        await db.transaction(outbox.record, PLACED, "o1")
    trace_id, call_id = call.get_span_context().trace_id, call.get_span_context().span_id
    stored = await db.run(lambda: OutboxEvent.get().trace_context)
    assert ids(stored) == (f"{trace_id:032x}", f"{call_id:016x}")

    exchange = FakeExchange("bread.events")
    assert await outbox.publish_batch(exchange.typed()) == 1
    ((message, _),) = exchange.published
    assert message.app_id == "order"
    publish = spans.get_finished_spans()[-1]
    assert publish.name == "publish OrderPlaced" and publish.kind == trace.SpanKind.PRODUCER
    assert publish.parent is not None and publish.parent.span_id == call_id
    assert publish.context is not None
    assert ids(str(message.headers["traceparent"])) == (
        f"{trace_id:032x}",
        f"{publish.context.span_id:016x}",
    )

    event = from_amqp(delivered(message))  # type: ignore[arg-type]  # a fake delivery
    assert event.source == "order"
    bakery = Outbox(db, source="bakery")

    def open_ticket(e: ev.OrderPlaced, _: object) -> None:
        bakery.record(ev.BakeryAccepted(order_id=e.order_id), e.order_id)

    await db.transaction(apply_once, event, {"bread.events.v1.OrderPlaced": open_ticket})
    apply = spans.get_finished_spans()[-1]
    assert apply.name == "apply OrderPlaced" and apply.kind == trace.SpanKind.CONSUMER
    assert apply.parent is not None and apply.parent.span_id == publish.context.span_id
    assert apply.attributes is not None and apply.attributes["bread.order_id"] == "o1"
    caused = await db.run(
        lambda: OutboxEvent.get(OutboxEvent.type_name == "bread.events.v1.BakeryAccepted")
    )
    assert apply.context is not None
    assert ids(caused.trace_context) == (f"{trace_id:032x}", f"{apply.context.span_id:016x}")


async def test_an_unsampled_trace_leaves_its_events_untraced(
    spans: InMemorySpanExporter, db: Database
) -> None:
    unsampled = TracerProvider(sampler=ALWAYS_OFF).get_tracer("calls")
    outbox = Outbox(db, source="order")
    with unsampled.start_as_current_span("PlaceOrder"):
        await db.transaction(outbox.record, PLACED, "o1")
    assert await db.run(lambda: OutboxEvent.get().trace_context) is None
    exchange = FakeExchange("bread.events")
    await outbox.publish_batch(exchange.typed())
    ((message, _),) = exchange.published
    assert "traceparent" not in message.headers and spans.get_finished_spans() == ()


async def test_off_nothing_is_kept_sent_or_recorded(db: Database) -> None:
    outbox = Outbox(db, source="order")
    await db.transaction(outbox.record, PLACED, "o1")
    assert await db.run(lambda: OutboxEvent.get().trace_context) is None
    exchange = FakeExchange("bread.events")
    await outbox.publish_batch(exchange.typed())
    ((message, _),) = exchange.published
    assert "traceparent" not in message.headers and tracing.server_interceptors() == []
    assert tracing.client_interceptors() == []


def test_a_log_line_names_the_trace_and_span_it_was_written_in() -> None:
    assert "trace_id" not in line("outside")
    with CALLS.start_as_current_span("call") as span:
        entry = line("inside")
    context = span.get_span_context()
    assert entry["trace_id"] == f"{context.trace_id:032x}"
    assert entry["span_id"] == f"{context.span_id:016x}"


async def test_a_call_about_an_order_logs_it_from_its_x_order_id() -> None:
    class Context:
        def invocation_metadata(self) -> tuple:
            return (("x-order-id", "o-7"),)

    class Servicer:
        @rpc
        async def Pay(self, request: object, context: object) -> str:
            return order_id_var.get()

    assert await Servicer().Pay(GetMenuRequest(), Context()) == "o-7"


def test_a_span_is_one_json_line() -> None:
    exporter = InMemorySpanExporter()
    provider = TracerProvider(resource=Resource.create({"service.name": "pay"}))
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    tracer = provider.get_tracer("t")
    with tracer.start_as_current_span("outer"), tracer.start_as_current_span("inner"):
        pass
    inner, outer = (json.loads(tracing.span_line(s)) for s in exporter.get_finished_spans())
    assert inner["parent_id"] == outer["span_id"] and outer["parent_id"] is None
    assert inner["service"] == "pay" and inner["end_ns"] >= inner["start_ns"]
    assert inner["kind"] == "INTERNAL" and inner["status"] == "UNSET"
