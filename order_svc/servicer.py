"""OrderService over gRPC: translation between protobuf and the use cases."""

from __future__ import annotations

import grpc

from bread.order.v1 import order_pb2, order_pb2_grpc
from order_svc.convert import menu_to_proto, order_to_proto
from order_svc.orders import Orders
from servicekit.errors import rpc
from servicekit.identity import Caller, Role, caller
from servicekit.metadata import request_header


class OrderServicer(order_pb2_grpc.OrderServiceServicer):
    def __init__(self, orders: Orders) -> None:
        self.orders = orders

    @rpc
    async def PlaceOrder(
        self, request: order_pb2.PlaceOrderRequest, context: grpc.aio.ServicerContext
    ) -> order_pb2.Order:
        customer_id = _customer(context).acting_for(request.customer_id)
        request_id = request.request_id or request_header(context, "idempotency-key")
        order = await self.orders.place(request.item, request.qty, customer_id, request_id)
        return order_to_proto(order)

    @rpc
    async def GetOrder(
        self, request: order_pb2.GetOrderRequest, context: grpc.aio.ServicerContext
    ) -> order_pb2.Order:
        return order_to_proto(await self.orders.get(request.id, _customer(context)))

    @rpc
    async def ListOrders(
        self, request: order_pb2.ListOrdersRequest, context: grpc.aio.ServicerContext
    ) -> order_pb2.ListOrdersResponse:
        orders, next_token = await self.orders.list_page(
            _customer(context).customer_filter(request.customer_id),
            request.page_size,
            request.page_token,
        )
        return order_pb2.ListOrdersResponse(
            orders=[order_to_proto(o) for o in orders], next_page_token=next_token
        )

    @rpc
    async def CancelOrder(
        self, request: order_pb2.CancelOrderRequest, context: grpc.aio.ServicerContext
    ) -> order_pb2.Order:
        return order_to_proto(
            await self.orders.cancel(request.id, request.reason, _customer(context))
        )

    @rpc
    async def GetMenu(
        self, request: order_pb2.GetMenuRequest, context: grpc.aio.ServicerContext
    ) -> order_pb2.Menu:
        return menu_to_proto(self.orders.menu)


def _customer(context: grpc.aio.ServicerContext) -> Caller:
    """Orders are the customers' (and operators'); the bakery has its own API."""
    return caller(context).require(Role.CUSTOMER, Role.OPERATOR)
