"""Who may do what, through the edge and at the services themselves.

Each rule has a test that fails when the rule is removed: a token is required (the menu
aside), identity comes only from a verified token, customers see only their own orders,
payments and Mypage rows (others' are 404), the bakery is for bakers, operators read
everything, and pay's write RPCs are nobody's from outside."""

from __future__ import annotations

import base64
import json
import time
from collections.abc import Iterator

import grpc
import httpx
import jwt
import pytest

from bread.bakery.v1 import bakery_pb2, bakery_pb2_grpc
from bread.customer.v1 import mypage_pb2, mypage_pb2_grpc
from bread.order.v1 import order_pb2, order_pb2_grpc
from bread.pay.v1 import pay_pb2, pay_pb2_grpc
from harness.polling import wait_for
from harness.system import BreadSystem
from ops.tokens import DevIssuer
from servicekit.identity import ROLE_HEADER, SUBJECT_HEADER

CAKE = {"item": "cake", "qty": 1}


@pytest.fixture(scope="module")
def alice(system: BreadSystem) -> Iterator[httpx.Client]:
    with system.client("customer", "alice") as client:
        yield client


@pytest.fixture(scope="module")
def bob(system: BreadSystem) -> Iterator[httpx.Client]:
    with system.client("customer", "bob") as client:
        yield client


@pytest.fixture(scope="module")
def alices_order(system: BreadSystem, alice: httpx.Client) -> dict:
    order = alice.post("/orders", json=CAKE)
    assert order.status_code == 200, order.text
    with system.client() as operator:
        wait_for(
            lambda: operator.get(f"/mypages/{order.json()['id']}").status_code == 200,
            what="alice's Mypage row",
        )
    return dict(order.json())


def test_a_token_is_required_but_for_the_menu(system: BreadSystem) -> None:
    with httpx.Client(base_url=system.http, timeout=5) as anonymous:
        assert anonymous.get("/menu").status_code == 200
        for path in ("/orders", "/orders/x", "/payments", "/bakeries", "/mypages"):
            response = anonymous.get(path)
            assert response.status_code == 401, (path, response.text)
            assert response.json()["code"] == grpc.StatusCode.UNAUTHENTICATED.value[0]
        assert anonymous.post("/orders", json=CAKE).status_code == 401
    with grpc.insecure_channel(system.gateway) as channel:
        orders = order_pb2_grpc.OrderServiceStub(channel)
        orders.GetMenu(order_pb2.GetMenuRequest(), timeout=5)
        with pytest.raises(grpc.RpcError) as refused:
            orders.ListOrders(order_pb2.ListOrdersRequest(), timeout=5)
        assert refused.value.code() == grpc.StatusCode.UNAUTHENTICATED


def forged_tokens(system: BreadSystem, tmp: str) -> dict[str, str]:
    now = int(time.time())
    claims = {"iss": "bread-dev", "aud": "bread", "sub": "mallory", "role": "operator"}
    return {
        # Past Envoy's 60 s allowance for clock skew.
        "expired": system.issuer.token("mallory", "operator", ttl_seconds=-120),
        "unsigned": ".".join(
            (_b64({"alg": "none", "typ": "JWT"}), _b64({**claims, "exp": now + 60}), "")
        ),
        "another key": DevIssuer(system.tmp / tmp).token("mallory", "operator"),
        "another issuer": _resigned(system, {**claims, "iss": "evil", "exp": now + 60}),
        "another audience": _resigned(system, {**claims, "aud": "other", "exp": now + 60}),
        "garbage": "not.a.token",
    }


def _b64(part: dict) -> str:
    return base64.urlsafe_b64encode(json.dumps(part).encode()).rstrip(b"=").decode()


def _resigned(system: BreadSystem, claims: dict) -> str:
    key = system.issuer.private_key_path.read_bytes()
    return jwt.encode(claims, key, algorithm="ES256", headers={"kid": "bread-dev-1"})


def test_bad_tokens_are_401(system: BreadSystem) -> None:
    with httpx.Client(base_url=system.http, timeout=5) as client:
        for what, token in forged_tokens(system, "other-keys").items():
            response = client.get("/orders", headers={"authorization": f"Bearer {token}"})
            # Envoy tells a token made for another audience apart: valid, but not for us.
            expected = 403 if what == "another audience" else 401
            assert response.status_code == expected, (what, response.text)


def test_identity_headers_from_the_client_are_ignored(
    system: BreadSystem, alice: httpx.Client, alices_order: dict
) -> None:
    """A customer claiming to be an operator (or someone else) in the headers the
    services trust is still who the token says; a token without a role gets none from
    the headers either."""
    forged = {SUBJECT_HEADER: "bob", ROLE_HEADER: "operator"}
    mine = alice.get("/orders", headers=forged).json()["orders"]
    assert {o["customerId"] for o in mine} == {"alice"}
    placed = alice.post("/orders", json=CAKE, headers=forged).json()
    assert placed["customerId"] == "alice"
    roleless = _resigned(
        system, {"iss": "bread-dev", "aud": "bread", "sub": "alice", "exp": time.time() + 60}
    )
    with httpx.Client(base_url=system.http, timeout=5) as client:
        response = client.get("/orders", headers={"authorization": f"Bearer {roleless}", **forged})
    assert response.status_code == 401, response.text


