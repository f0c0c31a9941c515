"""Envoy's spans into the local trace file: a minimal OTLP/gRPC trace receiver.

    python -m ops.trace_sink --port 4317 --file var/traces.jsonl

The services append their own spans to the file (servicekit/tracing.py); Envoy can only send
OTLP, so `make run` gives its edge this receiver, which appends each span it is sent as the
same one-line JSON. With OTEL_EXPORTER_OTLP_ENDPOINT set, Envoy and the services report to
that collector instead and this is not started.
"""

from __future__ import annotations

import argparse
import json
import pathlib
import threading
from concurrent import futures
from typing import Any

import grpc
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2, trace_service_pb2_grpc
from opentelemetry.proto.common.v1.common_pb2 import AnyValue
from opentelemetry.proto.trace.v1.trace_pb2 import Span, Status

DEFAULT_PORT = 4317


class TraceSink(trace_service_pb2_grpc.TraceServiceServicer):
    def __init__(self, path: pathlib.Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self._lock = threading.Lock()

    def Export(
        self, request: trace_service_pb2.ExportTraceServiceRequest, context: grpc.ServicerContext
    ) -> trace_service_pb2.ExportTraceServiceResponse:
        lines = []
        for resource_spans in request.resource_spans:
            service = _attributes(resource_spans.resource.attributes).get("service.name", "")
            for scope_spans in resource_spans.scope_spans:
                lines += [_line(span, service) for span in scope_spans.spans]
        with self._lock, self.path.open("a", encoding="utf-8") as out:
            out.write("".join(lines))
        return trace_service_pb2.ExportTraceServiceResponse()


def _line(span: Span, service: str) -> str:
    """The JSON line servicekit.tracing.span_line writes for a span of the services."""
    return (
        json.dumps(
            {
                "trace_id": span.trace_id.hex(),
                "span_id": span.span_id.hex(),
                "parent_id": span.parent_span_id.hex() or None,
                "name": span.name,
                "service": service,
                "kind": Span.SpanKind.Name(span.kind).removeprefix("SPAN_KIND_"),
                "start_ns": span.start_time_unix_nano,
                "end_ns": span.end_time_unix_nano,
                "status": Status.StatusCode.Name(span.status.code).removeprefix("STATUS_CODE_"),
                "attributes": _attributes(span.attributes),
            },
            separators=(",", ":"),
        )
        + "\n"
    )


def _attributes(attributes: Any) -> dict[str, Any]:
    return {item.key: _value(item.value) for item in attributes}


def _value(value: AnyValue) -> Any:
    kind = value.WhichOneof("value")
    if kind in ("string_value", "bool_value", "int_value", "double_value"):
        return getattr(value, kind)
    return str(value)  # arrays, maps, bytes: rare in Envoy's spans; kept readable


def serve(port: int, path: pathlib.Path, address: str = "127.0.0.1") -> tuple[grpc.Server, int]:
    """Start the receiver; returns the server and its port (port 0: a free one)."""
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=2))
    trace_service_pb2_grpc.add_TraceServiceServicer_to_server(TraceSink(path), server)
    bound = server.add_insecure_port(f"{address}:{port}")
    server.start()
    return server, bound


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--port", type=int, default=DEFAULT_PORT)
    parser.add_argument("--file", type=pathlib.Path, default=pathlib.Path("var/traces.jsonl"))
    args = parser.parse_args()
    server, _ = serve(args.port, args.file)
    server.wait_for_termination()


if __name__ == "__main__":
    main()
