"""The tables servicekit keeps in every service's database, and their history.

A change to OutboxEvent or InboxEvent gets a step here (docs/DESIGN.md, Schema changes).
"""

import peewee

from servicekit.inbox import InboxEvent
from servicekit.migrations import Schema, Step, add_column, add_index
from servicekit.outbox import OutboxEvent

SHARED = Schema(
    "servicekit",
    models=[OutboxEvent, InboxEvent],
    steps=[
        Step(
            1,
            "outbox.claimed_until: relays claim rows",
            [add_column("outbox", "claimed_until", peewee.DateTimeField(null=True))],
        ),
        Step(2, "inbox.applied indexed: pruning finds old rows", [add_index("inbox", ["applied"])]),
        Step(
            3,
            "outbox.trace_context: an event carries the trace it was recorded in",
            [add_column("outbox", "trace_context", peewee.TextField(null=True))],
        ),
    ],
)
