"""Audit every order end to end, read straight from each service's own database.

One implementation for the tests (tests/chaos, tests/faults), the chaos runner
(`make chaos`, ops/chaos.py) and the load scenarios (harness/invariants.py is the money-only
view of it). It lives in ops/ because all three may import ops, while tests and bench must
not import each other.

What a settled system looks like, per order (its status in order's database):

| order     | payments (pay)           | ticket (bakery)  |
|-----------|--------------------------|------------------|
| PAID      | one APPROVED, its price  | OPEN             |
| CONFIRMED | one APPROVED, its price  | ACCEPTED         |
| DELIVERED | one APPROVED, its price  | DELIVERED        |
| REJECTED  | one CANCELED (refunded)  | REJECTED         |
| CANCELED  | one CANCELED (refunded)  | CLOSED           |
| FAILED    | one VOIDED or CANCELED   | none, or CLOSED  |

No order stays PENDING or CANCELING; never two payments for one order; no payment, ticket
or Mypage row for an order that order does not know. The Mypage row (customer) agrees with
the order on customer, item, qty, price, status and payment id, and with pay and the bakery
on the payment's and ticket's status (lenient only where a FAILED order's row may
legitimately not know them). What clients were told agrees: an order answered as placed is
not FAILED, one answered as FAILED is FAILED.

A service whose URL is not given is not read, and its checks are skipped (the money view
reads order and pay only). Events are asynchronous, so `wait_consistent` and `audit` poll
until everything holds or a deadline passes, then report what still does not.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import aio_pika
import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from bread.bakery.v1.bakery_pb2 import TicketStatus
from bread.order.v1.order_pb2 import OrderStatus
from bread.pay.v1.pay_pb2 import PaymentStatus
from ops.dead_letters import dead_letter_queues, list_dead_letters
from servicekit import registry
from servicekit.db import open_database

UNSETTLED = frozenset({"PENDING", "CANCELING"})
# What pay and the bakery hold for an order in each final status (None: no ticket).
EXPECTED: dict[str, tuple[frozenset[str], frozenset[str | None]]] = {
    "PAID": (frozenset({"APPROVED"}), frozenset({"OPEN"})),
    "CONFIRMED": (frozenset({"APPROVED"}), frozenset({"ACCEPTED"})),
    "DELIVERED": (frozenset({"APPROVED"}), frozenset({"DELIVERED"})),
    "REJECTED": (frozenset({"CANCELED"}), frozenset({"REJECTED"})),
    "CANCELED": (frozenset({"CANCELED"}), frozenset({"CLOSED"})),
    "FAILED": (frozenset({"VOIDED", "CANCELED"}), frozenset({None, "CLOSED"})),
}
# Statuses an order answered as placed may have (never FAILED, never stuck).
PLACED = frozenset({"PAID", "CONFIRMED", "DELIVERED", "REJECTED", "CANCELED"})


def _name(enum: Any, prefix: str, status: int) -> str:
    """A stored status by its short name; an unknown number is reported, not a crash."""
    try:
        return str(enum.Name(status)).removeprefix(prefix)
    except ValueError:
        return f"status {status}"


def order_status(status: int) -> str:
    return _name(OrderStatus, "ORDER_STATUS_", status)


def payment_status(status: int) -> str:
    return _name(PaymentStatus, "PAYMENT_STATUS_", status)


def ticket_status(status: int) -> str:
    return _name(TicketStatus, "TICKET_STATUS_", status)


# ------------------------------------------------------------------------------ reading


@dataclass(frozen=True)
class OrderRow:
    customer_id: str
    item: str
    qty: int
    price: int
    status: str
    payment_id: str


@dataclass(frozen=True)
class PaymentRow:
    id: str
    status: str
    amount: int


@dataclass(frozen=True)
class MypageRow:
    customer_id: str
    item: str
    qty: int
    price: int
    order_status: str
    payment_id: str
    payment_status: str
    bakery_status: str


@dataclass
class Snapshot:
    """What each service's database holds; None for a service that was not read."""

    orders: dict[str, OrderRow] = field(default_factory=dict)
    payments: dict[str, list[PaymentRow]] | None = None
    tickets: dict[str, str] | None = None
    mypages: dict[str, MypageRow] | None = None


