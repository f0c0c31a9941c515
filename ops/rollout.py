"""Zero-downtime rollout: replace a service's replicas one at a time.

Each service has more slots (ports) in Envoy's cluster than replicas running,
so there is always a free one to surge into, like a Kubernetes rolling update
with maxSurge 1 and maxUnavailable 0. For each running replica: start a new
one in a free slot, wait until it reports SERVING and Envoy routes to it, then
SIGTERM the old one, which turns NOT_SERVING, drains and exits.

    python -m ops.rollout order        # against `make run` (supervisord)
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from collections.abc import Callable
from typing import Protocol

import grpc
import httpx
from grpc_health.v1 import health_pb2, health_pb2_grpc

from ops.run import VAR, slot_ports
from servicekit import registry

SERVING = health_pb2.HealthCheckResponse.SERVING


class Slots(Protocol):
    def running(self) -> list[int]: ...
    def free(self) -> list[int]: ...
    def start(self, port: int) -> None: ...
    def stop(self, port: int) -> None: ...


def rollout(
    slots: Slots,
    serving: Callable[[int], bool],
    routed: Callable[[int], bool],
    timeout: float = 60.0,
    say: Callable[[str], None] = print,
) -> None:
    for old in slots.running():
        free = slots.free()
        if not free:
            raise RuntimeError("no free slot to start the new replica in")
        new = free[0]
        say(f"starting :{new}")
        slots.start(new)
        _wait(lambda p=new: serving(p) and routed(p), timeout, f":{new} serving and routed")  # type: ignore[misc]
        say(f":{new} is SERVING and routed; stopping :{old}")
        slots.stop(old)
    say("rollout done")


def _wait(condition: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out waiting for {what}")
        time.sleep(0.1)


def health_serving(port: int, service: str) -> bool:
    """Readiness as the kubelet and Envoy ask for it."""
    try:
        with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
            stub = health_pb2_grpc.HealthStub(channel)
            reply = stub.Check(health_pb2.HealthCheckRequest(service=service), timeout=1)
            return bool(reply.status == SERVING)
    except grpc.RpcError:
        return False


def envoy_routes_to(admin_url: str, port: int) -> bool:
    """Every Envoy cluster that lists the host (order has two: the edge's and
    PlaceOrder's own breaker) has found it healthy."""
    try:
        clusters = httpx.get(f"{admin_url}/clusters", timeout=2).text
    except httpx.HTTPError:
        return False
    flags = [
        line.rpartition("::")[2]
        for line in clusters.splitlines()
        if f"::127.0.0.1:{port}::health_flags::" in line
    ]
    return bool(flags) and all(flag == "healthy" for flag in flags)


class SupervisorSlots:
    """The slots of one service under `make run`'s supervisord."""

    def __init__(self, service: str) -> None:
        self.service = service
        self.ports = slot_ports(service)

    def _ctl(self, *args: str) -> str:
        command = [
            sys.executable,
            "-m",
            "supervisor.supervisorctl",
            "-c",
            str(VAR / "supervisord.conf"),
        ]
        result = subprocess.run([*command, *args], capture_output=True, text=True, check=False)
        return result.stdout

    def _program(self, port: int) -> str:
        return f"bread:{self.service}-{self.ports.index(port) + 1}"

    def running(self) -> list[int]:
        status = self._ctl("status")
        return [
            p
            for p in self.ports
            if f"{self._program(p)} " in status
            and "RUNNING"
            in next(line for line in status.splitlines() if line.startswith(self._program(p)))
        ]

    def free(self) -> list[int]:
        return [p for p in self.ports if p not in self.running()]

    def start(self, port: int) -> None:
        self._ctl("start", self._program(port))

    def stop(self, port: int) -> None:
        self._ctl("stop", self._program(port))  # SIGTERM, waits for the drain and exit


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("service", choices=registry.NAMES)
    parser.add_argument("--envoy-admin", default="http://127.0.0.1:9901")
    args = parser.parse_args()
    readiness = registry.service(args.service).readiness_name
    rollout(
        SupervisorSlots(args.service),
        serving=lambda port: health_serving(port, readiness),
        routed=lambda port: envoy_routes_to(args.envoy_admin, port),
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
