"""Domain errors and their gRPC status (Envoy maps that to the HTTP status)."""

from __future__ import annotations

import functools
import logging
import uuid
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import grpc
from google.protobuf.descriptor import FieldDescriptor
from google.protobuf.message import Message

from servicekit import tracing
from servicekit.logs import order_id_var, request_id_var
from servicekit.metadata import request_header
from servicekit.transient import is_transient

log = logging.getLogger(__name__)


class DomainError(Exception):
    code = grpc.StatusCode.UNKNOWN


class InvalidArgument(DomainError):
    code = grpc.StatusCode.INVALID_ARGUMENT


class Unauthenticated(DomainError):
    code = grpc.StatusCode.UNAUTHENTICATED


class PermissionDenied(DomainError):
    code = grpc.StatusCode.PERMISSION_DENIED


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


ORDER_ID_HEADER = "x-order-id"

Response = TypeVar("Response")
Method = Callable[[Any, Any, grpc.aio.ServicerContext], Awaitable[Response]]


def rpc(method: Method[Response]) -> Method[Response]:
    """Turn what a servicer method raises into a gRPC status: a DomainError into
    its own, a dependency that is briefly away into UNAVAILABLE (safe to retry),
    anything else into INTERNAL with a reference to the logged detail, so that
    no internal text (SQL, class names) ever reaches a client."""

    @functools.wraps(method)
    async def wrapper(self: Any, request: Any, context: grpc.aio.ServicerContext) -> Response:
        # A call about one order says so (order's Pay call sends x-order-id): its log lines
        # and its span name the order from the first line on.
        order_id = request_header(context, ORDER_ID_HEADER)[:64]
        order_id_var.set(order_id)
        if order_id:
            tracing.tag_order(order_id)
        request_id_var.set(request_header(context, "x-request-id"))
        try:
            check_strings(request)
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


# Longer than any identifier or reason the API keeps; a database column must never be what
# refuses a string.
MAX_STRING = 1000
# C0 controls and DEL; tab and newlines are fine in free text (a cancel reason).
_CONTROL = {chr(c) for c in range(32) if chr(c) not in "\t\n\r"} | {chr(127)}


def check_strings(message: Message) -> None:
    """INVALID_ARGUMENT for a string field of message (nested ones too) that is too long or
    has control characters: checked before any database sees it (PostgreSQL refuses NUL)."""
    for field, value in message.ListFields():
        if field.type == FieldDescriptor.TYPE_MESSAGE:
            for item in value if field.is_repeated else [value]:
                check_strings(item)
        elif field.type == FieldDescriptor.TYPE_STRING:
            for text in value if field.is_repeated else [value]:
                if len(text) > MAX_STRING:
                    raise InvalidArgument(f"{field.name} is longer than {MAX_STRING} characters")
                if not _CONTROL.isdisjoint(text):
                    raise InvalidArgument(f"{field.name} has control characters")