def _rows(url: str, sql: str) -> list[tuple]:
    db = open_database(url)
    try:
        return list(db.execute_sql(sql).fetchall())
    finally:
        db.close()


def read_snapshot(urls: Mapping[str, str]) -> Snapshot:
    """Read order's, pay's, the bakery's and customer's tables (those whose URL is given),
    from SQLite, PostgreSQL or MariaDB alike."""
    snapshot = Snapshot()
    for oid, customer, item, qty, price, status, payment_id in _rows(
        urls["order"], "SELECT id, customer_id, item, qty, price, status, payment_id FROM orders"
    ):
        snapshot.orders[oid] = OrderRow(
            customer, item, int(qty), int(price), order_status(int(status)), payment_id or ""
        )
    if "pay" in urls:
        snapshot.payments = {}
        for pid, oid, status, amount in _rows(
            urls["pay"], "SELECT id, order_id, status, amount FROM payments"
        ):
            row = PaymentRow(pid, payment_status(int(status)), int(amount))
            snapshot.payments.setdefault(oid, []).append(row)
    if "bakery" in urls:
        snapshot.tickets = {
            oid: ticket_status(int(status))
            for oid, status in _rows(urls["bakery"], "SELECT order_id, status FROM tickets")
        }
    if "customer" in urls:
        snapshot.mypages = {
            row[0]: MypageRow(
                row[1], row[2], int(row[3]), int(row[4]), row[5], row[6] or "", row[7], row[8]
            )
            for row in _rows(
                urls["customer"],
                "SELECT order_id, customer_id, item, qty, price, order_status, payment_id, "
                "payment_status, bakery_status FROM mypages",
            )
        }
    return snapshot


# ------------------------------------------------------------------------------ checking


@dataclass(frozen=True)
class Expectations:
    """What the callers know beyond the rules: the end they drove orders to, and what
    clients were told."""

    # order id -> the final statuses it may have (several when a race decides).
    ends: Mapping[str, Collection[str]] = field(default_factory=dict)
    placed: Collection[str] = ()  # answered as placed
    failed: Collection[str] = ()  # answered as FAILED
    # Statuses an order may have at all (None: any settled one). The money view of a load
    # without bakers allows PAID and FAILED only.
    allowed: Collection[str] | None = None
    # Statuses an order answered as placed may have.
    placed_as: Collection[str] = PLACED


@dataclass
class Report:
    orders: Counter[str] = field(default_factory=Counter)
    payments: Counter[str] = field(default_factory=Counter)
    tickets: Counter[str] = field(default_factory=Counter)
    mypages: int = 0
    # Violations by order id; those not about one order under "".
    problems: dict[str, list[str]] = field(default_factory=dict)
    dead_letters: dict[str, int] = field(default_factory=dict)  # DLQ -> messages (-1: missing)
    dead_letter_errors: list[str] = field(default_factory=list)  # what is in them, and why
    ready: dict[str, bool] = field(default_factory=dict)  # "order :8081" -> readiness SERVING
    settle_seconds: float = 0.0

    def add(self, order_id: str, problem: str) -> None:
        self.problems.setdefault(order_id, []).append(problem)

    @property
    def violations(self) -> list[str]:
        """Every violation as one line, orders first."""
        lines = [
            f"order {oid}: {problem}" if oid else problem
            for oid, problems in sorted(self.problems.items(), key=lambda kv: kv[0] == "")
            for problem in problems
        ]
        lines += [f"dead letters: {q} holds {n}" for q, n in self.dead_letters.items() if n > 0]
        lines += [f"  dead letter {error}" for error in self.dead_letter_errors]
        lines += [f"not ready: {name}" for name, ok in self.ready.items() if not ok]
        return lines

    @property
    def consistent(self) -> bool:
        return not self.problems

    @property
    def ok(self) -> bool:
        return not self.violations

    def summary(self, limit: int = 10) -> str:
        def counts(counter: Counter[str]) -> str:
            return ", ".join(f"{k} {v}" for k, v in sorted(counter.items())) or "none"

        lines = [f"orders:   {counts(self.orders)}", f"payments: {counts(self.payments)}"]
        if self.tickets:
            lines.append(f"tickets:  {counts(self.tickets)}")
        if self.mypages:
            lines.append(f"mypages:  {self.mypages}")
        if self.dead_letters:
            lines.append(
                "dead letters: " + ", ".join(f"{q} {n}" for q, n in self.dead_letters.items())
            )
        if self.ready:
            not_ready = [name for name, ok in self.ready.items() if not ok]
            lines.append(
                f"ready: {len(self.ready) - len(not_ready)} of {len(self.ready)} replicas"
                + (f" (not: {', '.join(not_ready)})" if not_ready else "")
            )
        violations = self.violations
        if not violations:
            lines.append(f"invariants: OK (settled in {self.settle_seconds:.1f} s)")
        else:
            lines.append(
                f"invariants: {len(violations)} VIOLATED"
                f" ({len([o for o in self.problems if o])} orders)"
            )
            lines.extend(f"  - {v}" for v in violations[:limit])
            if len(violations) > limit:
                lines.append(f"  ... and {len(violations) - limit} more")
        return "\n".join(lines)


