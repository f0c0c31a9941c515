"""Pay's fault switches as the resilience scenarios set them (bench.scenario, tests/resilience).

The switches are pay's FaultInjection admin service (FAULT_INJECTION=on), on pay's own port:
the gateway never routes to it.
"""

from __future__ import annotations

from dataclasses import dataclass

import grpc

from bread.admin.v1 import faults_pb2, faults_pb2_grpc
from harness.system import BreadSystem

# Envoy's pay_mesh outlier detection (envoy/envoy.yaml.tmpl) and health-check interval.
BASE_EJECTION = 5.0
MAX_EJECTION = 10.0
HEALTH_CHECK_INTERVAL = 1.0


@dataclass(frozen=True)
class Scenario:
    faults: faults_pb2.Faults
    what: str
    delay: float  # default per-client pause (siege -d)


SCENARIOS: dict[str, Scenario] = {
    "slow-pay": Scenario(
        faults_pb2.Faults(delay_min_ms=400, delay_max_ms=620),
        "pay sleeps 400-620 ms per Pay; the mesh cuts a call at 610 ms",
        0.0,
    ),
    "failing-pay": Scenario(
        faults_pb2.Faults(error_rate=1.0, error_code=grpc.StatusCode.UNAVAILABLE.value[0]),
        "every Pay answers UNAVAILABLE",
        2.0,
    ),
    "hung-pay": Scenario(
        faults_pb2.Faults(hang=True), "every Pay is accepted and never answered", 2.0
    ),
    "recovery": Scenario(
        faults_pb2.Faults(error_rate=1.0, error_code=grpc.StatusCode.UNAVAILABLE.value[0]),
        "pay answers UNAVAILABLE until Envoy ejects it, then is healthy again (no restart)",
        2.0,
    ),
}


def set_faults(system: BreadSystem, faults: faults_pb2.Faults) -> None:
    """On pay's own port: the FaultInjection service is never reachable through the gateway."""
    with grpc.insecure_channel(f"127.0.0.1:{system.services['pay'].port}") as channel:
        faults_pb2_grpc.FaultInjectionStub(channel).SetFaults(faults, timeout=5)
