"""customer_svc's schema history: a step for every change to models.py (docs/DESIGN.md,
Schema changes)."""

import peewee

from customer_svc.models import Mypage, TimelineEvent
from servicekit.migrations import Schema, Step, add_table


class _TimelineV1(peewee.Model):
    """The timeline table as step 1 made it."""

    id = peewee.AutoField()
    order_id = peewee.CharField(max_length=36)
    event_id = peewee.CharField(max_length=36)
    type_name = peewee.CharField(max_length=100)
    service = peewee.CharField(max_length=32, default="")
    event_time = peewee.DateTimeField()

    class Meta:
        table_name = "timeline"
        indexes = ((("order_id", "event_time"), False),)


SCHEMA = Schema(
    "customer",
    models=[Mypage, TimelineEvent],
    steps=[Step(1, "timeline: every event applied, per order", [add_table(_TimelineV1)])],
)
