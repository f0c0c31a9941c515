"""Domain errors and their gRPC status (Envoy maps that to the HTTP status)."""

from __future__ import annotations

import functools
import logging
import uuid
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import grpc

from servicekit.logs import order_id_var
from servicekit.transient import is_transient

log = logging.getLogger(__name__)


class DomainError(Exception):
    code = grpc.StatusCode.UNKNOWN


class InvalidArgument(DomainError):
    code = grpc.StatusCode.INVALID_ARGUMENT


class NotFound(DomainError):
    code = grpc.StatusCode.NOT_FOUND


class AlreadyExists(DomainError):
    code = grpc.StatusCode.ALREADY_EXISTS


class FailedPrecondition(DomainError):
    code = grpc.StatusCode.FAILED_PRECONDITION


class Unavailable(DomainError):
    code = grpc.StatusCode.UNAVAILABLE


class DeadlineExceeded(DomainError):
    code = grpc.StatusCode.DEADLINE_EXCEEDED


Response = TypeVar("Response")
Method = Callable[[Any, Any, grpc.aio.ServicerContext], Awaitable[Response]]


def rpc(method: Method[Response]) -> Method[Response]:
    """Turn what a servicer method raises into a gRPC status: a DomainError into
    its own, a dependency that is briefly away into UNAVAILABLE (safe to retry),
    anything else into INTERNAL with a reference to the logged detail, so that
    no internal text (SQL, class names) ever reaches a client."""

    @functools.wraps(method)
    async def wrapper(self: Any, request: Any, context: grpc.aio.ServicerContext) -> Response:
        order_id_var.set("")
        try:
            return await method(self, request, context)
        except DomainError as error:
            await context.abort(error.code, str(error))
        except grpc.aio.AbortError:
            raise
        except Exception as error:
            reference = uuid.uuid4().hex[:12]
            if is_transient(error):
                log.warning(
                    "%s: dependency unavailable [ref %s]: %r", method.__name__, reference, error
                )
                await context.abort(
                    grpc.StatusCode.UNAVAILABLE,
                    f"temporarily unavailable, try again (ref {reference})",
                )
            log.exception("%s failed [ref %s]", method.__name__, reference)
            await context.abort(grpc.StatusCode.INTERNAL, f"internal error (ref {reference})")
        raise AssertionError("abort() raises")  # keeps type checkers informed

    return wrapper
