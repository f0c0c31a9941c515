"""Read and redrive the dead-letter queues: python -m ops.dead_letters list|redrive [ID ...]

    make dlq                  # every dead letter of every service, with its error
    make redrive              # move them all back to the queues they came from
    make redrive ID=<event>   # only these event ids (space separated)

A dead letter goes back to the queue it died in (its x-original-queue header,
or x-death for one the broker dead-lettered itself), through the default
exchange, so only that service sees it again; it keeps its event id, so a
consumer that applied it meanwhile skips it. Listing holds the messages
unacked and then returns them: nothing is lost by looking.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import aio_pika
from aio_pika.abc import AbstractChannel, AbstractIncomingMessage

from servicekit.events import Topology, republished
from servicekit.registry import NAMES
from servicekit.settings import DEFAULT_AMQP_URL

# Headers the consumer or the broker added when the message died.
DEATH_HEADERS = ("x-error", "x-error-trace", "x-original-queue", "x-death", "x-delivery-count")


@dataclass(frozen=True)
class DeadLetter:
    queue: str  # the queue it died in
    event_id: str
    type_name: str
    order_id: str
    error: str


def origin(message: AbstractIncomingMessage) -> str:
    headers: dict[str, Any] = dict(message.headers or {})
    if queue := headers.get("x-original-queue"):
        return str(queue)
    deaths = headers.get("x-death") or []
    return (
        str(deaths[0].get("queue", "")) if deaths else str(headers.get("x-first-death-queue", ""))
    )


def describe(message: AbstractIncomingMessage) -> DeadLetter:
    headers = message.headers or {}
    reason = str(headers.get("x-first-death-reason", "?"))
    error = headers.get("x-error") or f"dead-lettered by the broker ({reason})"
    return DeadLetter(
        queue=origin(message),
        event_id=message.message_id or "",
        type_name=message.type or "",
        order_id=message.correlation_id or "",
        error=str(error),
    )


async def _drain(channel: AbstractChannel, queue_name: str) -> list[AbstractIncomingMessage]:
    """Every message in a queue, held unacked on this channel."""
    queue = await channel.get_queue(queue_name, ensure=False)
    messages = []
    while (message := await queue.get(no_ack=False, fail=False)) is not None:
        messages.append(message)
    return messages


def dead_letter_queues(queue_prefix: str) -> list[str]:
    return [Topology.dead_letter_queue(f"{queue_prefix}.{service}") for service in NAMES]


async def list_dead_letters(url: str, queue_prefix: str) -> list[DeadLetter]:
    connection = await aio_pika.connect(url)
    async with connection:
        found = []
        for dlq in dead_letter_queues(queue_prefix):
            channel = await connection.channel()
            try:
                found += [describe(m) for m in await _drain(channel, dlq)]
            except aio_pika.exceptions.ChannelNotFoundEntity:
                continue  # that service never declared its queues
            await channel.close()  # returns the held messages to the queue, in order
        return found


async def redrive(url: str, queue_prefix: str, event_ids: Iterable[str] = ()) -> int:
    """Move dead letters (all, or those with these event ids) back; returns how many."""
    wanted = set(event_ids)
    moved = 0
    connection = await aio_pika.connect(url)
    async with connection:
        publish = await connection.channel(publisher_confirms=True)
        for dlq in dead_letter_queues(queue_prefix):
            channel = await connection.channel()
            try:
                messages = await _drain(channel, dlq)
            except aio_pika.exceptions.ChannelNotFoundEntity:
                continue
            for message in messages:
                if wanted and message.message_id not in wanted:
                    continue
                headers = message.headers or {}
                again = republished(
                    message, {k: v for k, v in headers.items() if k not in DEATH_HEADERS}
                )
                # Confirmed before the dead letter is acked: a crash keeps one or both.
                await publish.default_exchange.publish(again, routing_key=origin(message))
                await message.ack()
                moved += 1
            await channel.close()
    return moved


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("command", choices=["list", "redrive"])
    parser.add_argument("ids", nargs="*", help="redrive only these event ids")
    args = parser.parse_args()
    url = os.environ.get("AMQP_URL", DEFAULT_AMQP_URL)
    prefix = os.environ.get("QUEUE_PREFIX", "bread")
    if args.command == "list":
        letters = asyncio.run(list_dead_letters(url, prefix))
        for letter in letters:
            print(
                f"{letter.queue}\t{letter.event_id}\t{letter.type_name}\t"
                f"order {letter.order_id}\t{letter.error}"
            )
        print(f"{len(letters)} dead letters", file=sys.stderr)
    else:
        print(f"redrove {asyncio.run(redrive(url, prefix, args.ids))} dead letters")
    return 0


if __name__ == "__main__":
    sys.exit(main())
