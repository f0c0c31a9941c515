"""Distributed tracing (OpenTelemetry): one trace from the edge to the last consumer.

Envoy's edge starts the trace and passes a W3C `traceparent` on. Each service
makes a server span for a call (opentelemetry-instrumentation-grpc), a client
span for order's call to pay (through the mesh, which passes the header on
untouched), keeps the trace context of an event in its outbox row, a producer
span when the relay publishes it (the `traceparent` AMQP header) and a
consumer span when a service applies it; what a handler records in the outbox
carries that consumer span on.

Sampling is parent-based with a ratio for traces a service starts itself
(TRACE_SAMPLE_RATIO). At 0 tracing is off: no provider, no interceptors, no
spans, no headers; what is left per call is a few `is None` tests. Spans go to
OTLP when OTEL_EXPORTER_OTLP_ENDPOINT is set (the exporter reads it), else one
JSON object per line to TRACE_FILE (`make trace` reads it).
"""

from __future__ import annotations

import contextlib
import json
import pathlib
from collections.abc import Iterator, MutableMapping
from typing import Any, TextIO

from opentelemetry import propagate, trace
from opentelemetry.instrumentation.grpc import (
    aio_client_interceptors,
    aio_server_interceptor,
    filters,
)
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import (
    BatchSpanProcessor,
    ConsoleSpanExporter,
    SimpleSpanProcessor,
    SpanExporter,
)
from opentelemetry.sdk.trace.sampling import ParentBased, TraceIdRatioBased

TRACEPARENT = "traceparent"
# The attribute that finds an order's spans (`make trace ORDER=...`).
ORDER_ID = "bread.order_id"
# Only the bread API: health checks (every second from Envoy and the kubelet) and reflection
# would bury the orders.
_TRACED_CALLS = filters.service_prefix("bread.")

# Reusable and reentrant: what an untraced event gets, for nothing.
_UNTRACED = contextlib.nullcontext()

_provider: TracerProvider | None = None
_tracer: trace.Tracer | None = None


def configure(service: str, ratio: float, exporter: SpanExporter, batch: bool = True) -> None:
    """Trace with this exporter, sampling ratio of the traces this service starts; ratio 0
    turns tracing off. batch=False exports each span as it ends (tests)."""
    global _provider, _tracer
    shutdown()
    if ratio <= 0:
        return
    _provider = TracerProvider(
        resource=Resource.create({"service.name": service}),
        sampler=ParentBased(TraceIdRatioBased(ratio)),
    )
    _provider.add_span_processor(
        # Exported from a thread of its own within a second (`make trace` right after an order).
        BatchSpanProcessor(exporter, schedule_delay_millis=1000)
        if batch
        else SimpleSpanProcessor(exporter)
    )
    _tracer = _provider.get_tracer("bread")


def exporter(otlp_endpoint: str, trace_file: str) -> SpanExporter:
    """OTLP/gRPC to the collector at otlp_endpoint, else JSON lines appended to trace_file."""
    if otlp_endpoint:
        # Imported only when used: it loads a gRPC exporter stack the file needs none of.
        from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter

        return OTLPSpanExporter()  # reads OTEL_EXPORTER_OTLP_* itself
    return ConsoleSpanExporter(out=_append(trace_file), formatter=span_line)


def _append(path: str) -> TextIO:
    pathlib.Path(path).parent.mkdir(parents=True, exist_ok=True)
    # Line-buffered appends: the services share one file, and each line is written whole.
    # Open as long as the process runs.
    return open(path, "a", buffering=1, encoding="utf-8")


def shutdown() -> None:
    """Export what is buffered and stop tracing."""
    global _provider, _tracer
    if _provider is not None:
        _provider.shutdown()
    _provider, _tracer = None, None


def server_interceptors() -> list[Any]:
    if _provider is None:
        return []
    return [aio_server_interceptor(tracer_provider=_provider, filter_=_TRACED_CALLS)]


def client_interceptors() -> list[Any]:
    if _provider is None:
        return []
    return list(aio_client_interceptors(tracer_provider=_provider))


def tag_order(order_id: str) -> None:
    """Name the order on the span in play, so that `make trace` finds its trace."""
    span = trace.get_current_span()
    if span.is_recording():
        span.set_attribute(ORDER_ID, order_id)


def current_traceparent() -> str | None:
    """The trace context in play as a traceparent header (kept in an outbox row); None
    when tracing is off or the trace is not sampled: its events then cost no span at all."""
    if _tracer is None or not trace.get_current_span().get_span_context().trace_flags.sampled:
        return None
    carrier: dict[str, str] = {}
    propagate.inject(carrier)
    return carrier.get(TRACEPARENT)


def _parent(traceparent: str | None) -> Any:
    return propagate.extract({TRACEPARENT: traceparent} if traceparent else {})


def producer_span(
    traceparent: str | None,
    event_type: str,
    event_id: str,
    order_id: str,
    headers: MutableMapping[str, Any],
) -> contextlib.AbstractContextManager[object]:
    """Publishing a stored event: a producer span under the context the event was recorded
    in, whose traceparent goes into the message's headers. A no-op when not traced."""
    if _tracer is None or traceparent is None:
        return _UNTRACED
    return _producer_span(_tracer, traceparent, event_type, event_id, order_id, headers)


@contextlib.contextmanager
def _producer_span(
    tracer: trace.Tracer,
    traceparent: str,
    event_type: str,
    event_id: str,
    order_id: str,
    headers: MutableMapping[str, Any],
) -> Iterator[None]:
    with tracer.start_as_current_span(
        f"publish {_short(event_type)}",
        context=_parent(traceparent),
        kind=trace.SpanKind.PRODUCER,
        attributes=_event_attributes(event_type, event_id, order_id),
    ):
        propagate.inject(headers)
        yield


def consumer_span(
    traceparent: str | None, event_type: str, event_id: str, order_id: str
) -> contextlib.AbstractContextManager[object]:
    """Applying an event: a consumer span under its producer's, current while the handler
    runs (what it records in the outbox continues the trace). A no-op when not traced."""
    if _tracer is None or traceparent is None:
        return _UNTRACED
    return _tracer.start_as_current_span(
        f"apply {_short(event_type)}",
        context=_parent(traceparent),
        kind=trace.SpanKind.CONSUMER,
        attributes=_event_attributes(event_type, event_id, order_id),
    )


def _short(event_type: str) -> str:
    return event_type.rsplit(".", 1)[-1]


def _event_attributes(event_type: str, event_id: str, order_id: str) -> dict[str, str]:
    return {
        "messaging.system": "rabbitmq",
        "messaging.message.id": event_id,
        "bread.event_type": event_type,
        ORDER_ID: order_id,
    }


def span_line(span: ReadableSpan) -> str:
    """One span as one line of JSON: ids in hex, times in ns since the epoch."""
    context = span.get_span_context()
    assert context is not None
    return (
        json.dumps(
            {
                "trace_id": format(context.trace_id, "032x"),
                "span_id": format(context.span_id, "016x"),
                "parent_id": format(span.parent.span_id, "016x") if span.parent else None,
                "name": span.name,
                "service": span.resource.attributes.get("service.name", ""),
                "kind": span.kind.name,
                "start_ns": span.start_time,
                "end_ns": span.end_time,
                "status": span.status.status_code.name,
                "attributes": dict(span.attributes or {}),
            },
            separators=(",", ":"),
        )
        + "\n"
    )
