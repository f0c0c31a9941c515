"""BakeryService over gRPC."""

from __future__ import annotations

import grpc

from bakery_svc.convert import ticket_to_proto
from bakery_svc.tickets import Tickets
from bread.bakery.v1 import bakery_pb2, bakery_pb2_grpc
from servicekit.errors import rpc
from servicekit.identity import Role, caller


class BakeryServicer(bakery_pb2_grpc.BakeryServiceServicer):
    def __init__(self, tickets: Tickets) -> None:
        self.tickets = tickets

    @rpc
    async def ListTickets(
        self, request: bakery_pb2.ListTicketsRequest, context: grpc.aio.ServicerContext
    ) -> bakery_pb2.ListTicketsResponse:
        _staff(context)
        tickets, next_token = await self.tickets.list_page(
            request.status, request.page_size, request.page_token
        )
        return bakery_pb2.ListTicketsResponse(
            tickets=[ticket_to_proto(t) for t in tickets], next_page_token=next_token
        )

    @rpc
    async def GetTicket(
        self, request: bakery_pb2.GetTicketRequest, context: grpc.aio.ServicerContext
    ) -> bakery_pb2.Ticket:
        _staff(context)
        return ticket_to_proto(await self.tickets.get(request.order_id))

    @rpc
    async def AcceptOrder(
        self, request: bakery_pb2.AcceptOrderRequest, context: grpc.aio.ServicerContext
    ) -> bakery_pb2.Ticket:
        _staff(context)
        return ticket_to_proto(await self.tickets.act(request.order_id, "accept"))

    @rpc
    async def RejectOrder(
        self, request: bakery_pb2.RejectOrderRequest, context: grpc.aio.ServicerContext
    ) -> bakery_pb2.Ticket:
        _staff(context)
        reason = request.reason or "rejected by the bakery"
        return ticket_to_proto(await self.tickets.act(request.order_id, "reject", reason))

    @rpc
    async def MarkDelivered(
        self, request: bakery_pb2.MarkDeliveredRequest, context: grpc.aio.ServicerContext
    ) -> bakery_pb2.Ticket:
        _staff(context)
        return ticket_to_proto(await self.tickets.act(request.order_id, "deliver"))


def _staff(context: grpc.aio.ServicerContext) -> None:
    """The bakery's API is for bakers (and operators)."""
    caller(context).require(Role.BAKER, Role.OPERATOR)
