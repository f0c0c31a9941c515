"""One order, one trace per request, from the edge to the last consumer: the spans the real
processes wrote (the services to the trace file, Envoy's edge through the OTLP receiver)."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from harness.polling import wait_for
from harness.system import BreadSystem, running_system
from ops.trace import order_traces, read_spans, render

Span = dict


@pytest.fixture(scope="module")
def system(tmp_path_factory: pytest.TempPathFactory) -> Iterator[BreadSystem]:
    with running_system(tmp_path_factory.mktemp("bread"), trace_ratio=1) as bread:
        yield bread


def spans_of(system: BreadSystem) -> list[Span]:
    if not system.trace_file.exists():
        return []
    return read_spans(system.trace_file.read_text().splitlines())


def one(spans: list[Span], name: str, service: str) -> Span:
    found = [s for s in spans if s["name"] == name and s["service"] == service]
    assert len(found) == 1, (name, service, [(s["name"], s["service"]) for s in spans])
    return found[0]


def ancestors(span: Span, spans: list[Span]) -> Iterator[Span]:
    """span's parent, its parent, ... as far as they were recorded."""
    by_id = {s["span_id"]: s for s in spans}
    while (parent := by_id.get(span["parent_id"])) is not None:
        yield parent
        span = parent


def test_an_order_is_one_trace_per_request_from_the_edge_to_the_last_consumer(
    system: BreadSystem,
) -> None:
    alice = system.auth("customer", "alice")
    with httpx.Client(base_url=system.http, timeout=5) as http:
        # x-order-id is order's to send pay: the edge drops a client's.
        forged = {**alice, "x-order-id": "forged"}
        placed = http.post("/orders", json={"item": "cake", "qty": 1}, headers=forged)
        assert placed.status_code == 200, placed.text
        order_id = placed.json()["id"]
        canceled = http.post(f"/orders/{order_id}:cancel", json={"reason": "no"}, headers=alice)
        assert canceled.status_code == 200, canceled.text

    expected = {
        "/bread.order.v1.OrderService/PlaceOrder",
        "/bread.pay.v1.PaymentService/Pay",
        "/bread.order.v1.OrderService/CancelOrder",
        "publish OrderCancelRequested",
        "publish TicketClosed",
        "publish OrderCanceled",
        "publish PaymentCanceled",
        # The cancel's last consumer: customer applies pay's refund.
        "apply PaymentCanceled",
    }

    def both_traces_complete() -> dict[str, list[Span]] | None:
        traces = order_traces(spans_of(system), order_id)
        names = {s["name"] for spans in traces.values() for s in spans}
        # Envoy reports its spans every 5 s.
        edges = sum(s["service"] == "edge" for spans in traces.values() for s in spans)
        return traces if len(traces) == 2 and expected <= names and edges == 2 else None

    traces = wait_for(both_traces_complete, timeout=20, what="both traces of the order")
    place, cancel = traces.values()
    print("\n".join(line for t, spans in traces.items() for line in render(t, spans)))

    # PlaceOrder: edge -> order -> (mesh) -> pay, and the events it caused to their consumers.
    edge = one(place, "ingress", "edge")
    order = one(place, "/bread.order.v1.OrderService/PlaceOrder", "order")
    pay = one(place, "/bread.pay.v1.PaymentService/Pay", "pay")
    assert order["parent_id"] == edge["span_id"] and order["kind"] == "SERVER"
    assert "bread.order_id" not in order["attributes"]
    assert [a["service"] for a in ancestors(pay, place)] == ["order", "order", "edge"]
    assert pay["attributes"]["bread.order_id"] == order_id  # from order's x-order-id
    bakery_opens = one(place, "apply OrderPlaced", "bakery")
    assert order in ancestors(bakery_opens, place)
    customer_sees_payment = one(place, "apply PaymentApproved", "customer")
    assert pay in ancestors(customer_sees_payment, place)

    # CancelOrder: edge -> order -> bakery's consumer -> customer's consumer, and on to pay's
    # refund and the customer seeing it: every hop of the saga in one trace.
    edge = one(cancel, "ingress", "edge")
    bakery_closes = one(cancel, "apply OrderCancelRequested", "bakery")
    customer_sees_close = one(cancel, "apply TicketClosed", "customer")
    assert bakery_closes in ancestors(customer_sees_close, cancel)
    assert edge in ancestors(bakery_closes, cancel)
    last = one(cancel, "apply PaymentCanceled", "customer")
    chain = [(s["service"], s["name"]) for s in [last, *ancestors(last, cancel)]]
    assert chain == [
        ("customer", "apply PaymentCanceled"),
        ("pay", "publish PaymentCanceled"),
        ("pay", "apply OrderCanceled"),
        ("order", "publish OrderCanceled"),
        ("order", "apply TicketClosed"),
        ("bakery", "publish TicketClosed"),
        ("bakery", "apply OrderCancelRequested"),
        ("order", "publish OrderCancelRequested"),
        ("order", "/bread.order.v1.OrderService/CancelOrder"),
        ("edge", "ingress"),
    ]
    assert {s["trace_id"] for s in cancel} == {edge["trace_id"]}
