"""SQLite's WAL stays bounded under writes that never pause (Database.checkpoint_wal).

Passive checkpoints alone never catch up with a writer that never pauses, and SQLite starts
the WAL over only after one has: the file grew without bound (2.5 GB in 17 minutes of
`make soak`). Here a real file takes back-to-back transactions for a few seconds while the
checkpointer runs at a faster pace than a service's."""

from __future__ import annotations

import asyncio
import itertools
import pathlib
import time

import peewee
import pytest

from servicekit import db as db_module
from servicekit.db import Database


class Entry(peewee.Model):
    text = peewee.CharField()


def read_then_write() -> None:
    Entry.get_or_none(Entry.text == "absent")
    Entry.create(text="x" * 200)


async def test_the_wal_is_emptied_while_writes_go_on(
    tmp_path: pathlib.Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(db_module, "CHECKPOINT_INTERVAL_SECONDS", 0.02)
    database = Database(f"sqlite:///{tmp_path}/entries.db", [Entry])
    await database.connect()
    checkpoints = asyncio.create_task(database.checkpoint_wal())
    wal = tmp_path / "entries.db-wal"
    sizes: list[int] = []
    slowest = 0.0
    try:
        deadline = time.monotonic() + 3.0
        while time.monotonic() < deadline:
            started = time.monotonic()
            # Twenty transactions queued at once: the writer never waits for work. Each reads
            # before it writes, as the services' do, and none may fail for the checkpoints.
            await asyncio.gather(*(database.transaction(read_then_write) for _ in range(20)))
            slowest = max(slowest, time.monotonic() - started)
            sizes.append(wal.stat().st_size)
    finally:
        checkpoints.cancel()
        await asyncio.gather(checkpoints, return_exceptions=True)
        await database.close()
    emptied = sum(1 for before, after in itertools.pairwise(sizes) if after < before)
    assert emptied >= 2, f"the WAL only grew: {sizes[0]} .. {sizes[-1]} bytes"
    # What holding the writer back for a TRUNCATE checkpoint costs at worst (printed with -s).
    print(f"WAL emptied {emptied} times; slowest 20 transactions: {slowest * 1e3:.1f} ms")
