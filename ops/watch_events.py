"""Print domain events as they flow: python -m ops.watch_events [--from-start]

Reads the event log stream (every event the exchange routes), decoded from
protobuf to one JSON line each. It only reads: services' queues are untouched.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os

import aio_pika
from google.protobuf.json_format import MessageToDict

from servicekit.events import Topology, declare_log_stream, from_amqp
from servicekit.settings import DEFAULT_AMQP_URL


async def watch(amqp_url: str, exchange: str, from_start: bool) -> None:
    connection = await aio_pika.connect(amqp_url)
    async with connection:
        channel = await connection.channel()
        await channel.set_qos(prefetch_count=100)  # streams need a prefetch
        stream = await declare_log_stream(channel, Topology(exchange))
        offset = "first" if from_start else "next"
        async with stream.iterator(arguments={"x-stream-offset": offset}) as deliveries:
            async for delivery in deliveries:
                try:
                    event = from_amqp(delivery)
                except Exception as exc:  # forged or broken: the consumers dead-letter it
                    print(json.dumps({"event_id": delivery.message_id, "invalid": repr(exc)}))
                    await delivery.ack()
                    continue
                line = {
                    "time": event.published.isoformat(),
                    "type": event.type_name.rpartition(".")[2],
                    "order_id": event.order_id,
                    "event_id": event.event_id,
                    **MessageToDict(event.message),
                }
                print(json.dumps(line, ensure_ascii=False), flush=True)
                await delivery.ack()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--from-start", action="store_true", help="replay the log first")
    args = parser.parse_args()
    amqp_url = os.environ.get("AMQP_URL", DEFAULT_AMQP_URL)
    exchange = os.environ.get("EVENT_EXCHANGE", "bread.events")
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(watch(amqp_url, exchange, args.from_start))


if __name__ == "__main__":
    main()
