"""Background tasks are restarted whatever ends them; only one failing for a reason
that is not a missing dependency counts as stuck (and fails liveness)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import peewee
import pytest

from servicekit.supervise import Backoff, Supervisor

FAST = Backoff(first=0.001, cap=0.005)


def failing_with(error: Callable[[], Exception], runs: list[int]) -> Callable:
    async def task() -> None:
        runs.append(1)
        raise error()

    return task


@pytest.mark.parametrize(
    ("error", "stuck"),
    [
        (lambda: ValueError("a bug"), True),
        (lambda: peewee.OperationalError("database is locked"), False),
        (lambda: ConnectionResetError("broker went away"), False),
    ],
)
async def test_failing_tasks_restart_and_only_bugs_are_stuck(
    error: Callable[[], Exception], stuck: bool
) -> None:
    runs: list[int] = []
    supervisor = Supervisor(FAST)
    supervisor.start("relay", failing_with(error, runs))
    await asyncio.sleep(0.2)
    try:
        assert len(runs) > 3  # restarted again and again
        assert supervisor.stuck(longer_than=0.1) == (["relay"] if stuck else [])
        assert supervisor.stuck(longer_than=60) == []
    finally:
        await supervisor.stop()


async def test_a_task_that_ends_is_started_again() -> None:
    runs: list[int] = []

    async def ends() -> None:
        runs.append(1)

    supervisor = Supervisor(FAST)
    supervisor.start("sweeper", ends)
    await asyncio.sleep(0.1)
    await supervisor.stop()
    assert len(runs) > 3 and supervisor.stuck(0) == []


def test_backoff_grows_to_its_cap_with_jitter() -> None:
    backoff = Backoff(first=0.1, cap=2.0)
    delays = [backoff.delay(attempt) for attempt in range(1, 12) for _ in range(50)]
    assert all(0 <= d <= 2.0 for d in delays)
    assert max(backoff.delay(10) for _ in range(200)) > 1.0  # capped, not stuck at first
    assert len(set(delays)) > 100  # jittered


async def test_stop_ends_a_task_that_turns_its_cancellation_into_an_error() -> None:
    """aiormq, cancelled while it connects, raises an error of its own: the supervisor
    must still stop (a service that cannot stop is killed by its grace period)."""

    async def connecting() -> None:
        try:
            await asyncio.sleep(3600)
        except asyncio.CancelledError:
            raise ConnectionError("connection attempt aborted") from None

    supervisor = Supervisor(Backoff(first=10.0, cap=10.0))
    supervisor.start("broker session", connecting)
    await asyncio.sleep(0.05)
    await asyncio.wait_for(supervisor.stop(), timeout=2)
