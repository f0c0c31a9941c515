"""The thin gRPC layer: who may call what (the identity Envoy forwards), the idempotency
header, the status a client hears, and order's PayClient reading pay's answers."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable
from typing import Any

import grpc
import pytest

from bakery_svc.models import Ticket
from bakery_svc.servicer import BakeryServicer
from bakery_svc.tickets import Tickets
from bread.bakery.v1 import bakery_pb2
from bread.events.v1 import events_pb2 as ev
from bread.order.v1 import order_pb2
from bread.pay.v1 import pay_pb2
from order_svc.menu import DEFAULT_MENU
from order_svc.models import Order
from order_svc.orders import Orders
from order_svc.pay_client import PayClient, PaymentFailed
from order_svc.servicer import OrderServicer
from pay_svc.faults import FaultInjector
from pay_svc.models import Payment
from pay_svc.payments import Payments
from pay_svc.servicer import PaymentServicer
from servicekit.db import Database
from servicekit.outbox import Outbox
from tests.unit.fakes import Aborted, FakeContext, FakePay, database_of, deliver

ALICE = FakeContext("alice", "customer")
BOB = FakeContext("bob", "customer")
BAKER = FakeContext("bea", "baker")
OPERATOR = FakeContext("olga", "operator")
NOBODY = FakeContext()
Code = grpc.StatusCode


async def refused(call: Any, code: grpc.StatusCode) -> str:
    with pytest.raises(Aborted) as aborted:
        await call
    assert aborted.value.code == code, aborted.value
    return aborted.value.details


# ------------------------------------------------------------------------------ order


order_db = database_of(Order)


@pytest.fixture
async def order_api(order_db: Database, pay: FakePay) -> OrderServicer:
    return OrderServicer(Orders(order_db, Outbox(order_db), DEFAULT_MENU, pay))


def place(item: str = "cake", customer_id: str = "", request_id: str = "") -> Any:
    return order_pb2.PlaceOrderRequest(
        item=item, qty=1, customer_id=customer_id, request_id=request_id
    )


async def test_customers_order_for_themselves_operators_for_anyone(
    order_api: OrderServicer,
) -> None:
    assert (await order_api.PlaceOrder(place(), ALICE.typed())).customer_id == "alice"
    assert (await order_api.PlaceOrder(place(customer_id="alice"), ALICE.typed())).status == (
        order_pb2.OrderStatus.ORDER_STATUS_PAID
    )
    await refused(
        order_api.PlaceOrder(place(customer_id="bob"), ALICE.typed()), Code.PERMISSION_DENIED
    )
    assert (
        await order_api.PlaceOrder(place(customer_id="bob"), OPERATOR.typed())
    ).customer_id == "bob"
    await refused(order_api.PlaceOrder(place(), BAKER.typed()), Code.PERMISSION_DENIED)
    await refused(order_api.PlaceOrder(place(), NOBODY.typed()), Code.UNAUTHENTICATED)
    await refused(
        order_api.PlaceOrder(place(), FakeContext("mallory", "admin").typed()),
        Code.UNAUTHENTICATED,
    )


async def test_the_idempotency_key_header_is_a_request_id(
    order_api: OrderServicer, pay: FakePay
) -> None:
    keyed = FakeContext("alice", "customer", **{"idempotency-key": "k1"})
    first = await order_api.PlaceOrder(place(), keyed.typed())
    assert (await order_api.PlaceOrder(place(), keyed.typed())).id == first.id
    # The field wins over the header.
    other = await order_api.PlaceOrder(place(request_id="r2"), keyed.typed())
    assert other.id != first.id and len(pay.calls) == 2


async def test_lists_hold_the_callers_own_orders(order_api: OrderServicer) -> None:
    alices = (await order_api.PlaceOrder(place(), ALICE.typed())).id
    bobs = (await order_api.PlaceOrder(place(), BOB.typed())).id

    async def listed(context: FakeContext, customer_id: str = "") -> set[str]:
        request = order_pb2.ListOrdersRequest(customer_id=customer_id)
        return {o.id for o in (await order_api.ListOrders(request, context.typed())).orders}

    assert await listed(ALICE) == {alices}
    assert await listed(ALICE, "alice") == {alices}
    await refused(listed(ALICE, "bob"), Code.PERMISSION_DENIED)
    assert await listed(OPERATOR) == {alices, bobs}
    assert await listed(OPERATOR, "bob") == {bobs}
    await refused(listed(BAKER), Code.PERMISSION_DENIED)


async def test_someone_elses_order_is_not_found(order_api: OrderServicer) -> None:
    alices = (await order_api.PlaceOrder(place(), ALICE.typed())).id
    await refused(
        order_api.GetOrder(order_pb2.GetOrderRequest(id=alices), BOB.typed()), Code.NOT_FOUND
    )
    await refused(
        order_api.CancelOrder(order_pb2.CancelOrderRequest(id=alices), BOB.typed()), Code.NOT_FOUND
    )
    canceled = await order_api.CancelOrder(order_pb2.CancelOrderRequest(id=alices), ALICE.typed())
    assert canceled.status == order_pb2.OrderStatus.ORDER_STATUS_CANCELING


@pytest.mark.parametrize(
    ("failure", "heard"),
    [
        (Code.FAILED_PRECONDITION, Code.FAILED_PRECONDITION),
        (Code.UNAVAILABLE, Code.UNAVAILABLE),
        (Code.DEADLINE_EXCEEDED, Code.DEADLINE_EXCEEDED),
    ],
)
async def test_a_failed_payment_is_heard_as_its_status(
    order_api: OrderServicer, pay: FakePay, failure: grpc.StatusCode, heard: grpc.StatusCode
) -> None:
    pay.fail(failure)
    details = await refused(order_api.PlaceOrder(place(), ALICE.typed()), heard)
    assert "is FAILED" in details


async def test_a_bug_is_internal_with_a_reference_and_no_internal_text(
    order_api: OrderServicer, pay: FakePay, monkeypatch: pytest.MonkeyPatch
) -> None:
    async def broken(*_: Any) -> pay_pb2.Payment:
        raise RuntimeError("SELECT secret FROM somewhere")

    monkeypatch.setattr(pay, "pay", broken)
    details = await refused(order_api.PlaceOrder(place(), ALICE.typed()), Code.INTERNAL)
    assert details.startswith("internal error (ref ") and "secret" not in details


async def test_bad_strings_are_refused_before_anything_runs(
    order_api: OrderServicer, pay: FakePay
) -> None:
    await refused(
        order_api.PlaceOrder(place(item="cake\x00"), ALICE.typed()), Code.INVALID_ARGUMENT
    )
    assert pay.calls == []


# ------------------------------------------------------------------------------ pay


pay_db = database_of(Payment)


@pytest.fixture
async def pay_api(pay_db: Database) -> PaymentServicer:
    return PaymentServicer(Payments(pay_db, Outbox(pay_db)), FaultInjector(enabled=False))


async def test_payments_are_their_customers_and_refunds_the_operators(
    pay_api: PaymentServicer,
) -> None:
    charge = pay_pb2.PayRequest(order_id="o1", customer_id="alice", amount=25000)
    payment = await pay_api.Pay(charge, NOBODY.typed())  # the mesh call carries no identity
    await pay_api.Pay(
        pay_pb2.PayRequest(order_id="o2", customer_id="bob", amount=1), NOBODY.typed()
    )
    listed = await pay_api.ListPayments(pay_pb2.ListPaymentsRequest(), ALICE.typed())
    assert [p.id for p in listed.payments] == [payment.id]
    everyone = await pay_api.ListPayments(pay_pb2.ListPaymentsRequest(), OPERATOR.typed())
    assert len(everyone.payments) == 2
    get = pay_pb2.GetPaymentRequest(id=payment.id)
    await refused(pay_api.GetPayment(get, BOB.typed()), Code.NOT_FOUND)
    await refused(pay_api.GetPayment(get, BAKER.typed()), Code.PERMISSION_DENIED)
    cancel = pay_pb2.CancelPaymentRequest(id=payment.id, reason="by hand")
    await refused(pay_api.CancelPayment(cancel, ALICE.typed()), Code.PERMISSION_DENIED)
    refunded = await pay_api.CancelPayment(cancel, OPERATOR.typed())
    assert refunded.status == pay_pb2.PaymentStatus.PAYMENT_STATUS_CANCELED


# ------------------------------------------------------------------------------ bakery


bakery_db = database_of(Ticket)


async def test_the_bakery_is_for_bakers_and_operators(bakery_db: Database) -> None:
    tickets = Tickets(bakery_db, Outbox(bakery_db))
    await deliver(bakery_db, tickets.handlers(), ev.OrderPlaced(order_id="o1", item="cake", qty=1))
    api = BakeryServicer(tickets)
    accept = bakery_pb2.AcceptOrderRequest(order_id="o1")
    for outsider in (ALICE, NOBODY):
        code = Code.PERMISSION_DENIED if outsider is ALICE else Code.UNAUTHENTICATED
        await refused(api.AcceptOrder(accept, outsider.typed()), code)
        await refused(api.ListTickets(bakery_pb2.ListTicketsRequest(), outsider.typed()), code)
    ticket = await api.AcceptOrder(accept, BAKER.typed())
    assert ticket.status == bakery_pb2.TicketStatus.TICKET_STATUS_ACCEPTED
    await refused(api.AcceptOrder(accept, OPERATOR.typed()), Code.FAILED_PRECONDITION)
    reject = bakery_pb2.RejectOrderRequest(order_id="o1")
    await refused(api.RejectOrder(reject, BAKER.typed()), Code.FAILED_PRECONDITION)


# ------------------------------------------------------------------------------ PayClient


class FakeStub:
    """PaymentServiceStub's Pay: a call that answers, or fails as grpc.aio does."""

    def __init__(self, answer: pay_pb2.Payment | grpc.aio.AioRpcError) -> None:
        self.answer = answer
        self.calls: list[tuple[pay_pb2.PayRequest, dict[str, Any]]] = []

    def Pay(self, request: pay_pb2.PayRequest, **options: Any) -> Awaitable[pay_pb2.Payment]:
        self.calls.append((request, options))

        async def call() -> pay_pb2.Payment:
            if isinstance(self.answer, grpc.aio.AioRpcError):
                raise self.answer
            return self.answer

        return call()


