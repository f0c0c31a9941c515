"""Where is my bread? GET /orders/{id}/timeline through the edge: the order's events across
the services in order, to its customer and operators; anyone else's or unknown: 404, not an
order id: 400."""

from __future__ import annotations

import uuid

import httpx

from harness.polling import wait_for
from harness.system import BreadSystem


def test_an_order_s_timeline_shows_where_its_saga_is(system: BreadSystem) -> None:
    with (
        system.client("customer", "alice") as alice,
        system.client("customer", "bob") as bob,
        system.client("operator", "olga") as olga,
        system.client("baker", "bea") as bea,
    ):
        placed = alice.post("/orders", json={"item": "donut", "qty": 2})
        assert placed.status_code == 200, placed.text
        order_id = placed.json()["id"]

        def accept_then_look() -> dict | None:
            # The ticket opens once the bakery has OrderPlaced: 404 until then.
            bea.post(f"/bakeries/{order_id}:accept")
            body = alice.get(f"/orders/{order_id}/timeline").json()
            types = [e["type"] for e in body.get("events", [])]
            return body if "BakeryAccepted" in types else None

        timeline = wait_for(accept_then_look, what="the accepted order's timeline")
        assert timeline["orderId"] == order_id and timeline["orderStatus"] == "CONFIRMED"
        events = [(e["type"], e["service"]) for e in timeline["events"]]
        assert set(events) == {
            ("PaymentApproved", "pay"),
            ("OrderPlaced", "order"),
            ("BakeryAccepted", "bakery"),
        }
        assert events[-1] == ("BakeryAccepted", "bakery")
        times = [e["eventTime"] for e in timeline["events"]]
        assert times == sorted(times)

        assert olga.get(f"/orders/{order_id}/timeline").json()["events"] == timeline["events"]
        assert_refused(bob.get(f"/orders/{order_id}/timeline"), 404)
        assert_refused(olga.get(f"/orders/{uuid.uuid4()}/timeline"), 404)
        assert_refused(alice.get("/orders/nope/timeline"), 400)


def assert_refused(response: httpx.Response, status: int) -> None:
    assert response.status_code == status, response.text
    assert set(response.json()) == {"code", "message", "details"}
