"""OrderService over gRPC: translation between protobuf and the use cases."""

from __future__ import annotations

import grpc

from bread.order.v1 import order_pb2, order_pb2_grpc
from order_svc.orders import Orders, to_proto
from servicekit.errors import rpc


class OrderServicer(order_pb2_grpc.OrderServiceServicer):
    def __init__(self, orders: Orders) -> None:
        self.orders = orders

    @rpc
    async def PlaceOrder(
        self, request: order_pb2.PlaceOrderRequest, context: grpc.aio.ServicerContext
    ) -> order_pb2.Order:
        request_id = request.request_id or _header(context, "idempotency-key")
        order = await self.orders.place(request.item, request.qty, request.customer_id, request_id)
        return to_proto(order)

    @rpc
    async def GetOrder(
        self, request: order_pb2.GetOrderRequest, context: grpc.aio.ServicerContext
    ) -> order_pb2.Order:
        return to_proto(await self.orders.get(request.id))

    @rpc
    async def ListOrders(
        self, request: order_pb2.ListOrdersRequest, context: grpc.aio.ServicerContext
    ) -> order_pb2.ListOrdersResponse:
        orders, next_token = await self.orders.list_page(
            request.customer_id, request.page_size, request.page_token
        )
        return order_pb2.ListOrdersResponse(
            orders=[to_proto(o) for o in orders], next_page_token=next_token
        )

    @rpc
    async def CancelOrder(
        self, request: order_pb2.CancelOrderRequest, context: grpc.aio.ServicerContext
    ) -> order_pb2.Order:
        return to_proto(await self.orders.cancel(request.id, request.reason))

    @rpc
    async def GetMenu(
        self, request: order_pb2.GetMenuRequest, context: grpc.aio.ServicerContext
    ) -> order_pb2.Menu:
        return order_pb2.Menu(
            items=[order_pb2.MenuItem(name=n, price=p) for n, p in self.orders.menu.items()]
        )


def _header(context: grpc.aio.ServicerContext, name: str) -> str:
    """A request header (Envoy passes HTTP headers on as gRPC metadata)."""
    for key, value in context.invocation_metadata() or ():
        if key == name:
            return str(value)
    return ""
