"""The synchronous order→pay call, through Envoy's mesh listener."""

from __future__ import annotations

import grpc

from bread.pay.v1 import pay_pb2, pay_pb2_grpc
from servicekit import tracing
from servicekit.errors import ORDER_ID_HEADER


class PaymentFailed(Exception):
    def __init__(self, code: grpc.StatusCode, details: str) -> None:
        super().__init__(f"{code.name}: {details}")
        self.code = code
        self.details = details


class PayClient:
    def __init__(self, target: str, timeout_seconds: float) -> None:
        self.timeout = timeout_seconds
        # A client span per call, its traceparent in the metadata (when tracing).
        self.channel = grpc.aio.insecure_channel(target, interceptors=tracing.client_interceptors())
        self.stub = pay_pb2_grpc.PaymentServiceStub(self.channel)

    async def pay(self, order_id: str, customer_id: str, amount: int) -> pay_pb2.Payment:
        """Charge the order once; raises PaymentFailed when it was not approved.

        Pay is idempotent by order id, which is what makes Envoy's retries safe.
        """
        request = pay_pb2.PayRequest(order_id=order_id, customer_id=customer_id, amount=amount)
        try:
            payment = await self.stub.Pay(
                request, timeout=self.timeout, metadata=((ORDER_ID_HEADER, order_id),)
            )
        except grpc.aio.AioRpcError as error:
            raise PaymentFailed(error.code(), error.details() or "") from None
        if payment.status != pay_pb2.PaymentStatus.PAYMENT_STATUS_APPROVED:
            raise PaymentFailed(
                grpc.StatusCode.FAILED_PRECONDITION,
                f"payment is {pay_pb2.PaymentStatus.Name(payment.status)}",
            )
        return payment

    async def close(self) -> None:
        await self.channel.close()
