"""pay_svc's tables."""

import peewee

from servicekit.clock import utcnow


class Payment(peewee.Model):
    id = peewee.CharField(max_length=36, primary_key=True)
    # One payment per order: what makes Pay idempotent.
    order_id = peewee.CharField(max_length=36, unique=True)
    customer_id = peewee.CharField(max_length=64)
    amount = peewee.BigIntegerField()
    status = peewee.IntegerField()
    reason = peewee.CharField(max_length=200, default="")
    created = peewee.DateTimeField(default=utcnow)
    updated = peewee.DateTimeField(default=utcnow)

    class Meta:
        table_name = "payments"
