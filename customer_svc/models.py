"""customer_svc's read model: one Mypage row per order."""

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
