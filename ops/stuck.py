"""`make stuck`: orders that have been in a non-final status too long, with their last event.

    python -m ops.stuck [--profile default|polyglot] [--replicas N] [--threshold 60]

Against a running `make run` with the same DB and REPLICAS (the databases are found the way
`make chaos` and `make rebuild-mypage` find them). An order waits in PENDING (pay's answer),
PAID or CONFIRMED (the baker) or CANCELING (the bakery's answer); one that has not moved for
`--threshold` seconds is listed with the last event customer applied for it (its timeline:
GET /orders/{id}/timeline has the whole of it), which says where the saga stopped.
"""

from __future__ import annotations

import argparse
import pathlib
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

import peewee

from bread.order.v1.order_pb2 import OrderStatus
from ops.audit import order_status
from ops.profiles import PROFILES
from ops.run import run_database_urls
from servicekit.clock import utcnow
from servicekit.db import open_database, sqlite_file

WAITING = (
    OrderStatus.ORDER_STATUS_PENDING,
    OrderStatus.ORDER_STATUS_PAID,
    OrderStatus.ORDER_STATUS_CONFIRMED,
    OrderStatus.ORDER_STATUS_CANCELING,
)


@dataclass(frozen=True)
class LastEvent:
    type: str
    service: str
    time: datetime


@dataclass(frozen=True)
class Stuck:
    order_id: str
    status: str
    since: datetime
    last_event: LastEvent | None


def find_stuck(
    urls: Mapping[str, str], threshold: timedelta, now: datetime | None = None
) -> list[Stuck]:
    """Orders (order's database) not final and unchanged for threshold, oldest first, each
    with the last event in customer's timeline."""
    cutoff = (now or utcnow()) - threshold
    order_db = open_database(urls["order"])
    try:
        waiting = order_db.execute_sql(
            "SELECT id, status, updated FROM orders"
            f" WHERE status IN ({_params(order_db, len(WAITING))}) AND updated < {order_db.param}"
            " ORDER BY updated",
            [*WAITING, cutoff],
        ).fetchall()
    finally:
        order_db.close()
    last = last_events(urls["customer"], [row[0] for row in waiting])
    return [
        Stuck(order_id, order_status(status), _datetime(updated), last.get(order_id))
        for order_id, status, updated in waiting
    ]


def last_events(url: str, order_ids: Sequence[str]) -> dict[str, LastEvent]:
    """The latest timeline event of each order (the timeline's own order: time, then id)."""
    if not order_ids:
        return {}
    db = open_database(url)
    try:
        rows = db.execute_sql(
            "SELECT order_id, type_name, service, event_time FROM timeline"
            f" WHERE order_id IN ({_params(db, len(order_ids))})"
            " ORDER BY event_time, id",
            list(order_ids),
        ).fetchall()
    finally:
        db.close()
    return {
        order_id: LastEvent(type_name.rsplit(".", 1)[-1], service, _datetime(at))
        for order_id, type_name, service, at in rows  # later rows win
    }


def _params(db: peewee.Database, count: int) -> str:
    return ", ".join([db.param] * count)


def _datetime(value: datetime | str) -> datetime:
    # SQLite hands back the stored text.
    return value if isinstance(value, datetime) else datetime.fromisoformat(value)


def report(stuck: list[Stuck], threshold: timedelta, now: datetime) -> str:
    if not stuck:
        return f"no order has waited more than {threshold.total_seconds():g} s"
    lines = [f"{len(stuck)} order(s) waiting more than {threshold.total_seconds():g} s:"]
    for s in stuck:
        waited = (now - s.since).total_seconds()
        last = (
            f"last event {s.last_event.type} from {s.last_event.service or '?'}"
            f" at {s.last_event.time:%H:%M:%S}"
            if s.last_event
            else "no event seen by customer"
        )
        lines.append(f"  {s.order_id}  {s.status:<10} for {waited:6.0f} s  {last}")
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, prog="make stuck")
    parser.add_argument("--profile", default="default", choices=PROFILES)
    parser.add_argument("--replicas", type=int, default=1)
    parser.add_argument("--threshold", type=float, default=60.0, help="seconds")
    args = parser.parse_args()
    threshold = timedelta(seconds=args.threshold)
    urls = run_database_urls(args.profile, args.replicas)
    now = utcnow()
    try:
        for name in ("order", "customer"):
            # Opening a SQLite file that is not there would create it.
            if (path := sqlite_file(urls[name])) and not pathlib.Path(path).exists():
                raise peewee.OperationalError(f"no database file {path}")
        stuck = find_stuck(urls, threshold, now)
    except (peewee.OperationalError, peewee.InterfaceError) as error:
        print(
            f"cannot read the databases ({error}): is `make run` running with"
            f" DB={args.profile} REPLICAS={args.replicas}?",
            file=sys.stderr,
        )
        return 1
    print(report(stuck, threshold, now))
    return 0


if __name__ == "__main__":
    sys.exit(main())
