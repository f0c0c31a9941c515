"""A service's own database, chosen by URL, used off the event loop.

peewee is synchronous. Every query runs on one dedicated thread that owns the
connection, so a slow query never stalls the event loop (and the health check
with it), and SQLite sees a single writer.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import functools
import itertools
import os
import sqlite3
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar
from urllib.parse import urlparse

import peewee
from playhouse.db_url import connect

from servicekit.errors import NotFound
from servicekit.identity import Caller
from servicekit.migrations import Schema, migrate
from servicekit.sql import get_by
from servicekit.worker import Worker

T = TypeVar("T")
M = TypeVar("M", bound=peewee.Model)

# WAL lets readers run beside the writer; NORMAL sync is durable in WAL mode
# across process crashes (only an OS crash may lose the last transactions).
# No automatic checkpoints: they run inside whichever commit crosses the
# threshold and fsync there, which measured as 20-50 ms stalls in order's p99;
# Database.checkpoint_wal does them on a connection and thread of their own.
SQLITE_PRAGMAS = {
    "journal_mode": "wal",
    "synchronous": "normal",
    "busy_timeout": 5000,
    "wal_autocheckpoint": 0,
}
CHECKPOINT_INTERVAL_SECONDS = 1.0
# Every this many checkpoints, one that empties the WAL (see Database.checkpoint_wal).
WAL_RESTART_EVERY = 10


def sqlite_file(url: str) -> str | None:
    """The file of a SQLite URL; None for other databases and in-memory ones."""
    if not urlparse(url).scheme.startswith("sqlite"):
        return None
    path = url.split("///", 1)[-1]
    return path if path and path != ":memory:" else None


def open_database(url: str) -> peewee.Database:
    if path := sqlite_file(url):
        os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    if urlparse(url).scheme.startswith("sqlite"):
        # BEGIN IMMEDIATE takes the write lock at the start, waiting for it up to busy_timeout.
        # A deferred transaction that reads first and then writes cannot wait: while another
        # connection holds the write lock (the WAL's TRUNCATE checkpoint, a second process in a
        # rollout) SQLite refuses its upgrade at once with "database is locked". The service's
        # one writer thread loses nothing by it.
        return connect(url, pragmas=SQLITE_PRAGMAS, lock_type="IMMEDIATE")
    return connect(url)


def one(key: peewee.Field, value: Any, missing: str, seen_by: Caller | None = None) -> Any:
    """The row whose key is value; NotFound (gRPC NOT_FOUND) saying `missing` if none, and
    also if seen_by may not see it (the row's customer_id is not theirs), so ids do not leak."""
    row = get_by(key, value)
    if row is None or (seen_by and not seen_by.owns(getattr(row, "customer_id", ""))):
        raise NotFound(missing)
    return row


def locked(query: peewee.ModelSelect[M], skip_locked: bool = False) -> peewee.ModelSelect[M]:
    """query with FOR UPDATE (SKIP LOCKED: leaving rows others hold) where the
    database has row locks (PostgreSQL, MariaDB); SQLite has a single writer
    and needs none."""
    if not query.model._meta.database.for_update:
        return query
    return query.for_update(skip_locked=skip_locked)


class Database:
    """The database plus the one thread that talks to it."""

    def __init__(self, url: str, models: Sequence[type[peewee.Model]]) -> None:
        self.url = url
        self.peewee = open_database(url)
        self.models = list(models)
        self.peewee.bind(self.models)
        self._thread = Worker("db")

    async def run(self, fn: Callable[..., T], *args: Any) -> T:
        """Run fn(*args) on the database thread, in the caller's context (its log fields and
        trace span: an outbox row records the trace it was written in)."""
        job = functools.partial(contextvars.copy_context().run, self._reconnecting, fn, *args)
        result: T = await self._thread.run(job)
        return result

    def _reconnecting(self, fn: Callable[..., T], *args: Any) -> T:
        try:
            return fn(*args)
        except (peewee.OperationalError, peewee.InterfaceError):
            # The server went away (restart, failover): drop the dead connection
            # so that the next call opens a new one instead of failing forever.
            if not self.peewee.in_transaction():
                with contextlib.suppress(Exception):
                    self.peewee.close()
            raise

    async def transaction(self, fn: Callable[..., T], *args: Any) -> T:
        """Run fn(*args) on the database thread inside one transaction."""

        def atomic() -> T:
            with self.peewee.atomic():
                return fn(*args)

        return await self.run(atomic)

    async def connect(self, schemas: Sequence[Schema] | None = None) -> None:
        """Open the connection and migrate the schemas (servicekit.migrations); without
        schemas, the models are one schema without steps (scratch and test databases)."""

        def open_and_migrate() -> None:
            self.peewee.connect(reuse_if_open=True)
            migrate(self.peewee, schemas or [Schema("tables", self.models)])

        await self.run(open_and_migrate)

    @property
    def is_sqlite_file(self) -> bool:
        return sqlite_file(self.url) is not None

    async def checkpoint_wal(self) -> None:
        """SQLite: copy the WAL into the database file every second, until cancelled.

        PASSIVE never waits for nor blocks the writer, and the fsync happens
        here, off the request path. But under steady writes a passive
        checkpoint never catches up with the last commit, and SQLite starts the
        WAL over only after one has: it grew without bound (2.5 GB in 17
        minutes at 50 orders/s, its index mapped into order's memory). So every
        WAL_RESTART_EVERY rounds the checkpoint is TRUNCATE: it holds the writer
        back while it copies the little the passive rounds left, and empties the
        WAL (tests/integration/test_wal.py). Other databases need nothing of the kind.
        """
        path = sqlite_file(self.url)
        assert path is not None, "only SQLite files have a WAL"
        loop = asyncio.get_running_loop()
        with ThreadPoolExecutor(max_workers=1, thread_name_prefix="wal") as thread:
            connection = await loop.run_in_executor(thread, sqlite3.connect, path)
            try:
                for round_ in itertools.count(1):
                    mode = "TRUNCATE" if round_ % WAL_RESTART_EVERY == 0 else "PASSIVE"
                    await loop.run_in_executor(
                        thread, connection.execute, f"PRAGMA wal_checkpoint({mode})"
                    )
                    await asyncio.sleep(CHECKPOINT_INTERVAL_SECONDS)
            finally:
                await loop.run_in_executor(thread, connection.close)

    async def ping(self) -> None:
        """Raise if the database does not answer."""
        await self.run(lambda: self.peewee.execute_sql("SELECT 1").fetchone())

    async def close(self) -> None:
        await self.run(self.peewee.close)
        self._thread.stop()
