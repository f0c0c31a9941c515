"""Translation between Mypage rows and their protobuf message, for the servicer."""

from __future__ import annotations

from bread.customer.v1 import mypage_pb2
from customer_svc.models import Mypage
from servicekit.clock import to_timestamp


def mypage_to_proto(row: Mypage) -> mypage_pb2.Mypage:
    return mypage_pb2.Mypage(
        order_id=row.order_id,
        customer_id=row.customer_id,
        item=row.item,
        qty=row.qty,
        price=row.price,
        order_status=row.order_status,
        payment_id=row.payment_id,
        payment_status=row.payment_status,
        bakery_status=row.bakery_status,
        reason=row.reason,
        create_time=to_timestamp(row.created),
        update_time=to_timestamp(row.updated),
    )
