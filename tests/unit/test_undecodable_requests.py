"""Request bytes that do not decode (not protobuf, a string that is not UTF-8, as the
transcoder passes on from /orders/%ff) are INVALID_ARGUMENT, not UNKNOWN (an HTTP 500
at the edge) with the parser's class name in it; good requests are untouched."""

from __future__ import annotations

from collections.abc import AsyncIterator

import grpc
import pytest
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection, reflection_pb2

from bread.order.v1 import order_pb2, order_pb2_grpc
from servicekit.decoding import RefuseUndecodable
from servicekit.errors import rpc


class Orders(order_pb2_grpc.OrderServiceServicer):
    @rpc
    async def GetOrder(
        self, request: order_pb2.GetOrderRequest, context: grpc.aio.ServicerContext
    ) -> order_pb2.Order:
        return order_pb2.Order(id=request.id)


@pytest.fixture
async def target() -> AsyncIterator[str]:
    server = grpc.aio.server(interceptors=[RefuseUndecodable()])
    order_pb2_grpc.add_OrderServiceServicer_to_server(Orders(), server)  # type: ignore[abstract]
    health_pb2_grpc.add_HealthServicer_to_server(health.aio.HealthServicer(), server)
    reflection.enable_server_reflection([reflection.SERVICE_NAME], server)
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    yield f"127.0.0.1:{port}"
    await server.stop(0)


def _raw(channel: grpc.aio.Channel, method: str) -> grpc.aio.UnaryUnaryMultiCallable:
    return channel.unary_unary(method, request_serializer=bytes, response_deserializer=bytes)


@pytest.mark.parametrize(
    "body",
    [
        b"\x0a\x03\xff\xfe\xfd",  # id: not UTF-8
        b"\x0a\x05ab",  # id: shorter than its length says
        b"\xff" * 11,  # a varint that never ends
    ],
)
async def test_undecodable_requests_are_invalid_arguments(target: str, body: bytes) -> None:
    async with grpc.aio.insecure_channel(target) as channel:
        for method in ("/bread.order.v1.OrderService/GetOrder", "/grpc.health.v1.Health/Check"):
            with pytest.raises(grpc.aio.AioRpcError) as refused:
                await _raw(channel, method)(body, timeout=5)
            assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT, method
            assert "class" not in (refused.value.details() or ""), refused.value.details()


async def test_undecodable_stream_requests_are_invalid_arguments(target: str) -> None:
    async with grpc.aio.insecure_channel(target) as channel:
        info = "/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo"
        stream = channel.stream_stream(info, request_serializer=bytes, response_deserializer=bytes)
        call = stream(iter([b"\xff\xff"]), timeout=5)
        with pytest.raises(grpc.aio.AioRpcError) as refused:
            async for _ in call:
                pass
        assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT


async def test_good_requests_pass(target: str) -> None:
    async with grpc.aio.insecure_channel(target) as channel:
        order = await order_pb2_grpc.OrderServiceStub(channel).GetOrder(
            order_pb2.GetOrderRequest(id="o1 🍞"), timeout=5
        )
        assert order.id == "o1 🍞"
        checked = await health_pb2_grpc.HealthStub(channel).Check(
            health_pb2.HealthCheckRequest(), timeout=5
        )
        assert checked.status == health_pb2.HealthCheckResponse.SERVING
        listing = channel.stream_stream(
            "/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo",
            request_serializer=reflection_pb2.ServerReflectionRequest.SerializeToString,
            response_deserializer=reflection_pb2.ServerReflectionResponse.FromString,
        )
        answers = [
            a
            async for a in listing(iter([reflection_pb2.ServerReflectionRequest(list_services="")]))
        ]
        assert answers[0].list_services_response.service