def check(snapshot: Snapshot, expect: Expectations | None = None) -> Report:
    """Every rule above against one snapshot."""
    expect = expect or Expectations()
    report = Report()
    orders, payments, tickets, pages = (
        snapshot.orders,
        snapshot.payments,
        snapshot.tickets,
        snapshot.mypages,
    )
    for rows in (payments or {}).values():
        report.payments.update(p.status for p in rows)
    report.tickets.update((tickets or {}).values())
    report.mypages = len(pages or {})
    for oid, order in orders.items():
        report.orders[order.status] += 1
        for problem in _check_order(oid, order, snapshot):
            report.add(oid, problem)
        allowed = expect.allowed
        if allowed is not None and order.status not in allowed and order.status not in UNSETTLED:
            report.add(oid, f"is {order.status}")
    stores: list[tuple[str, Collection[str]]] = [
        ("payment", (payments or {}).keys()),
        ("ticket", (tickets or {}).keys()),
        ("Mypage row", (pages or {}).keys()),
    ]
    for store, order_ids in stores:
        for oid in set(order_ids) - orders.keys():
            report.add(oid, f"{store} for an order that order does not know")
    for oid, ends in expect.ends.items():
        got = orders[oid].status if oid in orders else "missing"
        if got not in ends:
            report.add(oid, f"driven to {'/'.join(sorted(ends))}, it is {got}")
    for oid in expect.placed:
        got = orders[oid].status if oid in orders else "missing"
        if got not in expect.placed_as:
            report.add(oid, f"client told it is placed; it is {got}")
    for oid in expect.failed:
        got = orders[oid].status if oid in orders else "missing"
        if got != "FAILED":
            report.add(oid, f"client told it is FAILED; it is {got}")
    return report


def _check_order(oid: str, order: OrderRow, snapshot: Snapshot) -> Iterable[str]:
    status = order.status
    if status in UNSETTLED:
        yield f"still {status}"
        return
    if status not in EXPECTED:
        yield f"unknown status {status}"
        return
    want_payment, want_ticket = EXPECTED[status]
    ticket = None if snapshot.tickets is None else snapshot.tickets.get(oid)
    pays = None if snapshot.payments is None else snapshot.payments.get(oid, [])
    if pays is not None:
        if len(pays) > 1:
            yield f"{len(pays)} payments: {sorted(p.status for p in pays)}"
        elif not pays:
            yield f"{status} with no payment"
        else:
            pay = pays[0]
            if pay.status not in want_payment:
                yield f"{status} with payment {pay.status}"
            elif pay.status == "APPROVED" and pay.amount != order.price:
                yield f"charged {pay.amount}, price {order.price}"
            if pay.status == "CANCELED" and ticket == "DELIVERED":
                yield "refunded and delivered"
            if order.payment_id and pay.id != order.payment_id:
                yield f"order names payment {order.payment_id}, pay has {pay.id}"
    if snapshot.tickets is not None:
        if ticket not in want_ticket:
            yield f"{status} with ticket {ticket or 'none'}"
        if status == "CANCELED" and ticket == "DELIVERED":
            yield "canceled and delivered"
    if snapshot.mypages is not None:
        yield from _check_mypage(order, snapshot.mypages.get(oid), pays, ticket)


