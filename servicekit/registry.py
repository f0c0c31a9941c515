"""Every bread service, once: what `make run`, rollout, the Envoy config, the test harness,
the Kubernetes tests and the Dockerfile's checks derive from.

Adding a service is a package `<name>_svc`, its proto, an entry here and a Kubernetes
manifest (docs/adding-a-service.md); tests/unit/test_registry.py proves they agree.

Plain data: no generated code is imported here, so ops/ and the Envoy rendering work before
`make proto` has run. A service's own spec.py ties its entry to the generated descriptor.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

# Where a service keeps its data under `DB=polyglot` (ops/profiles.py); SQLite otherwise.
Database = Literal["sqlite", "postgresql", "mariadb"]


@dataclass(frozen=True)
class Edge:
    """How the gateway's edge listener exposes a service's API to clients."""

    # A GET that an operator's token gets a 200 for once the edge routes to the service
    # (the harness waits for each; the transcoder maps the path onto the API).
    probe: str
    # Methods that exist for other services only: the edge answers 404 "no such API".
    internal_methods: tuple[str, ...] = ()
    # Roles the edge admits to the API (Envoy RBAC on the token's role); empty: every
    # signed-in caller. The service checks its finer rules itself (servicekit/identity.py).
    roles: tuple[str, ...] = ()


@dataclass(frozen=True)
class Service:
    # Short name: the cluster in Envoy, the supervisord program, the Kubernetes Service and
    # Deployment, the queue `<QUEUE_PREFIX>.<name>`, the database `<prefix>_<name>`.
    name: str
    # gRPC port; `make run` adds slots at +10000 and +20000 for replicas and rollouts.
    port: int
    # The gRPC service clients call: edge routes, the transcoder, and the readiness health
    # name (liveness is "").
    api: str
    # The generated module that defines `api` (for reflection, which describes every API).
    proto_module: str
    polyglot_database: Database = "sqlite"
    edge: Edge | None = None

    @property
    def package(self) -> str:
        """The Python package: `python -m <package>` runs the service."""
        return f"{self.name}_svc"

    @property
    def readiness_name(self) -> str:
        return self.api


SERVICES: tuple[Service, ...] = (
    Service(
        "order",
        8081,
        "bread.order.v1.OrderService",
        "bread.order.v1.order_pb2",
        polyglot_database="postgresql",
        edge=Edge(probe="/menu"),
    ),
    Service(
        "pay",
        8082,
        "bread.pay.v1.PaymentService",
        "bread.pay.v1.pay_pb2",
        polyglot_database="mariadb",
        # Charging is order's call through the mesh listener; refunds follow the saga.
        edge=Edge(probe="/payments", internal_methods=("Pay", "CancelPayment")),
    ),
    Service(
        "bakery",
        8083,
        "bread.bakery.v1.BakeryService",
        "bread.bakery.v1.bakery_pb2",
        edge=Edge(probe="/bakeries", roles=("baker", "operator")),
    ),
    Service(
        "customer",
        8084,
        "bread.customer.v1.MypageService",
        "bread.customer.v1.mypage_pb2",
        edge=Edge(probe="/mypages"),
    ),
)

NAMES: tuple[str, ...] = tuple(service.name for service in SERVICES)
BY_NAME: dict[str, Service] = {service.name: service for service in SERVICES}


def service(name: str) -> Service:
    """The registered service called name; KeyError naming the registered ones otherwise."""
    try:
        return BY_NAME[name]
    except KeyError:
        raise KeyError(f"no service {name!r}: registered are {', '.join(NAMES)}") from None
