"""What identifies a service: its short name, its default port, its gRPC API."""

from __future__ import annotations

from dataclasses import dataclass

from google.protobuf.descriptor import ServiceDescriptor


@dataclass(frozen=True)
class ServiceSpec:
    name: str
    default_port: int
    api: ServiceDescriptor

    @property
    def readiness_name(self) -> str:
        """Health service name that reports readiness (liveness is "")."""
        return self.api.full_name