def test_customers_see_only_their_own(bob: httpx.Client, alices_order: dict) -> None:
    oid, pid = alices_order["id"], alices_order["paymentId"]
    for path in (f"/orders/{oid}", f"/payments/{pid}", f"/mypages/{oid}"):
        response = bob.get(path)
        assert response.status_code == 404, (path, response.text)  # ids do not leak
    assert bob.post(f"/orders/{oid}:cancel", json={}).status_code == 404
    for path, key in (("/orders", "orders"), ("/payments", "payments"), ("/mypages", "mypages")):
        rows = bob.get(path, params={"pageSize": 100}).json()[key]
        assert all(row["customerId"] == "bob" for row in rows), (path, rows)
    # Asking for someone else's list is refused, not quietly answered.
    assert bob.get("/orders", params={"customerId": "alice"}).status_code == 403


def test_customers_order_for_themselves_only(alice: httpx.Client) -> None:
    assert alice.post("/orders", json={**CAKE, "customerId": "alice"}).status_code == 200
    refused = alice.post("/orders", json={**CAKE, "customerId": "bob"})
    assert refused.status_code == 403, refused.text


def test_the_bakery_is_for_bakers(system: BreadSystem, alice: httpx.Client) -> None:
    refused = alice.get("/bakeries")
    # Refused at the edge (RBAC), before any service; the bakery refuses on its own too.
    assert refused.status_code == 403 and refused.json()["message"] == "RBAC: access denied"
    with system.client("baker", "bea") as baker:
        assert baker.get("/bakeries").status_code == 200
        assert baker.get("/orders").status_code == 403  # the order service's own rule


def test_operators_read_everything(
    system: BreadSystem, alices_order: dict, bob: httpx.Client
) -> None:
    bob.post("/orders", json=CAKE)
    with system.client() as operator:
        assert operator.get(f"/orders/{alices_order['id']}").status_code == 200
        assert operator.get(f"/payments/{alices_order['paymentId']}").status_code == 200
        customers = {o["customerId"] for o in operator.get("/orders").json()["orders"]}
        assert {"alice", "bob"} <= customers
        # ... and may order for someone else.
        placed = operator.post("/orders", json={**CAKE, "customerId": "carol"})
        assert placed.json()["customerId"] == "carol"


def test_pay_writes_are_not_reachable_from_the_edge(
    system: BreadSystem, alices_order: dict
) -> None:
    with system.client() as operator:
        refund = operator.post(f"/payments/{alices_order['paymentId']}:cancel", json={})
        assert refund.status_code == 404
        payment = operator.get(f"/payments/{alices_order['paymentId']}").json()
        assert payment["status"] == "PAYMENT_STATUS_APPROVED"
    with system.channel() as channel:
        with pytest.raises(grpc.RpcError) as refused:
            pay_pb2_grpc.PaymentServiceStub(channel).Pay(
                pay_pb2.PayRequest(order_id="free-bread", amount=1), timeout=5
            )
        assert refused.value.code() == grpc.StatusCode.UNIMPLEMENTED


def direct(system: BreadSystem, service: str) -> grpc.Channel:
    return grpc.insecure_channel(f"127.0.0.1:{system.services[service].port}")


def test_services_enforce_the_rules_themselves(system: BreadSystem, alices_order: dict) -> None:
    """Called straight at their ports (as only Envoy may): no identity is UNAUTHENTICATED,
    and an identity, even one that claims to be alice's neighbour, gets only its own."""
    bob = ((SUBJECT_HEADER, "bob"), (ROLE_HEADER, "customer"))
    oid, pid = alices_order["id"], alices_order["paymentId"]
    calls = {
        "order": lambda ch, md: order_pb2_grpc.OrderServiceStub(ch).GetOrder(
            order_pb2.GetOrderRequest(id=oid), timeout=5, metadata=md
        ),
        "pay": lambda ch, md: pay_pb2_grpc.PaymentServiceStub(ch).GetPayment(
            pay_pb2.GetPaymentRequest(id=pid), timeout=5, metadata=md
        ),
        "customer": lambda ch, md: mypage_pb2_grpc.MypageServiceStub(ch).GetMypage(
            mypage_pb2.GetMypageRequest(order_id=oid), timeout=5, metadata=md
        ),
        "bakery": lambda ch, md: bakery_pb2_grpc.BakeryServiceStub(ch).ListTickets(
            bakery_pb2.ListTicketsRequest(), timeout=5, metadata=md
        ),
    }
    as_bob = {"order": "NOT_FOUND", "pay": "NOT_FOUND", "customer": "NOT_FOUND"}
    for service, call in calls.items():
        with direct(system, service) as channel:
            with pytest.raises(grpc.RpcError) as anonymous:
                call(channel, ())
            assert anonymous.value.code() == grpc.StatusCode.UNAUTHENTICATED, service
            with pytest.raises(grpc.RpcError) as neighbour:
                call(channel, bob)
            expected = as_bob.get(service, "PERMISSION_DENIED")
            assert neighbour.value.code().name == expected, service