def _check_mypage(
    order: OrderRow, page: MypageRow | None, pays: list[PaymentRow] | None, ticket: str | None
) -> Iterable[str]:
    if page is None:
        yield f"{order.status} with no Mypage row"
        return
    mine = (order.customer_id, order.item, order.qty, order.price, order.status)
    theirs = (page.customer_id, page.item, page.qty, page.price, page.order_status)
    if mine != theirs:
        yield f"Mypage says {theirs}, order {mine}"
    if order.payment_id and page.payment_id != order.payment_id:
        yield f"Mypage payment {page.payment_id or 'none'}, order {order.payment_id}"
    failed = order.status == "FAILED"
    if pays is not None and len(pays) == 1:
        # A FAILED order's Mypage may not know about a void (pay tells nobody) or a refund
        # of a charge it never heard of.
        known = {pays[0].status, ""} if failed else {pays[0].status}
        if page.payment_status not in known:
            yield f"Mypage payment status {page.payment_status or 'none'}, pay {pays[0].status}"
    if ticket is not None:
        known_ticket = {ticket, ""} if failed else {ticket}
        if page.bakery_status not in known_ticket:
            yield f"Mypage bakery status {page.bakery_status or 'none'}, ticket {ticket}"


def wait_consistent(
    urls: Mapping[str, str],
    expect: Expectations | None = None,
    timeout: float = 60.0,
    interval: float = 0.25,
) -> Report:
    """Check until every order is consistent or timeout seconds pass; the last report,
    with how long it took."""
    started = time.monotonic()
    while True:
        report = check(read_snapshot(urls), expect)
        report.settle_seconds = time.monotonic() - started
        if report.consistent or report.settle_seconds > timeout:
            return report
        time.sleep(interval)


# ------------------------------------------------------------------------------ the rest


def dead_letters(amqp_url: str, queue_prefix: str) -> dict[str, int]:
    """Messages in each DLQ (passive declare); -1 for a DLQ that does not exist."""

    async def count() -> dict[str, int]:
        counts: dict[str, int] = {}
        connection = await aio_pika.connect(amqp_url, timeout=10)
        async with connection:
            for name in dead_letter_queues(queue_prefix):
                channel = await connection.channel()
                try:
                    queue = await channel.declare_queue(name, passive=True)
                except aio_pika.exceptions.ChannelClosed:
                    counts[name] = -1  # a passive declare of a missing queue closes the channel
                    continue
                counts[name] = int(queue.declaration_result.message_count or 0)
                await channel.close()
        return counts

    return asyncio.run(count())


def readiness_name(service: str) -> str:
    return registry.service(service).readiness_name


def is_ready(service: str, port: int, host: str = "127.0.0.1") -> bool:
    """The service's readiness (its API name in grpc.health.v1) is SERVING."""
    try:
        with grpc.insecure_channel(f"{host}:{port}") as channel:
            reply = health_pb2_grpc.HealthStub(channel).Check(
                health_pb2.HealthCheckRequest(service=readiness_name(service)), timeout=2
            )
    except grpc.RpcError:
        return False
    return bool(reply.status == health_pb2.HealthCheckResponse.SERVING)


def readiness(replicas: Mapping[str, Iterable[int]]) -> dict[str, bool]:
    """Readiness of every replica, by "service :port"."""
    return {
        f"{service} :{port}": is_ready(service, port)
        for service, ports in replicas.items()
        for port in ports
    }


def audit(
    urls: Mapping[str, str],
    *,
    amqp_url: str,
    queue_prefix: str,
    replicas: Mapping[str, Iterable[int]],
    expect: Expectations | None = None,
    timeout: float = 60.0,
) -> Report:
    """Wait (up to timeout) until every order is consistent and every replica ready; then
    count the dead letters. The report lists whatever still is not right."""
    started = time.monotonic()
    ports = {service: list(p) for service, p in replicas.items()}
    while True:
        report = wait_consistent(urls, expect, max(timeout - (time.monotonic() - started), 0))
        report.ready = readiness(ports)
        report.settle_seconds = time.monotonic() - started
        if (report.consistent and all(report.ready.values())) or report.settle_seconds > timeout:
            break
        time.sleep(0.25)
    report.dead_letters = dead_letters(amqp_url, queue_prefix)
    if any(n > 0 for n in report.dead_letters.values()):
        report.dead_letter_errors = [
            f"{d.type_name} {d.event_id} (order {d.order_id}) in {d.queue}: {d.error[:200]}"
            for d in asyncio.run(list_dead_letters(amqp_url, queue_prefix))
        ]
    return report
