"""order_svc's tables."""

import peewee

from servicekit.clock import utcnow


class Order(peewee.Model):
    id = peewee.CharField(max_length=36, primary_key=True)
    customer_id = peewee.CharField(max_length=64, index=True)
    item = peewee.CharField(max_length=64)
    qty = peewee.IntegerField()
    unit_price = peewee.BigIntegerField()
    price = peewee.BigIntegerField()
    status = peewee.IntegerField(index=True)
    payment_id = peewee.CharField(max_length=36, default="")
    reason = peewee.CharField(max_length=200, default="")
    # The client's idempotency key (NULL when none was given, or freed when
    # the order FAILED); unique per customer.
    request_id = peewee.CharField(max_length=64, null=True)
    created = peewee.DateTimeField(default=utcnow, index=True)
    updated = peewee.DateTimeField(default=utcnow)

    class Meta:
        table_name = "orders"
        indexes = ((("customer_id", "request_id"), True),)
