"""The whole of bread as real processes: every registered service and Envoy, for one test,
benchmark or scenario run.

Each system gets its own exchange and queue prefix, its own SQLite files or
uniquely named PostgreSQL/MariaDB databases, and free ports, so runs never see
each other's data; everything is removed again at stop(). A service given more
than one replica keeps its data on PostgreSQL (ops.profiles.database_urls), as
under `make run REPLICAS=2`.

A BreadSystem is also an ops.faults.Target: the chaos scenarios run against it.
"""

from __future__ import annotations

import asyncio
import pathlib
import threading
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import aio_pika
import grpc
import httpx

from harness.envoy import EnvoyProcess, start_envoy
from harness.polling import wait_for
from harness.ports import free_port
from harness.processes import ServiceProcess
from ops import trace_sink
from ops.databases import drop_database, ensure_database
from ops.dev_signin import SignInServer
from ops.envoy_config import EnvoyTopology
from ops.faults import Replica
from ops.profiles import database_urls
from ops.rollout import envoy_routes_to
from ops.tokens import DevIssuer
from servicekit import registry
from servicekit.events import Topology
from servicekit.registry import NAMES
from servicekit.settings import DEFAULT_AMQP_URL


@dataclass
class BreadSystem:
    tmp: pathlib.Path
    profile: str = "default"
    extra_env: dict[str, dict[str, str]] = field(default_factory=dict)
    # Replicas per service (1 when not given); a service given here also gets
    # one free slot in Envoy's cluster for a rollout to start a new replica in.
    replicas: dict[str, int] = field(default_factory=dict)
    run_id: str = field(default_factory=lambda: uuid.uuid4().hex[:10])
    services: dict[str, ServiceProcess] = field(default_factory=dict)
    # Every running replica by service and port; services[name] is the first.
    replica_processes: dict[str, dict[int, ServiceProcess]] = field(default_factory=dict)
    slots: dict[str, list[int]] = field(default_factory=dict)
    envoy: EnvoyProcess | None = None
    # The edge's per-caller rate limit; off unless a test is about it.
    rate_limit: int = 0
    # The page's development sign-in (POST /auth/dev-token), in this process, behind the edge.
    dev_signin: bool = False
    signin_server: SignInServer | None = None
    # The share of requests traced (TRACE_SAMPLE_RATIO; 0: off): the services and the edge
    # (through an OTLP receiver in this process) append their spans to trace_file.
    trace_ratio: float = 0.0
    trace_server: grpc.Server | None = None

    @property
    def trace_file(self) -> pathlib.Path:
        return self.tmp / "traces.jsonl"

    @property
    def exchange(self) -> str:
        return f"bread-test-{self.run_id}"

    @property
    def queue_prefix(self) -> str:
        return f"bread-test-{self.run_id}"

    @property
    def urls(self) -> dict[str, str]:
        return database_urls(self.profile, str(self.tmp), f"bread_{self.run_id}", self.replicas)

    @property
    def amqp_url(self) -> str:
        return DEFAULT_AMQP_URL

    @property
    def admin_url(self) -> str:
        assert self.envoy is not None
        return self.envoy.admin_url

    @property
    def gateway(self) -> str:
        assert self.envoy is not None
        return self.envoy.edge_target

    @property
    def http(self) -> str:
        return f"http://{self.gateway}"

    @property
    def issuer(self) -> DevIssuer:
        """Signs this system's tokens; its JWKS is what the edge verifies them with."""
        return DevIssuer(self.tmp / "keys")

    def token(self, role: str = "operator", subject: str = "tester") -> str:
        return self.issuer.token(subject, role)

    def auth(self, role: str = "operator", subject: str = "tester") -> dict[str, str]:
        """HTTP headers of a signed-in caller (an operator may do everything)."""
        return {"authorization": f"Bearer {self.token(role, subject)}"}

    def metadata(self, role: str = "operator", subject: str = "tester") -> tuple[tuple[str, str]]:
        """gRPC metadata of a signed-in caller."""
        return (("authorization", f"Bearer {self.token(role, subject)}"),)

    def client(
        self, role: str = "operator", subject: str = "tester", timeout: float = 5
    ) -> httpx.Client:
        """An HTTP client of the edge, signed in."""
        return httpx.Client(base_url=self.http, headers=self.auth(role, subject), timeout=timeout)

    def env(self, name: str) -> dict[str, str]:
        assert self.envoy is not None
        return {
            "DATABASE_URL": self.urls[name],
            "AMQP_URL": DEFAULT_AMQP_URL,
            "EVENT_EXCHANGE": self.exchange,
            "QUEUE_PREFIX": self.queue_prefix,
            "PAY_TARGET": self.envoy.mesh_target,
            "FAULT_INJECTION": "on",
            "DRAIN_SECONDS": "0.5",
            "STOP_GRACE_SECONDS": "5",
            **(
                {"TRACE_SAMPLE_RATIO": str(self.trace_ratio), "TRACE_FILE": str(self.trace_file)}
                if self.trace_ratio
                else {}
            ),
            **self.extra_env.get(name, {}),
        }

    def start(self) -> BreadSystem:
        for url in self.urls.values():
            ensure_database(url)
        if self.dev_signin:
            self.signin_server = SignInServer(("127.0.0.1", 0), self.issuer)
            threading.Thread(
                target=self.signin_server.serve_forever, name="dev-signin", daemon=True
            ).start()
        collector = None
        if self.trace_ratio:
            self.trace_server, port = trace_sink.serve(0, self.trace_file)
            collector = ("127.0.0.1", port)
        self.slots = {
            name: [
                free_port() for _ in range(self.replicas[name] + 1 if name in self.replicas else 1)
            ]
            for name in NAMES
        }
        self.envoy = start_envoy(
            EnvoyTopology(
                # 0: Envoy picks free ports and the harness reads them back.
                edge_port=0,
                mesh_port=0,
                admin_port=0,
                listen_address="127.0.0.1",
                jwks_path=self.issuer.ensure_keys().jwks_path,
                rate_limit=self.rate_limit,
                trace_sample_percent=100 * self.trace_ratio,
                trace_collector=collector,
                dev_signin=(
                    ("127.0.0.1", self.signin_server.server_port) if self.signin_server else None
                ),
                upstreams={
                    name: [("127.0.0.1", port) for port in ports]
                    for name, ports in self.slots.items()
                },
            ),
            self.tmp,
        )
        for name, ports in self.slots.items():
            running = ports[: self.replicas.get(name, 1)]
            self.replica_processes[name] = {port: self.spawn(name, port) for port in running}
            self.services[name] = self.replica_processes[name][running[0]]
        for replicas in self.replica_processes.values():
            for process in replicas.values():
                process.wait_ready()
        self.wait_gateway_ready()
        return self

    def wait_gateway_ready(self, timeout: float = 20.0) -> None:
        """Until Envoy's health checks have found every service."""
        probes = [service.edge.probe for service in registry.SERVICES if service.edge]
        with self.client(timeout=2) as client:
            for path in probes:
                wait_for(
                    lambda p=path: client.get(p).status_code == 200,  # type: ignore[misc]
                    timeout=timeout,
                    what=f"gateway {path}",
                )

    def spawn(self, name: str, port: int) -> ServiceProcess:
        return ServiceProcess(name, port, self.env(name), self.tmp).start()

    def restart(self, name: str, port: int | None = None) -> ServiceProcess:
        """Start the service again on its port (the first replica's unless given); return once
        Envoy routes to it again (its health check had marked the host down)."""
        assert self.envoy is not None
        port = port or self.services[name].port
        process = self.replica_processes[name][port] = self.spawn(name, port)
        if port == self.services[name].port:
            self.services[name] = process
        process.wait_ready()
        admin = self.envoy.admin_url
        wait_for(lambda: envoy_routes_to(admin, port), timeout=15, what=f"Envoy routing to {name}")
        return process

    def running(self) -> list[Replica]:
        """Every running service process (ops.faults.Target)."""
        return [
            Replica(name, port, process.process.pid)
            for name, replicas in self.replica_processes.items()
            for port, process in replicas.items()
            if process.process is not None and process.process.poll() is None
        ]

    def revive(self, replica: Replica) -> Replica:
        """A killed replica started again, as supervisord would (ops.faults.Target)."""
        process = self.replica_processes[replica.service][replica.port]
        if process.process is not None:
            process.process.wait(10)  # reap it
        new = self.restart(replica.service, replica.port)
        assert new.process is not None
        return Replica(replica.service, replica.port, new.process.pid)

    def channel(self, role: str = "operator", subject: str = "tester") -> grpc.Channel:
        """A gRPC channel to the edge whose calls are signed in."""
        credentials = self.metadata(role, subject)
        return grpc.intercept_channel(
            grpc.insecure_channel(self.gateway), _WithMetadata(credentials)
        )

    def stop(self) -> None:
        for replicas in self.replica_processes.values():
            for process in replicas.values():
                process.kill()
        if self.envoy is not None:
            self.envoy.stop()
        if self.trace_server is not None:
            self.trace_server.stop(grace=None)
        if self.signin_server is not None:
            self.signin_server.shutdown()
            self.signin_server.server_close()
        delete_broker_objects(self.exchange, self.queue_prefix)
        for url in self.urls.values():
            drop_database(url)


