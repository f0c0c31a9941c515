"""What identifies a service: its short name, its default port, its gRPC API."""

from __future__ import annotations

from dataclasses import dataclass

from google.protobuf.descriptor import ServiceDescriptor

from servicekit import registry


@dataclass(frozen=True)
class ServiceSpec:
    name: str
    default_port: int
    api: ServiceDescriptor

    @classmethod
    def registered(cls, name: str, api: ServiceDescriptor) -> ServiceSpec:
        """The registry's entry for name with its generated API; they must agree."""
        entry = registry.service(name)
        if api.full_name != entry.api:
            raise ValueError(f"{name}: the registry says {entry.api}, the package {api.full_name}")
        return cls(name=name, default_port=entry.port, api=api)

    @property
    def readiness_name(self) -> str:
        """Health service name that reports readiness (liveness is "")."""
        return self.api.full_name
