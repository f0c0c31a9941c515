"""Inbox pruning: an applied event's id is kept only as long as the event can come again.

A redelivery comes within minutes, a replay from the event log (`<exchange>.log`)
at most LOG_RETENTION_DAYS (7) after the event; INBOX_RETENTION_DAYS (8 by default,
never less than the log's) covers both. Older rows are deleted in small batches,
each its own short transaction with a pause after it, so requests queued for the
database thread (and SQLite's one writer) go first and the writer is never held long.
"""

from __future__ import annotations

import asyncio
import logging
from datetime import datetime, timedelta

from servicekit.clock import utcnow
from servicekit.db import Database
from servicekit.inbox import InboxEvent

log = logging.getLogger(__name__)

BATCH = 200
PAUSE_SECONDS = 0.01
INTERVAL_SECONDS = 600.0


async def keep_inbox_pruned(
    db: Database, retention: timedelta, interval: float = INTERVAL_SECONDS
) -> None:
    """Prune the inbox now and then every interval, until cancelled (a supervised task)."""
    while True:
        deleted = await prune_inbox(db, utcnow() - retention)
        if deleted:
            log.info("pruned %d inbox rows applied over %s ago", deleted, retention)
        await asyncio.sleep(interval)


async def prune_inbox(db: Database, applied_before: datetime, batch: int = BATCH) -> int:
    """Delete inbox rows applied before then, batch by batch; returns how many."""
    total = 0
    while True:
        deleted = await db.transaction(_delete_batch, applied_before, batch)
        total += deleted
        if deleted < batch:
            return total
        await asyncio.sleep(PAUSE_SECONDS)


def _delete_batch(applied_before: datetime, batch: int) -> int:
    # Ids first, then a delete by primary key: MariaDB refuses LIMIT in an IN subquery.
    ids = [
        row.event_id
        for row in InboxEvent.select(InboxEvent.event_id)
        .where(InboxEvent.applied < applied_before)
        .limit(batch)
    ]
    if not ids:
        return 0
    return int(InboxEvent.delete().where(InboxEvent.event_id.in_(ids)).execute())
