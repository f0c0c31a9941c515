"""Payment rules: a charge is approved once per order, and refunded at most once."""

from __future__ import annotations

from bread.pay.v1.pay_pb2 import PaymentStatus
from servicekit.state import StateMachine

APPROVED = PaymentStatus.PAYMENT_STATUS_APPROVED
CANCELED = PaymentStatus.PAYMENT_STATUS_CANCELED
# Recorded when an order failed before it was charged, so that a Pay still in
# flight for it is refused.
VOIDED = PaymentStatus.PAYMENT_STATUS_VOIDED

PAYMENTS = StateMachine(
    {
        APPROVED: frozenset({CANCELED}),
        CANCELED: frozenset(),
        VOIDED: frozenset(),
    }
)
