"""Backoff's delay must stay within its cap however many attempts a dependency's outage
takes: the inbox waits out a database "as long as it takes", and the supervisor restarts a
broker session "whatever ends them", so the attempt count has no bound."""

from __future__ import annotations

import asyncio
import logging

import pytest

from servicekit import inbox
from servicekit.supervise import Backoff, Supervisor


@pytest.mark.parametrize(
    "backoff",
    [inbox.RETRY_BACKOFF, Backoff(), Backoff(first=0.5, cap=5.0)],
    ids=["inbox retries", "supervisor", "start-up database connect"],
)
def test_the_delay_stays_within_its_cap_however_long_the_outage(backoff: Backoff) -> None:
    assert all(0 <= backoff.delay(attempt) <= backoff.cap for attempt in (1025, 10_000))


async def test_a_task_failing_for_a_missing_dependency_is_restarted_forever(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(logging.getLogger("servicekit.supervise"), "level", logging.ERROR)
    runs: list[int] = []

    async def broker_away() -> None:
        runs.append(1)
        raise ConnectionRefusedError("broker away")

    supervisor = Supervisor(Backoff(first=1e-9, cap=1e-9))
    supervisor.start("broker session", broker_away)
    try:
        seen = -1
        while seen != len(runs) <= 1100:  # until past 1,100 runs, or no run for 20 ms
            seen = len(runs)
            await asyncio.sleep(0.02)
        assert len(runs) > 1100, f"restarted {len(runs)} times, then no more"
    finally:
        await supervisor.stop()
