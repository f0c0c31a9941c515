"""Order rules: what may be ordered, and which status may follow which."""

from __future__ import annotations

from bread.order.v1.order_pb2 import OrderStatus
from servicekit.errors import FailedPrecondition, InvalidArgument
from servicekit.state import StateMachine

MAX_QTY = 100
MAX_CUSTOMER_ID = 64
MAX_REQUEST_ID = 64

PENDING = OrderStatus.ORDER_STATUS_PENDING
PAID = OrderStatus.ORDER_STATUS_PAID
FAILED = OrderStatus.ORDER_STATUS_FAILED
CONFIRMED = OrderStatus.ORDER_STATUS_CONFIRMED
REJECTED = OrderStatus.ORDER_STATUS_REJECTED
CANCELING = OrderStatus.ORDER_STATUS_CANCELING
CANCELED = OrderStatus.ORDER_STATUS_CANCELED
DELIVERED = OrderStatus.ORDER_STATUS_DELIVERED

# Which statuses an order may move to from each status. Bakery events may
# arrive out of order, so a PAID order may be delivered before the acceptance
# is seen. A cancel only asks (CANCELING): the bakery alone knows whether the
# bread has left, and answers with the ticket closed (CANCELED), delivered or
# rejected. Anything not listed (such as leaving CANCELED) is refused.
ORDERS = StateMachine(
    {
        PENDING: frozenset({PAID, FAILED}),
        PAID: frozenset({CONFIRMED, REJECTED, CANCELING, DELIVERED}),
        CONFIRMED: frozenset({DELIVERED, CANCELING}),
        CANCELING: frozenset({CANCELED, DELIVERED, REJECTED}),
        FAILED: frozenset(),
        REJECTED: frozenset(),
        CANCELED: frozenset(),
        DELIVERED: frozenset(),
    }
)


def status_name(status: int) -> str:
    return OrderStatus.Name(status).removeprefix("ORDER_STATUS_")  # type: ignore[arg-type]


def _check_id(name: str, value: str, limit: int) -> None:
    if len(value) > limit:
        raise InvalidArgument(f"{name} is longer than {limit} characters")
    if not value.isprintable():
        raise InvalidArgument(f"{name} has control characters")


def price_order(menu: dict[str, int], item: str, qty: int, customer_id: str) -> int:
    """Validate an order request and return its total price in won."""
    if not customer_id.strip():
        raise InvalidArgument("customer_id is required")
    _check_id("customer_id", customer_id, MAX_CUSTOMER_ID)
    if item not in menu:
        raise InvalidArgument(f"unknown item {item!r}; the menu has {', '.join(sorted(menu))}")
    if not 1 <= qty <= MAX_QTY:
        raise InvalidArgument(f"qty must be between 1 and {MAX_QTY}")
    return menu[item] * qty


def check_request_id(request_id: str) -> None:
    _check_id("request_id", request_id, MAX_REQUEST_ID)


def refuse_cancel(status: int) -> FailedPrecondition:
    return FailedPrecondition(f"an order that is {status_name(status)} cannot be canceled")
