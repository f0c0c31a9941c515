"""Each service's /metrics, and Envoy's, against the real system: three orders through the
saga (delivered, canceled, rejected) and one bad request move every counter by exactly what
happened: calls by method and code, events published and consumed by type (with as many lag
observations), the pay calls through the mesh, orders by status; nothing retried or
dead-lettered, and every outbox empty again."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from harness.polling import wait_for
from harness.system import BreadSystem
from servicekit import registry

# (family, labels) -> value
Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]

# What each service's queue is bound to (the services' handler tables).
CONSUMES = {
    "order": {
        "BakeryAccepted",
        "BakeryRejected",
        "OrderDelivered",
        "TicketClosed",
        "CancelRefused",
    },
    "pay": {"OrderCanceled", "BakeryRejected", "OrderFailed"},
    "bakery": {"OrderPlaced", "OrderCancelRequested"},
    "customer": {
        "OrderPlaced",
        "OrderFailed",
        "OrderCancelRequested",
        "TicketClosed",
        "CancelRefused",
        "OrderCanceled",
        "PaymentApproved",
        "PaymentCanceled",
        "BakeryAccepted",
        "BakeryRejected",
        "OrderDelivered",
    },
}
PUBLISHES = {
    "order": {"OrderPlaced", "OrderFailed", "OrderCancelRequested", "OrderCanceled"},
    "pay": {"PaymentApproved", "PaymentCanceled"},
    "bakery": {
        "BakeryAccepted",
        "BakeryRejected",
        "OrderDelivered",
        "TicketClosed",
        "CancelRefused",
    },
}
# The saga below: three orders placed and paid; one accepted and delivered, one canceled
# while its ticket was open (closed, refunded), one rejected (refunded).
EVENTS = Counter(
    OrderPlaced=3,
    PaymentApproved=3,
    BakeryAccepted=1,
    OrderDelivered=1,
    OrderCancelRequested=1,
    TicketClosed=1,
    OrderCanceled=1,
    BakeryRejected=1,
    PaymentCanceled=2,
)
GRPC_SERVICES = {service.name: service.api for service in registry.SERVICES}
HTTP_CODES = {200: "OK", 400: "INVALID_ARGUMENT", 404: "NOT_FOUND"}


def scrape(url: str) -> Samples:
    text = httpx.get(url, timeout=5).text
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def moved(before: Samples, after: Samples, name: str, **where: str) -> dict[str, float]:
    """How far each series of `name` matching `where` moved, by its labels (non-zero only)."""
    moves: dict[str, float] = {}
    for (sample, labels), value in after.items():
        if sample == name and set(where.items()) <= labels:
            rest = ",".join(f"{k}={v}" for k, v in sorted(labels) if k not in where)
            if delta := value - before.get((sample, labels), 0.0):
                moves[rest] = delta
    return moves


def by_type(counts: Counter[str]) -> dict[str, float]:
    return {f"type=bread.events.v1.{name}": float(n) for name, n in counts.items() if n}


class Calls:
    """The edge's client, tallying each call by (service, method, gRPC code)."""

    def __init__(self, http: httpx.Client) -> None:
        self.http = http
        self.tally: Counter[tuple[str, str, str]] = Counter()

    def call(self, service: str, method: str, verb: str, path: str, body: object = None) -> dict:
        response = self.http.request(verb, path, json=body)
        self.tally[(service, method, HTTP_CODES[response.status_code])] += 1
        return response.json() if response.status_code == 200 else {}

    def until(self, service: str, method: str, path: str, **expected: str) -> dict:
        def matches() -> dict | None:
            body = self.call(service, method, "GET", path)
            return body if body and all(body.get(k) == v for k, v in expected.items()) else None

        return wait_for(matches, timeout=15, what=f"{path} with {expected}")

    def place(self, item: str) -> str:
        order = self.call("order", "PlaceOrder", "POST", "/orders", {"item": item, "qty": 1})
        return str(order.get("id", ""))


@pytest.fixture(scope="module")
def calls(http: httpx.Client) -> Iterator[Calls]:
    yield Calls(http)


