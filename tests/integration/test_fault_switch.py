"""Fault injection is a development switch: on at run time in dev, refused in prod."""

from __future__ import annotations

import pathlib
import uuid

import grpc
import pytest

from bread.admin.v1 import faults_pb2, faults_pb2_grpc
from tests.support.ports import free_port
from tests.support.processes import ServiceProcess
from tests.support.system import delete_broker_objects


@pytest.mark.parametrize(("profile", "allowed"), [("dev", True), ("prod", False)])
def test_fault_switch_by_profile(tmp_path: pathlib.Path, profile: str, allowed: bool) -> None:
    names = f"bread-test-faults-{uuid.uuid4().hex[:8]}"
    env = {
        "PROFILE": profile,
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
            with pytest.raises(grpc.RpcError) as invalid:
                faults.SetFaults(faults_pb2.Faults(delay_min_ms=5, delay_max_ms=1), timeout=5)
            expected = (
                grpc.StatusCode.INVALID_ARGUMENT
                if allowed
                else (grpc.StatusCode.FAILED_PRECONDITION)
            )
            assert invalid.value.code() == expected
    finally:
        pay.kill()
        delete_broker_objects(names, names)
