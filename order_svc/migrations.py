"""order_svc's schema history: a step for every change to models.py (docs/DESIGN.md,
Schema changes)."""

import peewee

from order_svc.models import Order
from servicekit.migrations import Schema, Step, add_column, add_index

SCHEMA = Schema(
    "order",
    models=[Order],
    steps=[
        Step(
            1,
            "orders.request_id: PlaceOrder's idempotency key, unique per customer",
            [
                add_column("orders", "request_id", peewee.CharField(max_length=64, null=True)),
                add_index("orders", ("customer_id", "request_id"), unique=True),
            ],
        ),
    ],
)
