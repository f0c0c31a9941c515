"""Translation between customer's rows and their protobuf messages, for the servicer."""

from __future__ import annotations

from bread.customer.v1 import mypage_pb2
from customer_svc.models import Mypage
from customer_svc.timeline import Timeline
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


def timeline_to_proto(timeline: Timeline) -> mypage_pb2.GetOrderTimelineResponse:
    return mypage_pb2.GetOrderTimelineResponse(
        order_id=timeline.order_id,
        order_status=timeline.order_status,
        events=[
            mypage_pb2.TimelineEvent(
                event_time=to_timestamp(event.event_time),
                service=event.service,
                type=event.type_name.rsplit(".", 1)[-1],
                event_id=event.event_id,
            )
            for event in timeline.events
        ],
    )
