"""PlaceOrder is idempotent by the client's request id: a retry (say, after a gateway
timeout) gets the same order back, never a second order or charge; a declined payment
is FAILED_PRECONDITION with the reason, and frees the request id for a new attempt."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import grpc
import httpx
import pytest

from bread.admin.v1 import faults_pb2, faults_pb2_grpc
from bread.order.v1 import order_pb2, order_pb2_grpc
from harness.system import BreadSystem

CAKE = {"item": "cake", "qty": 1, "customerId": "retrier"}


def payments_of(http: httpx.Client, order_id: str) -> list[dict]:
    return list(http.get("/payments", params={"orderId": order_id}).json().get("payments", []))


def test_same_idempotency_key_same_order(http: httpx.Client) -> None:
    key = {"Idempotency-Key": str(uuid.uuid4())}
    first = http.post("/orders", json=CAKE, headers=key)
    again = http.post("/orders", json=CAKE, headers=key)
    assert first.status_code == again.status_code == 200, (first.text, again.text)
    assert again.json() == first.json()
    assert len(payments_of(http, first.json()["id"])) == 1
    # Another key, or none, is another order.
    other = http.post("/orders", json=CAKE, headers={"Idempotency-Key": str(uuid.uuid4())})
    assert other.json()["id"] != first.json()["id"]


def test_request_id_field_and_grpc(system: BreadSystem) -> None:
    request = order_pb2.PlaceOrderRequest(
        item="donut", qty=2, customer_id="retrier", request_id=str(uuid.uuid4())
    )
    with system.channel() as channel:
        orders = order_pb2_grpc.OrderServiceStub(channel)
        assert orders.PlaceOrder(request, timeout=5).id == orders.PlaceOrder(request, timeout=5).id


def test_key_reused_for_another_order_is_a_conflict(http: httpx.Client) -> None:
    key = str(uuid.uuid4())
    assert http.post("/orders", json={**CAKE, "requestId": key}).status_code == 200
    reused = http.post("/orders", json={**CAKE, "qty": 3, "requestId": key})
    assert reused.status_code == 409, reused.text
    assert reused.json()["code"] == grpc.StatusCode.ALREADY_EXISTS.value[0]


def test_same_key_from_another_customer_is_their_own_order(http: httpx.Client) -> None:
    key = str(uuid.uuid4())
    mine = http.post("/orders", json={**CAKE, "requestId": key}).json()
    theirs = http.post("/orders", json={**CAKE, "customerId": "someone", "requestId": key}).json()
    assert mine["id"] != theirs["id"]


@pytest.fixture
def declining_pay(system: BreadSystem) -> Iterator[None]:
    with grpc.insecure_channel(f"127.0.0.1:{system.services['pay'].port}") as channel:
        faults = faults_pb2_grpc.FaultInjectionStub(channel)
        code = grpc.StatusCode.FAILED_PRECONDITION.value[0]
        faults.SetFaults(faults_pb2.Faults(error_rate=1, error_code=code), timeout=5)
        try:
            yield
        finally:
            faults.SetFaults(faults_pb2.Faults(), timeout=5)


def test_declined_payment_is_failed_precondition_and_frees_the_key(
    http: httpx.Client, declining_pay: None
) -> None:
    key = {"Idempotency-Key": str(uuid.uuid4())}
    declined = http.post("/orders", json=CAKE, headers=key)
    assert declined.status_code == 400, declined.text
    body = declined.json()
    assert body["code"] == grpc.StatusCode.FAILED_PRECONDITION.value[0]
    assert "payment declined" in body["message"] and "FAILED" in body["message"]
    failed_id = body["message"].split("order ")[1].split()[0]
    assert http.get(f"/orders/{failed_id}").json()["status"] == "ORDER_STATUS_FAILED"
    # Retrying the failed request is a new attempt (nothing was charged for the first).
    again = http.post("/orders", json=CAKE, headers=key)
    assert again.status_code == 400 and failed_id not in again.json()["message"]
