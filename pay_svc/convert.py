"""Translation between pay's models and its protobuf messages, for the servicer."""

from __future__ import annotations

from bread.pay.v1 import pay_pb2
from pay_svc.models import Payment
from servicekit.clock import to_timestamp


def payment_to_proto(payment: Payment) -> pay_pb2.Payment:
    return pay_pb2.Payment(
        id=payment.id,
        order_id=payment.order_id,
        customer_id=payment.customer_id,
        amount=payment.amount,
        status=pay_pb2.PaymentStatus.ValueType(payment.status),
        reason=payment.reason,
        create_time=to_timestamp(payment.created),
        update_time=to_timestamp(payment.updated),
    )
