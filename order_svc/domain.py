"""Order rules: what may be ordered, and which status may follow which."""

from __future__ import annotations

from bread.order.v1.order_pb2 import OrderStatus
from servicekit.errors import FailedPrecondition, InvalidArgument

MAX_QTY = 100
MAX_CUSTOMER_ID = 64

PENDING = OrderStatus.ORDER_STATUS_PENDING
PAID = OrderStatus.ORDER_STATUS_PAID
FAILED = OrderStatus.ORDER_STATUS_FAILED
CONFIRMED = OrderStatus.ORDER_STATUS_CONFIRMED
REJECTED = OrderStatus.ORDER_STATUS_REJECTED
CANCELED = OrderStatus.ORDER_STATUS_CANCELED
DELIVERED = OrderStatus.ORDER_STATUS_DELIVERED

# Which statuses an order may move to from each status. Bakery events may
# arrive out of order, so a PAID order may be delivered before the acceptance
# is seen; anything not listed (such as going back from CANCELED) is refused.
TRANSITIONS: dict[int, frozenset[int]] = {
    PENDING: frozenset({PAID, FAILED}),
    PAID: frozenset({CONFIRMED, REJECTED, CANCELED, DELIVERED}),
    CONFIRMED: frozenset({DELIVERED, CANCELED}),
    FAILED: frozenset(),
    REJECTED: frozenset(),
    CANCELED: frozenset(),
    DELIVERED: frozenset(),
}

CANCELABLE = frozenset({PAID, CONFIRMED})


def status_name(status: int) -> str:
    return OrderStatus.Name(status).removeprefix("ORDER_STATUS_")  # type: ignore[arg-type]


def can_move(current: int, new: int) -> bool:
    return new in TRANSITIONS.get(current, frozenset())


def price_order(menu: dict[str, int], item: str, qty: int, customer_id: str) -> int:
    """Validate an order request and return its total price in won."""
    if not customer_id.strip():
        raise InvalidArgument("customer_id is required")
    if len(customer_id) > MAX_CUSTOMER_ID:
        raise InvalidArgument(f"customer_id is longer than {MAX_CUSTOMER_ID} characters")
    if item not in menu:
        raise InvalidArgument(f"unknown item {item!r}; the menu has {', '.join(sorted(menu))}")
    if not 1 <= qty <= MAX_QTY:
        raise InvalidArgument(f"qty must be between 1 and {MAX_QTY}")
    return menu[item] * qty


def check_cancel(status: int) -> None:
    if status not in CANCELABLE:
        raise FailedPrecondition(f"an order that is {status_name(status)} cannot be canceled")