def scrape_all(system: BreadSystem) -> dict[str, Samples]:
    samples = {
        name: scrape(f"http://127.0.0.1:{process.metrics_port}/metrics")
        for name, process in system.services.items()
    }
    samples["envoy"] = scrape(f"{system.admin_url}/stats/prometheus")
    return samples


def test_counters_move_by_exactly_what_the_saga_did(system: BreadSystem, calls: Calls) -> None:
    before = scrape_all(system)

    delivered, canceled, rejected = (calls.place(item) for item in ("cake", "donut", "baguette"))
    assert calls.place("pizza") == ""  # not on the menu: INVALID_ARGUMENT
    for order_id in (delivered, canceled, rejected):
        calls.until("bakery", "GetTicket", f"/bakeries/{order_id}", status="TICKET_STATUS_OPEN")
    calls.call("bakery", "AcceptOrder", "POST", f"/bakeries/{delivered}:accept", {})
    calls.call("bakery", "MarkDelivered", "POST", f"/bakeries/{delivered}:deliver", {})
    calls.call("order", "CancelOrder", "POST", f"/orders/{canceled}:cancel", {})
    calls.call("bakery", "RejectOrder", "POST", f"/bakeries/{rejected}:reject", {})
    for order_id, order_status, payment in (
        (delivered, "DELIVERED", "APPROVED"),
        (canceled, "CANCELED", "CANCELED"),
        (rejected, "REJECTED", "CANCELED"),
    ):
        calls.until(
            "customer",
            "GetMypage",
            f"/mypages/{order_id}",
            orderStatus=order_status,
            paymentStatus=payment,
        )
        calls.until(
            "order", "GetOrder", f"/orders/{order_id}", status=f"ORDER_STATUS_{order_status}"
        )

    consumed = {
        name: by_type(Counter({t: n for t, n in EVENTS.items() if t in types}))
        for name, types in CONSUMES.items()
    }

    def settled() -> dict[str, Samples] | None:
        after = scrape_all(system)
        done = all(
            moved(before[name], after[name], "bread_events_consumed_total") == consumed[name]
            for name in CONSUMES
        ) and all(after[name][("bread_outbox_rows", frozenset())] == 0 for name in GRPC_SERVICES)
        return after if done else None

    after = wait_for(settled, timeout=15, what="every event consumed and every outbox empty")

    for name, grpc_service in GRPC_SERVICES.items():
        calls_made = {
            f"grpc_code={code},grpc_method={method}": float(n)
            for (service, method, code), n in calls.tally.items()
            if service == name
        }
        if name == "pay":  # order's Pay calls, through the mesh
            calls_made = {"grpc_code=OK,grpc_method=Pay": 3.0}
        handled = moved(
            before[name],
            after[name],
            "bread_grpc_server_handled_total",
            grpc_service=grpc_service,
        )
        assert handled == calls_made, name
        timed = moved(
            before[name],
            after[name],
            "bread_grpc_server_handling_seconds_count",
            grpc_service=grpc_service,
        )
        assert sum(timed.values()) == sum(calls_made.values()), name

        published = Counter({t: n for t, n in EVENTS.items() if t in PUBLISHES.get(name, ())})
        assert moved(before[name], after[name], "bread_outbox_published_total") == by_type(
            published
        ), name
        assert moved(before[name], after[name], "bread_event_lag_seconds_count") == consumed[name]
        for nothing in (
            "bread_events_retried_total",
            "bread_events_dead_lettered_total",
            "bread_outbox_publish_failures_total",
        ):
            assert moved(before[name], after[name], nothing) == {}, (name, nothing)
        assert after[name][("bread_ready", frozenset())] == 1
        # prometheus-client's process metrics are there too.
        assert after[name][("process_cpu_seconds_total", frozenset())] > 0

    assert moved(before["order"], after["order"], "bread_orders") == {
        "status=DELIVERED": 1,
        "status=CANCELED": 1,
        "status=REJECTED": 1,
    }
    assert moved(
        before["envoy"],
        after["envoy"],
        "envoy_cluster_upstream_rq_total",
        envoy_cluster_name="pay_mesh",
    ) == {"": 3, "envoy_response_code=200": 3}
