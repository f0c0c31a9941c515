"""Depth of each service's queue over a run, sampled by passive queue declarations.

RabbitMQ's management plugin is not enabled here, and a passive queue.declare answers with
the queue's ready messages without touching it. Deliveries a consumer holds unacked (up to
its prefetch) are not counted: the depth is what waits for a consumer.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import aio_pika
import aio_pika.exceptions

Sample = tuple[float, dict[str, int]]  # (seconds since start, queue -> ready messages)


async def _depths(
    connection: aio_pika.abc.AbstractConnection, queues: Sequence[str]
) -> dict[str, int]:
    depths: dict[str, int] = {}
    for name in queues:
        channel = await connection.channel()
        try:
            queue = await channel.declare_queue(name, passive=True)
        except aio_pika.exceptions.ChannelClosed:
            continue  # a service that consumes nothing has no queue
        depths[name] = int(queue.declaration_result.message_count or 0)
        await channel.close()
    return depths


@dataclass
class QueueMonitor:
    """Samples the queues every `interval` s in a thread of its own until stop()."""

    amqp_url: str
    queues: Sequence[str]
    interval: float = 5.0
    report: Callable[[Sample], None] = lambda sample: None
    samples: list[Sample] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def __enter__(self) -> QueueMonitor:
        self._thread = threading.Thread(target=lambda: asyncio.run(self._run()), daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(30)

    async def _run(self) -> None:
        started = time.monotonic()
        connection = await aio_pika.connect(self.amqp_url, timeout=10)
        async with connection:
            while True:
                sample = (time.monotonic() - started, await _depths(connection, self.queues))
                self.samples.append(sample)
                self.report(sample)
                if await asyncio.to_thread(self._stop.wait, self.interval):
                    return


def depths(amqp_url: str, queues: Sequence[str]) -> dict[str, int]:
    """Each queue's ready messages now."""

    async def once() -> dict[str, int]:
        connection = await aio_pika.connect(amqp_url, timeout=10)
        async with connection:
            return await _depths(connection, queues)

    return asyncio.run(once())


def wait_drained(
    amqp_url: str, queues: Sequence[str], timeout: float = 60.0, since: float | None = None
) -> float | None:
    """Seconds from `since` (time.monotonic(); default: now) until every queue was empty, or
    None if one still holds messages after timeout seconds of waiting."""
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        if not any(depths(amqp_url, queues).values()):
            return time.monotonic() - (started if since is None else since)
        time.sleep(0.5)
    return None


def growing(samples: Sequence[Sample], queue: str, slack: int = 200) -> bool:
    """Did the queue grow through the run, beyond what a burst explains?

    Growing: it ends the run at its deepest, more than `slack` messages deeper than it ever
    was in the first half. A consumer keeping up holds a steady depth; one falling behind
    grows all along.
    """
    depths = [d[queue] for _, d in samples if queue in d]
    if len(depths) < 4:
        return False
    half = len(depths) // 2
    return depths[-1] > max(depths[:half]) + slack and depths[-1] >= max(depths[half:])
