"""Domain errors and their gRPC status (Envoy maps that to the HTTP status)."""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import grpc

from servicekit.logs import order_id_var


class DomainError(Exception):
    code = grpc.StatusCode.UNKNOWN


class InvalidArgument(DomainError):
    code = grpc.StatusCode.INVALID_ARGUMENT


class NotFound(DomainError):
    code = grpc.StatusCode.NOT_FOUND


class FailedPrecondition(DomainError):
    code = grpc.StatusCode.FAILED_PRECONDITION


class Unavailable(DomainError):
    code = grpc.StatusCode.UNAVAILABLE


class DeadlineExceeded(DomainError):
    code = grpc.StatusCode.DEADLINE_EXCEEDED


Response = TypeVar("Response")
Method = Callable[[Any, Any, grpc.aio.ServicerContext], Awaitable[Response]]


def rpc(method: Method[Response]) -> Method[Response]:
    """Turn a DomainError raised by a servicer method into its gRPC status."""

    @functools.wraps(method)
    async def wrapper(self: Any, request: Any, context: grpc.aio.ServicerContext) -> Response:
        order_id_var.set("")
        try:
            return await method(self, request, context)
        except DomainError as error:
            await context.abort(error.code, str(error))
            raise  # abort() raises; this keeps type checkers informed

    return wrapper
