"""Rebuild the Mypage read model from the event log: python -m customer_svc.rebuild

    python -m customer_svc.rebuild            # apply what this database has not seen
    python -m customer_svc.rebuild --reset    # empty the read model first, then replay all

Run it against a new DATABASE_URL and point customer_svc at the result, or
stop customer_svc and rebuild its own database in place.
"""

from __future__ import annotations

import argparse
import asyncio

from customer_svc import projection, timeline
from customer_svc.migrations import SCHEMA
from customer_svc.models import Mypage, TimelineEvent
from customer_svc.spec import SPEC
from servicekit.db import Database
from servicekit.events import Topology
from servicekit.inbox import InboxEvent
from servicekit.replay import replay
from servicekit.settings import Settings
from servicekit.shared_schema import SHARED


async def rebuild(settings: Settings, reset: bool) -> int:
    db = Database(settings.database_url, [*SCHEMA.models, *SHARED.models])
    await db.connect([SHARED, SCHEMA])
    if reset:
        await db.transaction(
            lambda: [model.delete().execute() for model in (Mypage, TimelineEvent, InboxEvent)]
        )
    try:
        return await replay(
            db,
            settings.amqp_url,
            Topology(settings.exchange),
            projection.handlers(),
            on_applied=timeline.record,
        )
    finally:
        await db.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--reset", action="store_true", help="empty the read model first")
    args = parser.parse_args()
    settings = Settings.from_env(SPEC.name, SPEC.default_port)
    applied = asyncio.run(rebuild(settings, args.reset))
    print(f"applied {applied} events to {settings.database_url}")


if __name__ == "__main__":
    main()
