"""MypageService over gRPC."""

from __future__ import annotations

import grpc

from bread.customer.v1 import mypage_pb2, mypage_pb2_grpc
from customer_svc.convert import mypage_to_proto, timeline_to_proto
from customer_svc.projection import Mypages
from customer_svc.timeline import Timelines
from servicekit.errors import rpc
from servicekit.identity import Caller, Role, caller


class MypageServicer(mypage_pb2_grpc.MypageServiceServicer):
    def __init__(self, mypages: Mypages, timelines: Timelines) -> None:
        self.mypages = mypages
        self.timelines = timelines

    @rpc
    async def ListMypages(
        self, request: mypage_pb2.ListMypagesRequest, context: grpc.aio.ServicerContext
    ) -> mypage_pb2.ListMypagesResponse:
        rows, next_token = await self.mypages.list_page(
            _customer(context).customer_filter(request.customer_id),
            request.page_size,
            request.page_token,
        )
        return mypage_pb2.ListMypagesResponse(
            mypages=[mypage_to_proto(r) for r in rows], next_page_token=next_token
        )

    @rpc
    async def GetMypage(
        self, request: mypage_pb2.GetMypageRequest, context: grpc.aio.ServicerContext
    ) -> mypage_pb2.Mypage:
        return mypage_to_proto(await self.mypages.get(request.order_id, _customer(context)))

    @rpc
    async def GetOrderTimeline(
        self, request: mypage_pb2.GetOrderTimelineRequest, context: grpc.aio.ServicerContext
    ) -> mypage_pb2.GetOrderTimelineResponse:
        found = await self.timelines.get(request.order_id, _customer(context))
        return timeline_to_proto(found)


def _customer(context: grpc.aio.ServicerContext) -> Caller:
    return caller(context).require(Role.CUSTOMER, Role.OPERATOR)
