"""Nothing lost, nothing applied twice: kill -9 consumers and the relay owner in the
middle of a burst, drop every broker connection, feed a poison message."""

from __future__ import annotations

import asyncio
import contextlib
import pathlib
import sqlite3
import subprocess
import threading
from collections import Counter
from collections.abc import Callable, Iterator

import aio_pika
import grpc
import pytest

from bread.order.v1 import order_pb2, order_pb2_grpc
from servicekit.events import Topology
from servicekit.settings import DEFAULT_AMQP_URL
from tests.support.polling import wait_for
from tests.support.system import BreadSystem, running_system

BURST = 512  # at least 500, in equal shares per client
CONCURRENCY = 16


@pytest.fixture
def system(tmp_path: pathlib.Path) -> Iterator[BreadSystem]:
    with running_system(tmp_path) as bread:
        yield bread


def rows(system: BreadSystem, service: str, sql: str) -> list[tuple]:
    path = system.urls[service].removeprefix("sqlite:///")
    with sqlite3.connect(path, timeout=10) as db:
        return db.execute(sql).fetchall()


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


def finish_orders(system: BreadSystem) -> dict[str, str]:
    """Drive every paid order to an end: deliver, reject or cancel, by turns."""
    paid = [r[0] for r in rows(system, "order", "SELECT id FROM orders WHERE status = 2")]
    wait_for(
        lambda: len(rows(system, "bakery", "SELECT order_id FROM tickets")) >= len(paid),
        timeout=60,
        what="a ticket for every paid order",
    )
    expected: dict[str, str] = {}
    refused: list[str] = []
    lock = threading.Lock()
    # By turns: the calls that take an order to each end.
    endings = [
        (("/bakeries/{}:accept", "/bakeries/{}:deliver"), "DELIVERED"),
        (("/bakeries/{}:reject",), "REJECTED"),
        (("/orders/{}:cancel",), "CANCELED"),
    ]

    def drive(chunk: list[tuple[int, str]]) -> None:
        with system.client(timeout=10) as http:
            for n, oid in chunk:
                calls, end = endings[n % len(endings)]
                for call in calls:
                    response = http.post(call.format(oid), json={})
                    if response.status_code != 200:
                        with lock:
                            refused.append(f"{call.format(oid)}: {response.text}")
                with lock:
                    expected[oid] = end

    numbered = list(enumerate(paid))
    threads = [threading.Thread(target=drive, args=(numbered[i::8],)) for i in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not refused, refused[:5]
    return expected


def assert_consistent(system: BreadSystem, expected: dict[str, str]) -> None:
    """Every order at its end everywhere; one charge per order; Mypage == orders."""
    names = {v: k.removeprefix("ORDER_STATUS_") for k, v in order_pb2.OrderStatus.items()}

    def orders() -> dict[str, tuple]:
        return {
            r[0]: r[1:]
            for r in rows(
                system,
                "order",
                "SELECT id, customer_id, item, qty, price, status, payment_id FROM orders",
            )
        }

    def settled() -> bool:
        current = orders()
        return all(names[current[oid][4]] == end for oid, end in expected.items()) and not any(
            names[o[4]] == "PENDING" for o in current.values()
        )

    wait_for(settled, timeout=60, what="orders at their final state")
    final = orders()
    assert len(final) >= len(expected) > BURST // 3

    payments = rows(system, "pay", "SELECT order_id, status FROM payments")
    per_order = Counter(order_id for order_id, _ in payments)
    assert max(per_order.values()) == 1  # never two payments for one order

    def refunds_done() -> bool:
        status = dict(rows(system, "pay", "SELECT order_id, status FROM payments"))
        for oid, order in final.items():
            end = names[order[4]]
            want = {"DELIVERED": {1}, "REJECTED": {2}, "CANCELED": {2}, "FAILED": {2, 3}}[end]
            if status.get(oid) not in want:
                return False
        return True

    wait_for(refunds_done, timeout=60, what="a refund or void for every unfinished order")

    def mypages_match() -> bool:
        pages = {
            r[0]: r[1:]
            for r in rows(
                system,
                "customer",
                "SELECT order_id, customer_id, item, qty, price, order_status, "
                "payment_id FROM mypages",
            )
        }
        for oid, (customer, item, qty, price, status, payment_id) in final.items():
            page = pages.get(oid)
            if page is None or page[:4] != (customer, item, qty, price):
                return False
            if page[4] != names[status]:
                return False
            if payment_id and page[5] != payment_id:
                return False
        return True

    wait_for(mypages_match, timeout=60, what="Mypage rows equal to the orders table")


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
    listing = subprocess.run(
        ["rabbitmqctl", "-q", "list_connections", "pid", "client_properties"],
        capture_output=True,
        text=True,
        check=True,
        timeout=30,
    ).stdout
    pids = [line.split("\t")[0] for line in listing.splitlines() if system.queue_prefix in line]
    for pid in pids:
        subprocess.run(
            ["rabbitmqctl", "-q", "close_connection", pid, "test: broker restart"],
            check=True,
            timeout=30,
            capture_output=True,
        )
    return len(pids)


def test_broker_connections_dropped_mid_burst(system: BreadSystem) -> None:
    closed: list[int] = []
    asyncio.run(place_burst(system, {0.3: lambda: closed.append(close_broker_connections(system))}))
    assert closed and closed[0] >= 4  # every service had its connection cut
    expected = finish_orders(system)
    close_broker_connections(system)
    assert_consistent(system, expected)


def test_poison_message_is_dead_lettered_and_consumer_goes_on(system: BreadSystem) -> None:
    topology = Topology(system.exchange)
    bakery_queue = f"{system.queue_prefix}.bakery"

    async def publish_poison_and_read_dlq() -> aio_pika.abc.AbstractIncomingMessage:
        connection = await aio_pika.connect(DEFAULT_AMQP_URL)
        async with connection:
            channel = await connection.channel()
            exchange = await channel.get_exchange(topology.exchange)
            await exchange.publish(
                aio_pika.Message(
                    b"\xff not protobuf",
                    message_id="poison-1",
                    type="bread.events.v1.OrderPlaced",
                    correlation_id="poison",
                ),
                routing_key="bread.events.v1.OrderPlaced",
            )
            dlq = await channel.get_queue(topology.dead_letter_queue(bakery_queue))

            async with dlq.iterator() as dead_letters:
                message = await asyncio.wait_for(anext(dead_letters), 30)
                await message.ack()
                return message

    dead = asyncio.run(publish_poison_and_read_dlq())
    assert dead.message_id == "poison-1"
    assert "Error" in str((dead.headers or {}).get("x-error"))
    # The consumer carried on: a real order still reaches the bakery.
    with system.client(timeout=5) as http:
        oid = http.post("/orders", json={"item": "cake", "qty": 1, "customerId": "p"}).json()["id"]
        wait_for(
            lambda: http.get(f"/bakeries/{oid}").status_code == 200, what="ticket after poison"
        )
