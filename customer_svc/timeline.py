"""Each order's timeline: every event customer applied, with when and where it came from.

customer consumes every event of the saga, so what it applied is the whole story of an
order across the services; a saga that stopped shows the last event that happened. Rows
are written in the consumer's transaction, a batch's in one insert, and never change.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from customer_svc.models import Mypage, TimelineEvent
from servicekit.db import Database, one
from servicekit.errors import InvalidArgument
from servicekit.events import ReceivedEvent
from servicekit.identity import Caller


def record(events: list[ReceivedEvent]) -> None:
    """Keep applied events (servicekit.inbox.Applied); on the database thread, in the
    consumer's transaction."""
    TimelineEvent.insert_many(
        [
            {
                "order_id": event.order_id,
                "event_id": event.event_id,
                "type_name": event.type_name,
                "service": event.source[:32],
                # Stored times are naive UTC.
                "event_time": event.published.replace(tzinfo=None),
            }
            for event in events
        ]
    ).execute()


@dataclass(frozen=True)
class Timeline:
    order_id: str
    order_status: str
    events: list[TimelineEvent]


class Timelines:
    def __init__(self, db: Database) -> None:
        self.db = db

    async def get(self, order_id: str, who: Caller) -> Timeline:
        try:
            uuid.UUID(order_id)
        except ValueError:
            raise InvalidArgument(f"{order_id[:40]!r} is not an order id") from None
        return await self.db.run(self._get, order_id, who)

    @staticmethod
    def _get(order_id: str, who: Caller) -> Timeline:
        # The Mypage row says whose order it is (every event makes or updates it).
        row: Mypage = one(Mypage.order_id, order_id, f"no order {order_id!r} (yet)", who)
        events = list(
            TimelineEvent.select()
            .where(TimelineEvent.order_id == order_id)
            .order_by(TimelineEvent.event_time, TimelineEvent.id)
        )
        return Timeline(order_id, row.order_status, events)
