"""Background tasks that never die silently.

Every long-running task of a service (broker session with its relay and
consumer, sweeper, WAL checkpointer, inbox pruning) runs under a Supervisor:
when it ends or raises, it is logged and started again after an exponential backoff with full
jitter, so replicas that lost the same dependency do not all return at once.

A dependency being away (transient errors) is waited out: readiness reports
the database, and a lost broker delays events without stopping anything. A
task that keeps failing for any other reason is a zombie that restarting the
task will not fix: `stuck()` names it, liveness fails, and the process
supervisor (supervisord, the kubelet) restarts the whole process.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from typing import Any

from servicekit.transient import is_transient

log = logging.getLogger(__name__)

TaskFactory = Callable[[], Coroutine[Any, Any, None]]

# A run this long counts as recovered: the backoff and any failure streak start over.
HEALTHY_RUN_SECONDS = 30.0


@dataclass(frozen=True)
class Backoff:
    """Exponential backoff with full jitter: a random delay up to a doubling cap."""

    first: float = 0.2
    # Low enough that a broker or database back after an outage is used within seconds.
    cap: float = 3.0

    def delay(self, attempt: int) -> float:
        # The exponent is bounded: an outage of a thousand retries must not overflow a float.
        doublings = min(max(attempt - 1, 0), 32)
        return random.uniform(0, min(self.cap, self.first * 2**doublings))


class Supervisor:
    def __init__(self, backoff: Backoff = Backoff()) -> None:
        self.backoff = backoff
        self._stopping = False
        self._tasks: list[asyncio.Task[None]] = []
        # When each task's current streak of non-transient failures began.
        self._failing_since: dict[str, float] = {}

    def start(self, name: str, factory: TaskFactory) -> None:
        self._tasks.append(asyncio.create_task(self._keep_running(name, factory), name=name))

    async def _keep_running(self, name: str, factory: TaskFactory) -> None:
        attempt = 0
        # Not `while True`: a library that turns a cancellation into an error of its own
        # (aiormq while connecting) must not keep a stopping service's task alive.
        while not self._stopping:
            started = time.monotonic()
            try:
                await factory()
                log.warning("task %s ended; starting it again", name)
            except asyncio.CancelledError:
                raise
            except Exception as error:
                if is_transient(error):
                    log.warning("task %s waits for a dependency: %r", name, error)
                else:
                    log.exception("task %s failed; starting it again", name)
                    self._failing_since.setdefault(name, time.monotonic())
            if time.monotonic() - started > HEALTHY_RUN_SECONDS:
                attempt = 0
                self._failing_since.pop(name, None)
            if self._stopping:
                return
            attempt += 1
            await asyncio.sleep(self.backoff.delay(attempt))

    def stuck(self, longer_than: float) -> list[str]:
        """Tasks that have kept failing (not for a missing dependency) longer than that."""
        now = time.monotonic()
        return [name for name, since in self._failing_since.items() if now - since > longer_than]

    async def stop(self) -> None:
        self._stopping = True
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks.clear()
