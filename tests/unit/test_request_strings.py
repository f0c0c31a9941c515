"""Strings are checked before any database sees them: no control characters (PostgreSQL
refuses NUL outright), nothing longer than any field the API keeps."""

import pytest
from google.protobuf.message import Message

from bread.order.v1 import order_pb2
from servicekit.errors import MAX_STRING, InvalidArgument, check_strings


@pytest.mark.parametrize(
    "request_",
    [
        order_pb2.PlaceOrderRequest(item="cake", qty=1, customer_id="nul\x00"),
        order_pb2.CancelOrderRequest(id="o1", reason="bell\x07"),
        order_pb2.GetOrderRequest(id="x" * (MAX_STRING + 1)),
        order_pb2.ListOrdersResponse(orders=[order_pb2.Order(item="esc\x1b[2J")]),
    ],
)
def test_bad_strings_are_invalid_arguments(request_: Message) -> None:
    with pytest.raises(InvalidArgument):
        check_strings(request_)


def test_ordinary_text_passes() -> None:
    check_strings(order_pb2.CancelOrderRequest(id="o1", reason="too late,\nsorry 🍞 빵"))
