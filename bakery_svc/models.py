"""bakery_svc's tables."""

import peewee

from servicekit.clock import utcnow


class Ticket(peewee.Model):
    order_id = peewee.CharField(max_length=36, primary_key=True)
    item = peewee.CharField(max_length=64, default="")
    qty = peewee.IntegerField(default=0)
    status = peewee.IntegerField(index=True)
    reason = peewee.CharField(max_length=200, default="")
    created = peewee.DateTimeField(default=utcnow, index=True)
    updated = peewee.DateTimeField(default=utcnow)

    class Meta:
        table_name = "tickets"
