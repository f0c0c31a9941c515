"""Server interceptors that wrap each method's handler once and keep it."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import grpc


class WrapHandlers(grpc.aio.ServerInterceptor):
    """Gives each method's handler, the first time the method is called, to wrap() and keeps
    what it returns: a call costs one dictionary lookup, not a new wrapper."""

    def __init__(self) -> None:
        self._handlers: dict[str, grpc.RpcMethodHandler] = {}

    def wrap(self, handler: grpc.RpcMethodHandler, method: str) -> grpc.RpcMethodHandler:
        raise NotImplementedError

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Any],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler | None:
        method = handler_call_details.method
        if (handler := self._handlers.get(method)) is not None:
            return handler
        found = await continuation(handler_call_details)
        if found is None:  # no such method: UNIMPLEMENTED, and nothing kept for its name
            return None
        handler = self._handlers[method] = self.wrap(found, method)
        return handler
