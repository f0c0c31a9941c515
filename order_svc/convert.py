"""Translation between order's models and its protobuf messages, for the servicer."""

from __future__ import annotations

from bread.order.v1 import order_pb2
from order_svc.models import Order
from servicekit.clock import to_timestamp


def order_to_proto(order: Order) -> order_pb2.Order:
    return order_pb2.Order(
        id=order.id,
        customer_id=order.customer_id,
        item=order.item,
        qty=order.qty,
        unit_price=order.unit_price,
        price=order.price,
        status=order_pb2.OrderStatus.ValueType(order.status),
        payment_id=order.payment_id,
        reason=order.reason,
        create_time=to_timestamp(order.created),
        update_time=to_timestamp(order.updated),
    )


def menu_to_proto(menu: dict[str, int]) -> order_pb2.Menu:
    return order_pb2.Menu(items=[order_pb2.MenuItem(name=n, price=p) for n, p in menu.items()])
