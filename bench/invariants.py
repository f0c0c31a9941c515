"""Money invariants after a load, read straight from order's and pay's own databases.

Once the saga has settled (pay has consumed every OrderFailed):
- no order is left PENDING; each is PAID or FAILED (no baker acts during a scenario);
- a PAID order has exactly one payment, APPROVED, for its price;
- a FAILED order was never left charged: its one payment row is VOIDED (failed before pay
  charged; a late Pay is refused) or CANCELED (refunded);
- no payment exists for an order that order does not know;
- what the clients were told agrees: an order answered as placed is PAID, one answered as
  FAILED is FAILED.

Compensation is asynchronous, so `wait_settled` polls until these hold or a deadline passes,
and then reports what still does not.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from bread.order.v1.order_pb2 import OrderStatus
from bread.pay.v1.pay_pb2 import PaymentStatus
from servicekit.db import open_database

PENDING, PAID, FAILED = (
    OrderStatus.ORDER_STATUS_PENDING,
    OrderStatus.ORDER_STATUS_PAID,
    OrderStatus.ORDER_STATUS_FAILED,
)
APPROVED, CANCELED, VOIDED = (
    PaymentStatus.PAYMENT_STATUS_APPROVED,
    PaymentStatus.PAYMENT_STATUS_CANCELED,
    PaymentStatus.PAYMENT_STATUS_VOIDED,
)


def order_status(status: int) -> str:
    return OrderStatus.Name(status).removeprefix("ORDER_STATUS_")  # type: ignore[arg-type]


def payment_status(status: int) -> str:
    return PaymentStatus.Name(status).removeprefix("PAYMENT_STATUS_")  # type: ignore[arg-type]


@dataclass
class Ledger:
    orders: dict[str, tuple[int, int]]  # order id -> (status, price)
    payments: dict[str, list[tuple[int, int]]]  # order id -> [(status, amount), ...]


def _rows(url: str, sql: str) -> list[tuple]:
    db = open_database(url)
    try:
        return list(db.execute_sql(sql).fetchall())
    finally:
        db.close()


def read_ledger(urls: Mapping[str, str]) -> Ledger:
    """Orders from order's database, payments from pay's (any profile: SQLite, PG, MariaDB)."""
    orders = {oid: (int(s), int(p)) for oid, s, p in _rows(urls["order"], _ORDERS)}
    payments: dict[str, list[tuple[int, int]]] = {}
    for oid, s, amount in _rows(urls["pay"], _PAYMENTS):
        payments.setdefault(oid, []).append((int(s), int(amount)))
    return Ledger(orders, payments)


_ORDERS = "SELECT id, status, price FROM orders"
_PAYMENTS = "SELECT order_id, status, amount FROM payments"


@dataclass
class Report:
    orders: Counter[str] = field(default_factory=Counter)
    payments: Counter[str] = field(default_factory=Counter)
    violations: list[str] = field(default_factory=list)
    settle_seconds: float = 0.0

    @property
    def ok(self) -> bool:
        return not self.violations

    def summary(self, limit: int = 10) -> str:
        lines = [
            "orders:   " + ", ".join(f"{k} {v}" for k, v in sorted(self.orders.items())),
            "payments: " + ", ".join(f"{k} {v}" for k, v in sorted(self.payments.items())),
        ]
        if self.ok:
            lines.append(f"invariants: OK (settled in {self.settle_seconds:.1f} s)")
        else:
            lines.append(f"invariants: {len(self.violations)} VIOLATED")
            lines.extend(f"  - {v}" for v in self.violations[:limit])
            if len(self.violations) > limit:
                lines.append(f"  ... and {len(self.violations) - limit} more")
        return "\n".join(lines)


def check(ledger: Ledger, placed: Iterable[str] = (), failed: Iterable[str] = ()) -> Report:
    report = Report()
    for payments in ledger.payments.values():
        report.payments.update(payment_status(s) for s, _ in payments)
    for oid, (status, price) in ledger.orders.items():
        report.orders[order_status(status)] += 1
        pays = ledger.payments.get(oid, [])
        statuses = sorted(payment_status(s) for s, _ in pays)
        if status == PAID:
            if [s for s, _ in pays] != [APPROVED]:
                report.violations.append(f"PAID order {oid} has payments {statuses}")
            elif pays[0][1] != price:
                report.violations.append(f"PAID order {oid} charged {pays[0][1]}, price {price}")
        elif status == FAILED:
            if len(pays) != 1 or pays[0][0] not in (VOIDED, CANCELED):
                report.violations.append(f"FAILED order {oid} has payments {statuses}")
        else:
            report.violations.append(f"order {oid} is {order_status(status)}")
    for oid in ledger.payments.keys() - ledger.orders.keys():
        report.violations.append(f"payment for unknown order {oid}")
    for oid in placed:
        got = ledger.orders.get(oid, (0, 0))[0]
        if got != PAID:
            report.violations.append(f"client told {oid} is placed; it is {order_status(got)}")
    for oid in failed:
        got = ledger.orders.get(oid, (0, 0))[0]
        if got != FAILED:
            report.violations.append(f"client told {oid} is FAILED; it is {order_status(got)}")
    return report


def wait_settled(
    urls: Mapping[str, str],
    placed: Iterable[str] = (),
    failed: Iterable[str] = (),
    timeout: float = 30.0,
) -> Report:
    """Check until the invariants hold (compensation is asynchronous) or timeout seconds pass."""
    placed, failed = list(placed), list(failed)
    started = time.monotonic()
    while True:
        report = check(read_ledger(urls), placed, failed)
        report.settle_seconds = time.monotonic() - started
        if report.ok or report.settle_seconds > timeout:
            return report
        time.sleep(0.25)
