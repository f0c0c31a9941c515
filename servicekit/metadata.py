"""Request headers as a gRPC service sees them (Envoy passes HTTP headers on as metadata)."""

from __future__ import annotations

import grpc


def request_header(context: grpc.aio.ServicerContext, name: str) -> str:
    """The value of one request header (lower-case name), "" when absent."""
    for key, value in context.invocation_metadata() or ():
        if key == name:
            return str(value)
    return ""
