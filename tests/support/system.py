"""The whole of bread as real processes: four services and Envoy, for one test run.

Each system gets its own exchange and queue prefix, its own SQLite files or
uniquely named PostgreSQL/MariaDB databases, and free ports, so runs never see
each other's data; everything is removed again at stop().
"""

from __future__ import annotations

import asyncio
import pathlib
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

import aio_pika
import grpc
import httpx

from ops.databases import drop_database, ensure_database
from ops.envoy_config import EnvoyTopology
from ops.profiles import SERVICES
from servicekit.events import Topology
from servicekit.settings import DEFAULT_AMQP_URL
from tests.support.envoy import EnvoyProcess, start_envoy
from tests.support.polling import wait_for
from tests.support.ports import free_port
from tests.support.processes import ServiceProcess


def database_urls(profile: str, run_id: str, tmp: pathlib.Path) -> dict[str, str]:
    urls = {name: f"sqlite:///{tmp}/{name}.db" for name in SERVICES}
    if profile == "polyglot":
        urls["order"] = f"postgresql://postgres@127.0.0.1:5432/bread_{run_id}_order"
        urls["pay"] = f"mysql://root@127.0.0.1:3306/bread_{run_id}_pay"
    return urls


@dataclass
class BreadSystem:
    tmp: pathlib.Path
    profile: str = "default"
    extra_env: dict[str, dict[str, str]] = field(default_factory=dict)
    run_id: str = field(default_factory=lambda: uuid.uuid4().hex[:10])
    services: dict[str, ServiceProcess] = field(default_factory=dict)
    envoy: EnvoyProcess | None = None

    @property
    def exchange(self) -> str:
        return f"bread-test-{self.run_id}"

    @property
    def queue_prefix(self) -> str:
        return f"bread-test-{self.run_id}"

    @property
    def urls(self) -> dict[str, str]:
        return database_urls(self.profile, self.run_id, self.tmp)

    @property
    def gateway(self) -> str:
        assert self.envoy is not None
        return self.envoy.edge_target

    @property
    def http(self) -> str:
        return f"http://{self.gateway}"

    def env(self, name: str) -> dict[str, str]:
        assert self.envoy is not None
        return {
            "DATABASE_URL": self.urls[name],
            "AMQP_URL": DEFAULT_AMQP_URL,
            "EVENT_EXCHANGE": self.exchange,
            "QUEUE_PREFIX": self.queue_prefix,
            "PAY_TARGET": self.envoy.mesh_target,
            "DRAIN_SECONDS": "0.5",
            "STOP_GRACE_SECONDS": "5",
            **self.extra_env.get(name, {}),
        }

    def start(self) -> BreadSystem:
        for url in self.urls.values():
            ensure_database(url)
        ports = {name: free_port() for name in SERVICES}
        self.envoy = start_envoy(
            EnvoyTopology(
                # 0: Envoy picks free ports and the harness reads them back.
                edge_port=0,
                mesh_port=0,
                admin_port=0,
                listen_address="127.0.0.1",
                upstreams={name: [("127.0.0.1", port)] for name, port in ports.items()},
            ),
            self.tmp,
        )
        for name, port in ports.items():
            self.services[name] = ServiceProcess(name, port, self.env(name), self.tmp).start()
        for service in self.services.values():
            service.wait_ready()
        self.wait_gateway_ready()
        return self

    def wait_gateway_ready(self, timeout: float = 20.0) -> None:
        """Until Envoy's health checks have found every service."""
        probes = ["/menu", "/payments", "/bakeries", "/mypages"]
        with httpx.Client(base_url=self.http, timeout=2) as client:
            for path in probes:
                wait_for(
                    lambda p=path: client.get(p).status_code == 200,  # type: ignore[misc]
                    timeout=timeout,
                    what=f"gateway {path}",
                )

    def restart(self, name: str) -> ServiceProcess:
        old = self.services[name]
        self.services[name] = ServiceProcess(name, old.port, old.env, self.tmp).start()
        return self.services[name].wait_ready()

    def channel(self) -> grpc.Channel:
        return grpc.insecure_channel(self.gateway)

    def stop(self) -> None:
        for service in self.services.values():
            service.kill()
        if self.envoy is not None:
            self.envoy.stop()
        asyncio.run(self._delete_broker_objects())
        for url in self.urls.values():
            drop_database(url)

    async def _delete_broker_objects(self) -> None:
        topology = Topology(self.exchange)
        connection = await aio_pika.connect(DEFAULT_AMQP_URL)
        async with connection:
            channel = await connection.channel()
            for name in SERVICES:
                queue = f"{self.queue_prefix}.{name}"
                await channel.queue_delete(queue)
                await channel.queue_delete(topology.dead_letter_queue(queue))
            await channel.queue_delete(topology.log_stream)
            await channel.exchange_delete(topology.exchange)
            await channel.exchange_delete(topology.dead_letter_exchange)


@contextmanager
def running_system(tmp: pathlib.Path, **options: object) -> Iterator[BreadSystem]:
    system = BreadSystem(tmp, **options)  # type: ignore[arg-type]
    try:
        yield system.start()
    finally:
        system.stop()
