"""Every business flow across all four services, driven by real RabbitMQ events,
in both persistence profiles (SQLite only; PostgreSQL + MariaDB + SQLite)."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from harness.polling import wait_for
from harness.system import running_system


@pytest.fixture(scope="module", params=["default", "polyglot"])
def bread(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[httpx.Client]:
    tmp = tmp_path_factory.mktemp(request.param)
    with (
        running_system(tmp, profile=request.param) as system,
        system.client(timeout=5) as client,
    ):
        yield client


def place(http: httpx.Client, item: str = "cake", qty: int = 1) -> dict:
    response = http.post("/orders", json={"item": item, "qty": qty, "customerId": "saga"})
    assert response.status_code == 200, response.text
    return response.json()


def eventually(http: httpx.Client, path: str, **expected: str) -> dict:
    """GET path until the JSON has the expected fields (events are asynchronous)."""

    def matches() -> dict | None:
        response = http.get(path)
        if response.status_code != 200:
            return None
        body = response.json()
        return body if all(body.get(k) == v for k, v in expected.items()) else None

    return wait_for(matches, timeout=15, what=f"{path} with {expected}")


def ticket_opened(http: httpx.Client, order_id: str) -> None:
    eventually(http, f"/bakeries/{order_id}", status="TICKET_STATUS_OPEN")


def test_happy_path_to_delivered(bread: httpx.Client) -> None:
    order = place(bread, "baguette", 3)
    oid = order["id"]
    ticket_opened(bread, oid)
    page = eventually(
        bread, f"/mypages/{oid}", orderStatus="PAID", paymentStatus="APPROVED", bakeryStatus="OPEN"
    )
    assert (page["item"], page["qty"], page["price"], page["paymentId"]) == (
        "baguette",
        3,
        "13500",
        order["paymentId"],
    )

    assert bread.post(f"/bakeries/{oid}:accept", json={}).status_code == 200
    eventually(bread, f"/orders/{oid}", status="ORDER_STATUS_CONFIRMED")
    eventually(bread, f"/mypages/{oid}", orderStatus="CONFIRMED", bakeryStatus="ACCEPTED")

    assert bread.post(f"/bakeries/{oid}:deliver", json={}).status_code == 200
    eventually(bread, f"/orders/{oid}", status="ORDER_STATUS_DELIVERED")
    eventually(
        bread,
        f"/mypages/{oid}",
        orderStatus="DELIVERED",
        bakeryStatus="DELIVERED",
        paymentStatus="APPROVED",
    )

    refused = bread.post(f"/orders/{oid}:cancel", json={})
    assert refused.status_code == 400 and refused.json()["code"] == 9  # FAILED_PRECONDITION


def test_rejection_refunds(bread: httpx.Client) -> None:
    order = place(bread)
    oid = order["id"]
    ticket_opened(bread, oid)
    rejected = bread.post(f"/bakeries/{oid}:reject", json={"reason": "out of flour"})
    assert rejected.json()["status"] == "TICKET_STATUS_REJECTED"
    eventually(bread, f"/orders/{oid}", status="ORDER_STATUS_REJECTED", reason="out of flour")
    eventually(bread, f"/payments/{order['paymentId']}", status="PAYMENT_STATUS_CANCELED")
    eventually(
        bread,
        f"/mypages/{oid}",
        orderStatus="REJECTED",
        paymentStatus="CANCELED",
        bakeryStatus="REJECTED",
    )


def test_customer_cancel_refunds_and_closes_ticket(bread: httpx.Client) -> None:
    order = place(bread)
    oid = order["id"]
    ticket_opened(bread, oid)
    assert bread.post(f"/bakeries/{oid}:accept", json={}).status_code == 200
    eventually(bread, f"/orders/{oid}", status="ORDER_STATUS_CONFIRMED")
    canceled = bread.post(f"/orders/{oid}:cancel", json={"reason": "too late"})
    # A request the bakery answers: CANCELING until it closed the ticket.
    assert canceled.json()["status"] == "ORDER_STATUS_CANCELING"
    eventually(bread, f"/orders/{oid}", status="ORDER_STATUS_CANCELED", reason="too late")
    eventually(bread, f"/payments/{order['paymentId']}", status="PAYMENT_STATUS_CANCELED")
    eventually(bread, f"/bakeries/{oid}", status="TICKET_STATUS_CLOSED")
    eventually(
        bread,
        f"/mypages/{oid}",
        orderStatus="CANCELED",
        paymentStatus="CANCELED",
        bakeryStatus="CLOSED",
    )
    late = bread.post(f"/bakeries/{oid}:deliver", json={})
    assert late.status_code == 400 and late.json()["code"] == 9


def test_cancel_after_the_bread_left_is_refused_by_the_bakery(bread: httpx.Client) -> None:
    """The order has not heard of the delivery yet, so it asks; the bakery refuses
    and the order ends DELIVERED, never refunded."""
    order = place(bread)
    oid = order["id"]
    ticket_opened(bread, oid)
    assert bread.post(f"/bakeries/{oid}:accept", json={}).status_code == 200
    eventually(bread, f"/orders/{oid}", status="ORDER_STATUS_CONFIRMED")
    delivered = bread.post(f"/bakeries/{oid}:deliver", json={})
    canceling = bread.post(f"/orders/{oid}:cancel", json={"reason": "too slow"})
    assert delivered.status_code == 200, delivered.text
    # Either the order heard of the delivery first (a clean refusal) or it asked the bakery.
    assert canceling.status_code in (200, 400), canceling.text
    eventually(bread, f"/orders/{oid}", status="ORDER_STATUS_DELIVERED")
    eventually(bread, f"/mypages/{oid}", orderStatus="DELIVERED", bakeryStatus="DELIVERED")
    assert bread.get(f"/payments/{order['paymentId']}").json()["status"] == (
        "PAYMENT_STATUS_APPROVED"
    )


def test_baker_actions_out_of_turn_are_failed_preconditions(bread: httpx.Client) -> None:
    oid = place(bread)["id"]
    ticket_opened(bread, oid)
    deliver_first = bread.post(f"/bakeries/{oid}:deliver", json={})
    assert deliver_first.status_code == 400 and deliver_first.json()["code"] == 9
    assert bread.post("/bakeries/no-such-order:accept", json={}).status_code == 404
    open_tickets = bread.get("/bakeries", params={"status": "TICKET_STATUS_OPEN"}).json()
    assert oid in [t["orderId"] for t in open_tickets["tickets"]]


def test_mypages_by_customer(bread: httpx.Client) -> None:
    oid = place(bread, "donut", 2)["id"]
    eventually(bread, f"/mypages/{oid}", orderStatus="PAID")
    pages = bread.get("/mypages", params={"customerId": "saga", "pageSize": 100}).json()
    assert oid in [p["orderId"] for p in pages["mypages"]]