def delete_broker_objects(exchange: str, queue_prefix: str) -> None:
    """Remove a test run's exchanges, queues, dead-letter queues and event log."""

    async def delete() -> None:
        topology = Topology(exchange)
        connection = await aio_pika.connect(DEFAULT_AMQP_URL)
        async with connection:
            channel = await connection.channel()
            for name in NAMES:
                queue = f"{queue_prefix}.{name}"
                await channel.queue_delete(queue)
                await channel.queue_delete(topology.dead_letter_queue(queue))
            await channel.queue_delete(topology.log_stream)
            await channel.exchange_delete(topology.exchange)
            await channel.exchange_delete(topology.dead_letter_exchange)

    asyncio.run(delete())


class ProcessSlots:
    """ops.rollout.Slots over a test system's processes."""

    def __init__(self, system: BreadSystem, name: str) -> None:
        self.system = system
        self.name = name
        self.replicas = system.replica_processes[name]

    def running(self) -> list[int]:
        return [port for port, p in self.replicas.items() if p.process and p.process.poll() is None]

    def free(self) -> list[int]:
        return [port for port in self.system.slots[self.name] if port not in self.running()]

    def start(self, port: int) -> None:
        self.replicas[port] = self.system.spawn(self.name, port)

    def stop(self, port: int) -> None:
        self.replicas[port].terminate()


@contextmanager
def running_system(tmp: pathlib.Path, **options: object) -> Iterator[BreadSystem]:
    system = BreadSystem(tmp, **options)  # type: ignore[arg-type]
    try:
        yield system.start()
    finally:
        system.stop()


class _WithMetadata(grpc.UnaryUnaryClientInterceptor):
    """Adds fixed metadata (the caller's token) to every unary call."""

    def __init__(self, metadata: tuple[tuple[str, str], ...]) -> None:
        self.metadata = metadata

    def intercept_unary_unary(self, continuation: Any, details: Any, request: Any) -> Any:
        details = details._replace(metadata=(*(details.metadata or ()), *self.metadata))
        return continuation(details, request)
