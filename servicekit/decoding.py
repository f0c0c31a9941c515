"""Requests whose bytes are not the message they claim to be get INVALID_ARGUMENT.

grpc.aio decodes a request before any servicer code runs; when that fails (bytes
that are not protobuf, a string field that is not UTF-8, as the JSON transcoder
passes on from a path like /orders/%ff) it answers UNKNOWN with the parser's
exception class in the message, which the edge turns into an HTTP 500. The
interceptor here lets the decoding fail softly and refuses the request as the
client's error instead, for every method of the server (bread's, health,
reflection streams).
"""

from __future__ import annotations

import inspect
from collections.abc import AsyncIterator, Callable
from typing import Any

import grpc
from google.protobuf.message import DecodeError

from servicekit.interceptors import WrapHandlers


class Undecodable:
    """What a request that failed to decode is handed on as."""

    __slots__ = ("error",)

    def __init__(self, error: DecodeError) -> None:
        self.error = error

    async def refuse(self, context: grpc.aio.ServicerContext) -> None:
        await context.abort(grpc.StatusCode.INVALID_ARGUMENT, f"undecodable request: {self.error}")


def _lenient(deserialize: Callable[[bytes], Any] | None) -> Callable[[bytes], Any] | None:
    if deserialize is None:
        return None

    def decode(data: bytes) -> Any:
        try:
            return deserialize(data)
        except DecodeError as error:
            return Undecodable(error)

    return decode


async def _checked(requests: AsyncIterator[Any], context: grpc.aio.ServicerContext) -> Any:
    async for request in requests:
        if isinstance(request, Undecodable):
            await request.refuse(context)
        yield request


def _unary_request(behavior: Callable[..., Any]) -> Callable[..., Any]:
    if inspect.isasyncgenfunction(behavior):

        async def stream(request: Any, context: grpc.aio.ServicerContext) -> Any:
            if isinstance(request, Undecodable):
                await request.refuse(context)
            async for response in behavior(request, context):
                yield response

        return stream

    async def unary(request: Any, context: grpc.aio.ServicerContext) -> Any:
        if isinstance(request, Undecodable):
            await request.refuse(context)
        result = behavior(request, context)
        return await result if inspect.isawaitable(result) else result

    return unary


def _stream_request(behavior: Callable[..., Any]) -> Callable[..., Any]:
    if inspect.isasyncgenfunction(behavior):

        async def stream(requests: Any, context: grpc.aio.ServicerContext) -> Any:
            async for response in behavior(_checked(requests, context), context):
                yield response

        return stream

    async def unary(requests: Any, context: grpc.aio.ServicerContext) -> Any:
        result = behavior(_checked(requests, context), context)
        return await result if inspect.isawaitable(result) else result

    return unary


def lenient_handler(handler: grpc.RpcMethodHandler) -> grpc.RpcMethodHandler:
    """handler with a request decoding that refuses bad bytes as INVALID_ARGUMENT."""
    decode = _lenient(handler.request_deserializer)
    encode = handler.response_serializer
    if handler.unary_unary:
        return grpc.unary_unary_rpc_method_handler(
            _unary_request(handler.unary_unary), decode, encode
        )
    if handler.unary_stream:
        return grpc.unary_stream_rpc_method_handler(
            _unary_request(handler.unary_stream), decode, encode
        )
    if handler.stream_unary:
        return grpc.stream_unary_rpc_method_handler(
            _stream_request(handler.stream_unary), decode, encode
        )
    return grpc.stream_stream_rpc_method_handler(
        _stream_request(handler.stream_stream), decode, encode
    )


class RefuseUndecodable(WrapHandlers):
    """Server interceptor: every method's handler, made lenient once and kept."""

    def wrap(self, handler: grpc.RpcMethodHandler, method: str) -> grpc.RpcMethodHandler:
        return lenient_handler(handler)
