"""The walking skeleton through the Envoy gateway: JSON, gRPC stubs and grpcurl."""

from __future__ import annotations

import json
import pathlib
import subprocess
import sys

import grpc
import httpx
import pytest

from bread.admin.v1 import faults_pb2, faults_pb2_grpc
from bread.order.v1 import order_pb2, order_pb2_grpc
from bread.pay.v1 import pay_pb2, pay_pb2_grpc
from harness.polling import wait_for
from harness.system import BreadSystem

GRPCURL = str(pathlib.Path(sys.executable).parent / "grpcurl")


def place(http: httpx.Client, item: str = "cake", qty: int = 1, customer: str = "c1") -> dict:
    response = http.post("/orders", json={"item": item, "qty": qty, "customerId": customer})
    assert response.status_code == 200, response.text
    return response.json()


def test_place_order_prices_from_menu_and_pays(http: httpx.Client) -> None:
    order = place(http, "donut", 5, "alice")
    assert order["status"] == "ORDER_STATUS_PAID"
    assert (order["unitPrice"], order["price"]) == ("3000", "15000")  # int64 → JSON string
    assert http.get(f"/orders/{order['id']}").json() == order

    payment = http.get(f"/payments/{order['paymentId']}").json()
    assert (payment["orderId"], payment["amount"], payment["status"]) == (
        order["id"],
        "15000",
        "PAYMENT_STATUS_APPROVED",
    )
    payments = http.get("/payments", params={"orderId": order["id"]}).json()["payments"]
    assert [p["id"] for p in payments] == [order["paymentId"]]


def test_menu(http: httpx.Client) -> None:
    items = {i["name"]: int(i["price"]) for i in http.get("/menu").json()["items"]}
    assert items == {"cake": 25000, "donut": 3000, "baguette": 4500, "croissant": 3500}


def test_list_orders_by_customer_is_paged(http: httpx.Client) -> None:
    ids = {place(http, "croissant", 1, "paged-customer")["id"] for _ in range(5)}
    seen: list[str] = []
    token = ""
    while True:
        page = http.get(
            "/orders", params={"customerId": "paged-customer", "pageSize": 2, "pageToken": token}
        ).json()
        seen += [o["id"] for o in page["orders"]]
        token = page["nextPageToken"]
        if not token:
            break
    assert sorted(seen) == sorted(ids)


def test_cancel_paid_order_refunds_it(http: httpx.Client) -> None:
    order = place(http)
    canceled = http.post(f"/orders/{order['id']}:cancel", json={"reason": "changed my mind"})
    assert canceled.status_code == 200, canceled.text
    assert canceled.json()["status"] == "ORDER_STATUS_CANCELING"
    again = http.post(f"/orders/{order['id']}:cancel", json={})  # asking twice is fine
    assert again.status_code == 200, again.text
    assert again.json()["status"] in ("ORDER_STATUS_CANCELING", "ORDER_STATUS_CANCELED")
    wait_for(
        lambda: http.get(f"/orders/{order['id']}").json()["status"] == "ORDER_STATUS_CANCELED",
        what="the bakery's confirmation",
    )


@pytest.mark.parametrize(
    ("body", "status"),
    [
        ({"item": "pizza", "qty": 1, "customerId": "c1"}, 400),
        ({"item": "cake", "qty": 0, "customerId": "c1"}, 400),
        ({"item": "cake", "qty": 1000000, "customerId": "c1"}, 400),
        ({"item": "cake", "qty": 1, "customerId": "nul\u0000byte"}, 400),
        ({"item": "cake", "qty": "many", "customerId": "c1"}, 400),
    ],
)
def test_bad_orders_get_400_with_one_error_shape(
    http: httpx.Client, body: dict, status: int
) -> None:
    before = http.get("/orders", params={"pageSize": 100}).json()["orders"]
    response = http.post("/orders", json=body)
    assert response.status_code == status
    error = response.json()
    assert error["code"] == grpc.StatusCode.INVALID_ARGUMENT.value[0]
    assert error["message"]
    assert http.get("/orders", params={"pageSize": 100}).json()["orders"] == before


def test_unknown_things_are_404(http: httpx.Client) -> None:
    for response in (
        http.get("/orders/no-such-order"),
        http.post("/orders/no-such-order:cancel", json={}),
        http.get("/payments/no-such-payment"),
        http.get("/no/such/path"),
    ):
        assert response.status_code == 404, response.text
        assert response.json()["code"] == grpc.StatusCode.NOT_FOUND.value[0]


def test_grpc_stubs_through_the_gateway(system: BreadSystem) -> None:
    with system.channel() as channel:
        orders = order_pb2_grpc.OrderServiceStub(channel)
        order = orders.PlaceOrder(
            order_pb2.PlaceOrderRequest(item="baguette", qty=2, customer_id="grpc"), timeout=5
        )
        assert order.status == order_pb2.ORDER_STATUS_PAID and order.price == 9000
        assert orders.GetOrder(order_pb2.GetOrderRequest(id=order.id), timeout=5) == order
        with pytest.raises(grpc.RpcError) as invalid:
            orders.PlaceOrder(order_pb2.PlaceOrderRequest(item="cake", qty=-1, customer_id="g"))
        assert invalid.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        with pytest.raises(grpc.RpcError) as missing:
            orders.GetOrder(order_pb2.GetOrderRequest(id="nope"))
        assert missing.value.code() == grpc.StatusCode.NOT_FOUND


def test_internal_apis_are_not_reachable_from_outside(system: BreadSystem) -> None:
    with system.channel() as channel:
        pay = pay_pb2_grpc.PaymentServiceStub(channel)
        with pytest.raises(grpc.RpcError) as charge:
            pay.Pay(pay_pb2.PayRequest(order_id="mine", customer_id="x", amount=1), timeout=5)
        assert charge.value.code() == grpc.StatusCode.UNIMPLEMENTED
        faults = faults_pb2_grpc.FaultInjectionStub(channel)
        with pytest.raises(grpc.RpcError) as inject:
            faults.SetFaults(faults_pb2.Faults(hang=True), timeout=5)
        assert inject.value.code() == grpc.StatusCode.UNIMPLEMENTED
        # Reading payments stays public.
        assert pay.ListPayments(pay_pb2.ListPaymentsRequest(order_id="mine"), timeout=5) is not None


def grpcurl(system: BreadSystem, *verb: str, data: str | None = None) -> str:
    """The real grpcurl binary against the gateway: `grpcurl -plaintext [-d DATA] ADDR VERB...`."""
    flags = ["-H", f"authorization: Bearer {system.token()}", *(["-d", data] if data else [])]
    result = subprocess.run(
        [GRPCURL, "-plaintext", *flags, system.gateway, *verb],
        capture_output=True,
        text=True,
        timeout=20,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    return result.stdout


def test_grpcurl_lists_describes_and_calls(system: BreadSystem) -> None:
    services = grpcurl(system, "list").split()
    for name in (
        "bread.order.v1.OrderService",
        "bread.pay.v1.PaymentService",
        "bread.bakery.v1.BakeryService",
        "bread.customer.v1.MypageService",
    ):
        assert name in services
    assert "PlaceOrder" in grpcurl(system, "describe", "bread.order.v1.OrderService")
    placed = grpcurl(
        system,
        "bread.order.v1.OrderService/PlaceOrder",
        data='{"item":"cake","qty":1,"customerId":"curl"}',
    )
    assert json.loads(placed)["status"] == "ORDER_STATUS_PAID"
