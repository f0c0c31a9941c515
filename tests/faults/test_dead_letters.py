"""The dead-letter queues as an operator uses them (ops.dead_letters, `make dlq` and
`make redrive`): a real poison message is listed with its error and nothing is taken
by looking; a redriven event is applied, and redriving it again is deduplicated."""

from __future__ import annotations

import asyncio
import pathlib
import uuid
from collections.abc import Iterator

import aio_pika
import pytest

from bread.events.v1 import events_pb2
from harness.polling import wait_for
from harness.system import BreadSystem, running_system
from ops.dead_letters import DeadLetter, list_dead_letters, redrive
from servicekit.events import Topology, event_type
from servicekit.settings import DEFAULT_AMQP_URL


@pytest.fixture
def system(tmp_path: pathlib.Path) -> Iterator[BreadSystem]:
    with running_system(tmp_path) as bread:
        yield bread


async def publish(exchange_name: str, routing_key: str, message: aio_pika.Message) -> None:
    connection = await aio_pika.connect(DEFAULT_AMQP_URL)
    async with connection:
        channel = await connection.channel(publisher_confirms=True)
        exchange = (
            await channel.get_exchange(exchange_name) if exchange_name else channel.default_exchange
        )
        await exchange.publish(message, routing_key=routing_key)


def bakery_dead_letter(system: BreadSystem, event_id: str, order_id: str, item: str) -> None:
    """Park a valid OrderPlaced in bakery's DLQ as the consumer would have."""
    queue = f"{system.queue_prefix}.bakery"
    event = events_pb2.OrderPlaced(
        order_id=order_id, customer_id="dlq", item=item, qty=1, price=25000, payment_id="p-dlq"
    )
    message = aio_pika.Message(
        event.SerializeToString(),
        message_id=event_id,
        type=event_type(event),
        correlation_id=order_id,
        headers={"x-error": "OperationalError('disk full')", "x-original-queue": queue},
    )
    asyncio.run(publish("", Topology.dead_letter_queue(queue), message))


def test_poison_is_listed_with_its_error_and_stays(system: BreadSystem) -> None:
    poison = aio_pika.Message(
        b"\xff not protobuf",
        message_id="poison-dlq",
        type="bread.events.v1.OrderPlaced",
        correlation_id="poison",
    )
    asyncio.run(publish(system.exchange, "bread.events.v1.OrderPlaced", poison))

    def listed() -> list[DeadLetter]:
        letters = asyncio.run(list_dead_letters(DEFAULT_AMQP_URL, system.queue_prefix))
        return [letter for letter in letters if letter.event_id == "poison-dlq"]

    # OrderPlaced goes to bakery and customer: both dead-letter it.
    wait_for(lambda: len(listed()) == 2, timeout=30, what="the poison listed twice")
    letters = listed()
    assert {letter.queue for letter in letters} == {
        f"{system.queue_prefix}.bakery",
        f"{system.queue_prefix}.customer",
    }
    assert all("DecodeError" in letter.error for letter in letters), letters
    assert len(listed()) == 2  # looking took nothing away


def test_redriven_event_is_applied_once(system: BreadSystem) -> None:
    event_id, order_id, marker = str(uuid.uuid4()), str(uuid.uuid4()), str(uuid.uuid4())
    bakery_dead_letter(system, event_id, order_id, "cake")
    assert asyncio.run(redrive(DEFAULT_AMQP_URL, system.queue_prefix, [event_id])) == 1
    with system.client(timeout=5) as http:
        wait_for(
            lambda: http.get(f"/bakeries/{order_id}").status_code == 200,
            timeout=20,
            what="the redriven event applied",
        )
        # The same event again (a payload that would change the ticket if applied),
        # then a marker behind it in the same queue.
        bakery_dead_letter(system, event_id, order_id, "donut")
        bakery_dead_letter(system, str(uuid.uuid4()), marker, "cake")
        assert asyncio.run(redrive(DEFAULT_AMQP_URL, system.queue_prefix)) == 2
        wait_for(
            lambda: http.get(f"/bakeries/{marker}").status_code == 200,
            timeout=20,
            what="the marker behind the repeat applied",
        )
        assert http.get(f"/bakeries/{order_id}").json()["item"] == "cake"
    assert asyncio.run(list_dead_letters(DEFAULT_AMQP_URL, system.queue_prefix)) == []
