"""Inbox pruning: rows applied before the retention window go, in batches of at most BATCH
rows each in its own transaction; newer rows stay; the supervised task prunes on its
schedule; the window may not be shorter than the event log's."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any

import pytest

from servicekit import pruning
from servicekit.clock import utcnow
from servicekit.db import Database
from servicekit.inbox import InboxEvent
from servicekit.pruning import keep_inbox_pruned, prune_inbox
from servicekit.settings import Settings
from tests.unit.fakes import eventually, memory_database

RETENTION = timedelta(days=8)


@pytest.fixture
async def db() -> AsyncIterator[Database]:
    database = await memory_database([])
    yield database
    await database.close()


async def applied(db: Database, prefix: str, count: int, age: timedelta) -> None:
    when = utcnow() - age
    rows = [
        {"event_id": f"{prefix}-{n}", "type_name": "OrderPlaced", "applied": when}
        for n in range(count)
    ]
    await db.transaction(lambda: InboxEvent.insert_many(rows).execute())


async def kept(db: Database) -> set[str]:
    return set(await db.run(lambda: [row.event_id for row in InboxEvent.select()]))


async def test_rows_older_than_the_window_go_in_small_transactions(
    db: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(pruning, "PAUSE_SECONDS", 0)
    await applied(db, "old", 1203, RETENTION + timedelta(hours=1))
    await applied(db, "new", 5, RETENTION - timedelta(hours=1))
    sizes: list[int] = []
    real = db.transaction

    async def counted(fn: Any, *args: Any) -> Any:
        deleted = await real(fn, *args)
        sizes.append(deleted)
        return deleted

    monkeypatch.setattr(db, "transaction", counted)
    assert await prune_inbox(db, utcnow() - RETENTION, batch=100) == 1203
    assert sizes == [100] * 12 + [3]
    assert await kept(db) == {f"new-{n}" for n in range(5)}
    assert await prune_inbox(db, utcnow() - RETENTION, batch=100) == 0


async def test_the_task_prunes_on_its_schedule(db: Database) -> None:
    task = asyncio.create_task(keep_inbox_pruned(db, RETENTION, interval=0.01))
    try:
        await applied(db, "new", 1, timedelta(days=1))
        await applied(db, "old", 3, RETENTION + timedelta(days=1))

        async def only_new_left() -> bool:
            return await kept(db) == {"new-0"}

        await eventually(only_new_left)
        await applied(db, "later", 2, RETENTION + timedelta(days=2))  # found on a later pass
        await eventually(only_new_left)
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


def test_the_window_outlasts_the_event_log() -> None:
    assert Settings.from_env("order", 8081, {}).inbox_retention_days == 8
    assert (
        Settings.from_env("order", 8081, {"INBOX_RETENTION_DAYS": "30"}).inbox_retention_days == 30
    )
    with pytest.raises(ValueError, match="more than the event log's 7 days"):
        Settings.from_env("order", 8081, {"INBOX_RETENTION_DAYS": "7"})
