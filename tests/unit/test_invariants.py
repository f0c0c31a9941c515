"""bench.invariants, the money checker other tests rely on, on deliberately bad ledgers:
each broken invariant must be reported, and a good ledger must pass."""

from __future__ import annotations

import pathlib

import peewee
import pytest

from bench.invariants import (
    APPROVED,
    CANCELED,
    FAILED,
    PAID,
    PENDING,
    VOIDED,
    Ledger,
    check,
    read_ledger,
    wait_settled,
)
from bread.order.v1.order_pb2 import OrderStatus
from order_svc.models import Order
from pay_svc.models import Payment

CONFIRMED = OrderStatus.ORDER_STATUS_CONFIRMED


def good() -> Ledger:
    return Ledger(
        orders={"paid": (PAID, 25000), "voided": (FAILED, 3000), "refunded": (FAILED, 4500)},
        payments={
            "paid": [(APPROVED, 25000)],
            "voided": [(VOIDED, 3000)],
            "refunded": [(CANCELED, 4500)],
        },
    )


def test_a_settled_ledger_passes_and_is_counted() -> None:
    report = check(good(), placed=["paid"], failed=["voided", "refunded"])
    assert report.ok, report.violations
    assert report.orders == {"PAID": 1, "FAILED": 2}
    assert report.payments == {"APPROVED": 1, "VOIDED": 1, "CANCELED": 1}
    assert "invariants: OK" in report.summary()


@pytest.mark.parametrize(
    ("orders", "payments", "violation"),
    [
        ({"o": (PAID, 100)}, {"o": [(APPROVED, 100)] * 2}, "PAID order o has payments"),
        ({"o": (PAID, 100)}, {}, "PAID order o has payments []"),
        ({"o": (PAID, 100)}, {"o": [(CANCELED, 100)]}, "PAID order o has payments ['CANCELED']"),
        ({"o": (PAID, 100)}, {"o": [(VOIDED, 100)]}, "PAID order o has payments ['VOIDED']"),
        ({"o": (PAID, 100)}, {"o": [(APPROVED, 90)]}, "PAID order o charged 90, price 100"),
        (
            {"o": (FAILED, 100)},
            {"o": [(APPROVED, 100)]},
            "FAILED order o has payments ['APPROVED']",
        ),
        ({"o": (FAILED, 100)}, {}, "FAILED order o has payments []"),
        (
            {"o": (FAILED, 100)},
            {"o": [(VOIDED, 100), (CANCELED, 100)]},
            "FAILED order o has payments ['CANCELED', 'VOIDED']",
        ),
        ({"o": (PENDING, 100)}, {}, "order o is PENDING"),
        ({"o": (CONFIRMED, 100)}, {"o": [(APPROVED, 100)]}, "order o is CONFIRMED"),
        ({}, {"ghost": [(APPROVED, 100)]}, "payment for unknown order ghost"),
    ],
    ids=[
        "paid twice",
        "paid without payment",
        "paid but refunded",
        "paid but voided",
        "charged the wrong amount",
        "failed but still charged",
        "failed without void or refund",
        "failed with two rows",
        "left pending",
        "moved on during a load",
        "payment of an unknown order",
    ],
)
def test_each_broken_invariant_is_reported(
    orders: dict[str, tuple[int, int]], payments: dict[str, list[tuple[int, int]]], violation: str
) -> None:
    report = check(Ledger(orders, payments))
    assert not report.ok
    assert [v for v in report.violations if v.startswith(violation)], report.violations
    assert "VIOLATED" in report.summary()


def test_what_the_clients_were_told_must_agree() -> None:
    report = check(good(), placed=["paid", "voided", "nowhere"], failed=["refunded", "paid"])
    assert sorted(report.violations) == sorted(
        [
            "client told voided is placed; it is FAILED",
            "client told nowhere is placed; it is UNSPECIFIED",
            "client told paid is FAILED; it is PAID",
        ]
    )


def test_every_violation_is_reported_not_just_the_first() -> None:
    ledger = Ledger(
        orders={f"o{n}": (PENDING, 1) for n in range(15)},
        payments={"ghost": [(APPROVED, 1)]},
    )
    report = check(ledger)
    assert len(report.violations) == 16
    assert "... and 6 more" in report.summary(limit=10)


def test_the_ledger_is_read_from_the_services_own_databases(tmp_path: pathlib.Path) -> None:
    urls = {"order": f"sqlite:///{tmp_path}/order.db", "pay": f"sqlite:///{tmp_path}/pay.db"}
    for name, model in (("order", Order), ("pay", Payment)):
        database = peewee.SqliteDatabase(f"{tmp_path}/{name}.db")
        with database.bind_ctx([model]):
            database.create_tables([model])
            if model is Order:
                Order.create(
                    id="o1", customer_id="c", item="cake", qty=1, unit_price=9, price=9, status=PAID
                )
            else:
                Payment.create(id="p1", order_id="o1", customer_id="c", amount=9, status=APPROVED)
                Payment.create(id="p2", order_id="o2", customer_id="c", amount=9, status=VOIDED)
        database.close()
    ledger = read_ledger(urls)
    assert ledger.orders == {"o1": (PAID, 9)}
    assert ledger.payments == {"o1": [(APPROVED, 9)], "o2": [(VOIDED, 9)]}
    report = wait_settled(urls, placed=["o1"], timeout=0)
    assert report.violations == ["payment for unknown order o2"]
