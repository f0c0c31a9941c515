"""customer_svc's read models: one Mypage row per order, and each order's timeline."""

import peewee

from servicekit.clock import utcnow


class Mypage(peewee.Model):
    order_id = peewee.CharField(max_length=36, primary_key=True)
    customer_id = peewee.CharField(max_length=64, default="", index=True)
    item = peewee.CharField(max_length=64, default="")
    qty = peewee.IntegerField(default=0)
    price = peewee.BigIntegerField(default=0)
    order_status = peewee.CharField(max_length=16, default="")
    payment_id = peewee.CharField(max_length=36, default="")
    payment_status = peewee.CharField(max_length=16, default="")
    bakery_status = peewee.CharField(max_length=16, default="")
    reason = peewee.CharField(max_length=200, default="")
    created = peewee.DateTimeField(default=utcnow, index=True)
    updated = peewee.DateTimeField(default=utcnow)

    class Meta:
        table_name = "mypages"


class TimelineEvent(peewee.Model):
    """One event customer applied, for GET /orders/{id}/timeline; written in the consumer's
    transaction, a batch's rows in one insert."""

    id = peewee.AutoField()
    order_id = peewee.CharField(max_length=36)
    event_id = peewee.CharField(max_length=36)
    type_name = peewee.CharField(max_length=100)
    # The emitting service (AMQP app_id).
    service = peewee.CharField(max_length=32, default="")
    event_time = peewee.DateTimeField()

    class Meta:
        table_name = "timeline"
        indexes = ((("order_id", "event_time"), False),)
