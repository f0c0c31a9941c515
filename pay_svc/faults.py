"""Run-time switchable faults on Pay, for resilience drills (off by default).

They sit in pay itself, not in Envoy's fault filter, so that Envoy's outlier
detection and circuit breaker see a really slow or failing upstream.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time

import grpc

from bread.admin.v1 import faults_pb2, faults_pb2_grpc
from servicekit.errors import DomainError, FailedPrecondition, InvalidArgument, rpc

log = logging.getLogger(__name__)

# Stalling the loop shows the liveness probe; longer than this only hurts.
MAX_STALL_MS = 5000
MAX_DELAY_MS = 10000


class InjectedFault(DomainError):
    def __init__(self, code_number: int) -> None:
        super().__init__("injected fault")
        self.code = next(
            (code for code in grpc.StatusCode if code.value[0] == code_number),
            grpc.StatusCode.UNAVAILABLE,
        )


class FaultInjector(faults_pb2_grpc.FaultInjectionServicer):
    def __init__(self, enabled: bool) -> None:
        self.enabled = enabled
        self.faults = faults_pb2.Faults()

    async def before_pay(self) -> None:
        """Apply the current faults to one Pay call."""
        faults = self.faults
        if faults.stall_loop_ms:
            time.sleep(faults.stall_loop_ms / 1000)  # noqa: ASYNC251 - the point: stall the loop
        if faults.hang:
            await asyncio.Event().wait()  # cancelled when the caller gives up
        if faults.delay_max_ms:
            await asyncio.sleep(random.uniform(faults.delay_min_ms, faults.delay_max_ms) / 1000)
        if faults.error_rate and random.random() < faults.error_rate:
            raise InjectedFault(faults.error_code)

    @rpc
    async def SetFaults(
        self, request: faults_pb2.Faults, context: grpc.aio.ServicerContext
    ) -> faults_pb2.Faults:
        if not self.enabled:
            raise FailedPrecondition(
                "fault injection is off (FAULT_INJECTION=on enables it, never in prod)"
            )
        if (
            not 0 <= request.delay_min_ms <= request.delay_max_ms <= MAX_DELAY_MS
            or not 0 <= request.error_rate <= 1
            or not 0 <= request.stall_loop_ms <= MAX_STALL_MS
        ):
            raise InvalidArgument(
                f"need 0 <= delay_min_ms <= delay_max_ms <= {MAX_DELAY_MS},"
                f" 0 <= error_rate <= 1 and 0 <= stall_loop_ms <= {MAX_STALL_MS}"
            )
        self.faults = request
        log.warning("faults now: %s", request or "none")
        return request

    @rpc
    async def GetFaults(
        self, request: faults_pb2.GetFaultsRequest, context: grpc.aio.ServicerContext
    ) -> faults_pb2.Faults:
        return self.faults
