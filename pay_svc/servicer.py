"""PaymentService over gRPC."""

from __future__ import annotations

import grpc

from bread.pay.v1 import pay_pb2, pay_pb2_grpc
from pay_svc.convert import payment_to_proto
from pay_svc.faults import FaultInjector
from pay_svc.payments import Payments
from servicekit.errors import rpc
from servicekit.identity import Role, caller


class PaymentServicer(pay_pb2_grpc.PaymentServiceServicer):
    def __init__(self, payments: Payments, faults: FaultInjector) -> None:
        self.payments = payments
        self.faults = faults

    @rpc
    async def Pay(
        self, request: pay_pb2.PayRequest, context: grpc.aio.ServicerContext
    ) -> pay_pb2.Payment:
        # Internal: order calls it through the mesh listener; the edge has no route to it.
        await self.faults.before_pay()
        payment = await self.payments.pay(request.order_id, request.customer_id, request.amount)
        return payment_to_proto(payment)

    @rpc
    async def CancelPayment(
        self, request: pay_pb2.CancelPaymentRequest, context: grpc.aio.ServicerContext
    ) -> pay_pb2.Payment:
        # Refunds follow the saga; by hand only an operator may, and not through the edge.
        caller(context).require(Role.OPERATOR)
        return payment_to_proto(await self.payments.cancel(request.id, request.reason))

    @rpc
    async def GetPayment(
        self, request: pay_pb2.GetPaymentRequest, context: grpc.aio.ServicerContext
    ) -> pay_pb2.Payment:
        who = caller(context).require(Role.CUSTOMER, Role.OPERATOR)
        return payment_to_proto(await self.payments.get(request.id, who))

    @rpc
    async def ListPayments(
        self, request: pay_pb2.ListPaymentsRequest, context: grpc.aio.ServicerContext
    ) -> pay_pb2.ListPaymentsResponse:
        who = caller(context).require(Role.CUSTOMER, Role.OPERATOR)
        payments, next_token = await self.payments.list_page(
            who.customer_filter(""), request.order_id, request.page_size, request.page_token
        )
        return pay_pb2.ListPaymentsResponse(
            payments=[payment_to_proto(p) for p in payments], next_page_token=next_token
        )
