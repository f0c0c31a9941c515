"""Nothing lost, nothing applied twice: kill -9 consumers and the relay owner in the
middle of a burst, drop every broker connection. (The poison message is a chaos scenario:
tests/chaos, ops/chaos.py.)"""

from __future__ import annotations

import asyncio
import contextlib
import pathlib
from collections.abc import Callable, Iterator

import grpc
import pytest

from bread.order.v1 import order_pb2, order_pb2_grpc
from harness.system import BreadSystem, running_system
from ops import faults
from ops.audit import Expectations, read_snapshot, wait_consistent
from ops.chaos import Outcome, drive_endings
from servicekit.registry import NAMES

BURST = 512  # at least 500, in equal shares per client
CONCURRENCY = 16


@pytest.fixture
def system(tmp_path: pathlib.Path) -> Iterator[BreadSystem]:
    with running_system(tmp_path) as bread:
        yield bread


async def place_burst(system: BreadSystem, at_fraction: dict[float, Callable[[], None]]) -> None:
    """Place BURST orders through the gateway; run each fault once that share is placed."""
    placed = 0
    pending = dict(sorted(at_fraction.items()))
    async with grpc.aio.insecure_channel(system.gateway) as channel:
        stub = order_pb2_grpc.OrderServiceStub(channel)

        async def worker(count: int) -> None:
            nonlocal placed
            for _ in range(count):
                request = order_pb2.PlaceOrderRequest(item="cake", qty=1, customer_id="burst")
                # Order down or its call cut: the order is FAILED or was never stored.
                with contextlib.suppress(grpc.aio.AioRpcError):
                    await stub.PlaceOrder(request, timeout=5, metadata=system.metadata())
                placed += 1
                while pending and placed >= next(iter(pending)) * BURST:
                    fault = pending.pop(next(iter(pending)))
                    await asyncio.to_thread(fault)

        await asyncio.gather(*(worker(BURST // CONCURRENCY) for _ in range(CONCURRENCY)))


def finish_orders(system: BreadSystem) -> dict[str, set[str]]:
    """Drive every paid order to an end: deliver, reject or cancel, by turns."""
    out = Outcome("burst")
    everything = list(read_snapshot({"order": system.urls["order"]}).orders)
    expected = drive_endings(system, out, everything, per_end=None, threads=8)
    assert not out.problems, out.problems
    return expected


def assert_consistent(system: BreadSystem, expected: dict[str, set[str]]) -> None:
    """Every order at its end everywhere (order, pay, bakery, Mypage); one charge per order;
    a refund or void for every unfinished one (ops.audit)."""
    report = wait_consistent(system.urls, Expectations(ends=expected), timeout=60)
    assert report.ok, report.summary()
    assert sum(report.orders.values()) >= len(expected) > BURST // 3


def test_kill_consumers_and_relay_owner_mid_burst(system: BreadSystem) -> None:
    def kill(*names: str) -> Callable[[], None]:
        def act() -> None:
            for name in names:
                system.services[name].kill()

        return act

    def restart(*names: str) -> Callable[[], None]:
        def act() -> None:
            for name in names:
                system.restart(name)

        return act

    asyncio.run(
        place_burst(
            system,
            {
                0.2: kill("bakery", "customer"),
                0.4: kill("order"),
                0.5: restart("order"),
                0.7: kill("pay"),
                0.75: restart("pay"),
            },
        )
    )
    restart("bakery", "customer")()
    expected = finish_orders(system)
    system.services["pay"].kill()
    system.restart("pay")
    assert_consistent(system, expected)


def close_broker_connections(system: BreadSystem) -> int:
    """Close this run's AMQP connections from the broker side, as a broker restart would."""
    return faults.close_broker_connections(f"{system.queue_prefix}.{n}" for n in NAMES)


def test_broker_connections_dropped_mid_burst(system: BreadSystem) -> None:
    closed: list[int] = []
    asyncio.run(place_burst(system, {0.3: lambda: closed.append(close_broker_connections(system))}))
    assert closed and closed[0] >= 4  # every service had its connection cut
    expected = finish_orders(system)
    close_broker_connections(system)
    assert_consistent(system, expected)