@pytest.fixture
async def client() -> AsyncIterator[PayClient]:
    pay_client = PayClient("127.0.0.1:9", timeout_seconds=0.5)  # never connected
    yield pay_client
    await pay_client.close()


def payment(status: int) -> pay_pb2.Payment:
    return pay_pb2.Payment(id="p1", order_id="o1", status=pay_pb2.PaymentStatus.ValueType(status))


async def test_the_pay_client_returns_an_approved_payment(client: PayClient) -> None:
    stub = FakeStub(payment(pay_pb2.PaymentStatus.PAYMENT_STATUS_APPROVED))
    client.stub = stub  # type: ignore[assignment]
    assert (await client.pay("o1", "alice", 100)).id == "p1"
    [(request, options)] = stub.calls
    assert (request.order_id, request.customer_id, request.amount) == ("o1", "alice", 100)
    assert options["timeout"] == 0.5 and ("x-order-id", "o1") in options["metadata"]


@pytest.mark.parametrize(
    "status",
    [pay_pb2.PaymentStatus.PAYMENT_STATUS_CANCELED, pay_pb2.PaymentStatus.PAYMENT_STATUS_VOIDED],
)
async def test_the_pay_client_refuses_a_payment_that_is_not_approved(
    client: PayClient, status: int
) -> None:
    client.stub = FakeStub(payment(status))  # type: ignore[assignment]
    with pytest.raises(PaymentFailed) as failed:
        await client.pay("o1", "alice", 100)
    assert failed.value.code == Code.FAILED_PRECONDITION
    assert pay_pb2.PaymentStatus.Name(status) in failed.value.details  # type: ignore[arg-type]


async def test_the_pay_client_passes_on_the_status_pay_failed_with(client: PayClient) -> None:
    error = grpc.aio.AioRpcError(
        Code.DEADLINE_EXCEEDED, grpc.aio.Metadata(), grpc.aio.Metadata(), details="too slow"
    )
    client.stub = FakeStub(error)  # type: ignore[assignment]
    with pytest.raises(PaymentFailed) as failed:
        await client.pay("o1", "alice", 100)
    assert (failed.value.code, failed.value.details) == (Code.DEADLINE_EXCEEDED, "too slow")
