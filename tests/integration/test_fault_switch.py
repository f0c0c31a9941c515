"""Fault injection is a development switch: only when FAULT_INJECTION=on, never in prod,
bounded; an unknown PROFILE stops a service at start-up."""

from __future__ import annotations

import pathlib
import uuid

import grpc
import pytest

from bread.admin.v1 import faults_pb2, faults_pb2_grpc
from harness.ports import free_port
from harness.processes import ServiceProcess
from harness.system import delete_broker_objects


@pytest.mark.parametrize(
    ("profile", "switch", "allowed"),
    [("dev", "on", True), ("dev", "off", False), ("prod", "on", False)],
)
def test_fault_switch_by_profile(
    tmp_path: pathlib.Path, profile: str, switch: str, allowed: bool
) -> None:
    names = f"bread-test-faults-{uuid.uuid4().hex[:8]}"
    env = {
        "PROFILE": profile,
        "FAULT_INJECTION": switch,
        "DATABASE_URL": f"sqlite:///{tmp_path}/pay.db",
        "EVENT_EXCHANGE": names,
        "QUEUE_PREFIX": names,
    }
    pay = ServiceProcess("pay", free_port(), env, tmp_path).start()
    try:
        pay.wait_ready()
        with grpc.insecure_channel(f"127.0.0.1:{pay.port}") as channel:
            faults = faults_pb2_grpc.FaultInjectionStub(channel)
            slow = faults_pb2.Faults(delay_min_ms=400, delay_max_ms=620)
            if allowed:
                assert faults.SetFaults(slow, timeout=5) == slow
                assert faults.GetFaults(faults_pb2.GetFaultsRequest(), timeout=5) == slow
                assert faults.SetFaults(faults_pb2.Faults(), timeout=5) == faults_pb2.Faults()
            else:
                with pytest.raises(grpc.RpcError) as refused:
                    faults.SetFaults(slow, timeout=5)
                assert refused.value.code() == grpc.StatusCode.FAILED_PRECONDITION
                assert faults.GetFaults(faults_pb2.GetFaultsRequest(), timeout=5) == (
                    faults_pb2.Faults()
                )
            expected = (
                grpc.StatusCode.INVALID_ARGUMENT if allowed else grpc.StatusCode.FAILED_PRECONDITION
            )
            for invalid in (
                faults_pb2.Faults(delay_min_ms=5, delay_max_ms=1),
                faults_pb2.Faults(stall_loop_ms=60_000),  # a stall is bounded to a few seconds
            ):
                with pytest.raises(grpc.RpcError) as refused:
                    faults.SetFaults(invalid, timeout=5)
                assert refused.value.code() == expected
    finally:
        pay.kill()
        delete_broker_objects(names, names)


def test_unknown_profile_is_refused_at_start_up(tmp_path: pathlib.Path) -> None:
    env = {"PROFILE": "production", "DATABASE_URL": f"sqlite:///{tmp_path}/pay.db"}
    pay = ServiceProcess("pay", free_port(), env, tmp_path).start()
    assert pay.process is not None and pay.process.wait(30) != 0
    assert "PROFILE must be one of dev, prod" in pay.log_tail()
