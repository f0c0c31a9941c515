"""The audit every fault test and `make chaos` rely on (ops/audit.py), and its money view that
the load scenarios rely on (harness/invariants.py), on deliberately bad data: each broken rule
must be reported, and a consistent system must pass."""

from __future__ import annotations

import pathlib

import peewee
import pytest

from bread.order.v1.order_pb2 import OrderStatus
from bread.pay.v1.pay_pb2 import PaymentStatus
from harness.invariants import check_money, wait_settled
from ops.audit import Expectations, MypageRow, OrderRow, PaymentRow, Snapshot, check
from order_svc.models import Order
from pay_svc.models import Payment


def order(status: str, price: int = 100, payment_id: str = "p") -> OrderRow:
    return OrderRow("c", "cake", 1, price, status, payment_id)


def page(row: OrderRow, payment: str = "APPROVED", bakery: str | None = "OPEN") -> MypageRow:
    return MypageRow(
        row.customer_id,
        row.item,
        row.qty,
        row.price,
        row.status,
        row.payment_id,
        payment,
        bakery or "",
    )


def consistent() -> Snapshot:
    """One order at each end, with everything that goes with it."""
    rows = {
        "paid": (order("PAID"), "APPROVED", "OPEN"),
        "delivered": (order("DELIVERED"), "APPROVED", "DELIVERED"),
        "rejected": (order("REJECTED"), "CANCELED", "REJECTED"),
        "canceled": (order("CANCELED"), "CANCELED", "CLOSED"),
        "failed": (order("FAILED", payment_id=""), "VOIDED", None),
    }
    return Snapshot(
        orders={oid: row for oid, (row, _, _) in rows.items()},
        payments={oid: [PaymentRow("p", pay, 100)] for oid, (_, pay, _) in rows.items()},
        tickets={oid: ticket for oid, (_, _, ticket) in rows.items() if ticket},
        # Mypage never hears of a void: pay tells nobody.
        mypages={
            oid: page(row, "" if pay == "VOIDED" else pay, ticket)
            for oid, (row, pay, ticket) in rows.items()
        },
    )


def test_a_consistent_system_passes_and_is_counted() -> None:
    report = check(consistent(), Expectations(placed=["paid", "delivered"]))
    assert report.ok, report.violations
    assert report.orders == {"PAID": 1, "DELIVERED": 1, "REJECTED": 1, "CANCELED": 1, "FAILED": 1}
    assert "invariants: OK" in report.summary()


def broken(oid: str, **changes: object) -> Snapshot:
    snapshot = consistent()
    for store, value in changes.items():
        getattr(snapshot, store)[oid] = value
    return snapshot


@pytest.mark.parametrize(
    ("snapshot", "violation"),
    [
        (broken("paid", payments=[PaymentRow("p", "APPROVED", 100)] * 2), "2 payments"),
        (broken("paid", payments=[]), "PAID with no payment"),
        (broken("paid", payments=[PaymentRow("p", "APPROVED", 90)]), "charged 90, price 100"),
        (broken("delivered", payments=[PaymentRow("p", "CANCELED", 100)]), "refunded and deliv"),
        (broken("canceled", tickets="DELIVERED"), "canceled and delivered"),
        (broken("canceled", payments=[PaymentRow("p", "APPROVED", 100)]), "payment APPROVED"),
        (broken("rejected", tickets=None), "REJECTED with ticket none"),
        (broken("paid", orders=order("PENDING")), "still PENDING"),
        (broken("paid", orders=order("CANCELING")), "still CANCELING"),
        (broken("paid", payments=[PaymentRow("other", "APPROVED", 100)]), "order names payment"),
        (broken("ghost", payments=[PaymentRow("p", "APPROVED", 1)]), "payment for an order"),
        (broken("delivered", mypages=page(order("CONFIRMED"))), "Mypage says"),
        (broken("paid", mypages=None), "with no Mypage row"),
        (broken("paid", mypages=page(order("PAID", payment_id="q"))), "Mypage payment q"),
        (broken("paid", mypages=page(order("PAID"), payment="CANCELED")), "Mypage payment stat"),
        (broken("delivered", mypages=page(order("DELIVERED"))), "Mypage bakery status OPEN"),
        (broken("failed", payments=[PaymentRow("p", "APPROVED", 100)]), "FAILED with payment APP"),
        (broken("failed", tickets="OPEN"), "FAILED with ticket OPEN"),
        (broken("paid", orders=order("status 42")), "unknown status status 42"),
        (broken("ghost", tickets="OPEN"), "ticket for an order"),
        (broken("ghost", mypages=page(order("PAID"))), "Mypage row for an order"),
    ],
    ids=[
        "paid twice",
        "paid without payment",
        "charged the wrong amount",
        "refunded and delivered",
        "canceled and delivered",
        "canceled but still charged",
        "rejected without a ticket",
        "left pending",
        "left canceling",
        "another payment",
        "payment of an unknown order",
        "Mypage behind",
        "no Mypage row",
        "Mypage names another payment",
        "Mypage payment status behind",
        "Mypage bakery status behind",
        "failed but still charged",
        "failed with an open ticket",
        "a status order does not have",
        "ticket of an unknown order",
        "Mypage row of an unknown order",
    ],
)
def test_each_broken_rule_is_reported(snapshot: Snapshot, violation: str) -> None:
    for store in ("tickets", "mypages"):  # None written above means "delete"
        rows = getattr(snapshot, store)
        for oid in [oid for oid, value in rows.items() if value is None]:
            del rows[oid]
    report = check(snapshot)
    assert not report.ok
    assert any(violation in v for v in report.violations), report.violations
    assert "VIOLATED" in report.summary()


def test_what_the_callers_know_must_agree() -> None:
    report = check(
        consistent(),
        Expectations(ends={"delivered": {"CANCELED"}}, placed=["nowhere"], failed=["paid"]),
    )
    assert sorted(report.violations) == [
        "order delivered: driven to CANCELED, it is DELIVERED",
        "order nowhere: client told it is placed; it is missing",
        "order paid: client told it is FAILED; it is PAID",
    ]


def test_every_violation_is_reported_not_just_the_first() -> None:
    snapshot = Snapshot(orders={f"o{n}": order("PENDING") for n in range(15)})
    report = check(snapshot)
    assert len(report.violations) == 15
    assert "... and 5 more" in report.summary(limit=10)


def money_databases(
    tmp_path: pathlib.Path, orders: dict[str, str], payments: dict[str, tuple[str, int]]
) -> dict[str, str]:
    """order's and pay's SQLite files after a load: orders by id -> status, each at price 9;
    payments by order id -> (status, amount)."""
    urls = {"order": f"sqlite:///{tmp_path}/order.db", "pay": f"sqlite:///{tmp_path}/pay.db"}
    order_db = peewee.SqliteDatabase(f"{tmp_path}/order.db")
    with order_db, order_db.bind_ctx([Order]):  # opened, committed and closed
        Order.create_table()
        for oid, status in orders.items():
            Order.create(
                id=oid,
                customer_id="c",
                item="cake",
                qty=1,
                unit_price=9,
                price=9,
                status=OrderStatus.Value(f"ORDER_STATUS_{status}"),
            )
    pay_db = peewee.SqliteDatabase(f"{tmp_path}/pay.db")
    with pay_db, pay_db.bind_ctx([Payment]):  # opened, committed and closed
        Payment.create_table()
        for oid, (status, amount) in payments.items():
            Payment.create(
                id=f"p-{oid}",
                order_id=oid,
                customer_id="c",
                amount=amount,
                status=PaymentStatus.Value(f"PAYMENT_STATUS_{status}"),
            )
    return urls


def test_the_money_view_of_a_settled_load_passes(tmp_path: pathlib.Path) -> None:
    urls = money_databases(
        tmp_path,
        orders={"o1": "PAID", "o2": "FAILED", "o3": "FAILED"},
        payments={"o1": ("APPROVED", 9), "o2": ("VOIDED", 9), "o3": ("CANCELED", 9)},
    )
    report = check_money(urls, placed=["o1"], failed=["o2", "o3"])
    assert report.ok, report.violations
    assert report.orders == {"PAID": 1, "FAILED": 2}
    assert wait_settled(urls, placed=["o1"], failed=["o2", "o3"], timeout=0).ok


@pytest.mark.parametrize(
    ("orders", "payments", "told", "violation"),
    [
        ({"o1": "PAID"}, {}, {}, "order o1: PAID with no payment"),
        ({"o1": "PAID"}, {"o1": ("APPROVED", 8)}, {}, "order o1: charged 8, price 9"),
        ({"o1": "PAID"}, {"o1": ("CANCELED", 9)}, {}, "order o1: PAID with payment CANCELED"),
        ({"o1": "FAILED"}, {"o1": ("APPROVED", 9)}, {}, "order o1: FAILED with payment APPROVED"),
        ({"o1": "FAILED"}, {}, {}, "order o1: FAILED with no payment"),
        ({"o1": "PENDING"}, {}, {}, "order o1: still PENDING"),
        ({"o1": "CONFIRMED"}, {"o1": ("APPROVED", 9)}, {}, "order o1: is CONFIRMED"),
        ({}, {"o2": ("APPROVED", 9)}, {}, "order o2: payment for an order that order does not"),
        (
            {"o1": "FAILED"},
            {"o1": ("VOIDED", 9)},
            {"placed": ["o1"]},
            "order o1: client told it is placed; it is FAILED",
        ),
        (
            {"o1": "PAID"},
            {"o1": ("APPROVED", 9)},
            {"failed": ["o1"]},
            "order o1: client told it is FAILED; it is PAID",
        ),
        ({}, {}, {"placed": ["o1"]}, "order o1: client told it is placed; it is missing"),
    ],
    ids=[
        "paid without a payment",
        "charged the wrong amount",
        "paid but refunded",
        "failed but still charged",
        "failed with nothing voided",
        "left pending",
        "a baker acted during a load without bakers",
        "payment of an unknown order",
        "told placed, failed",
        "told failed, paid",
        "told placed, never stored",
    ],
)
def test_the_money_view_reports_each_broken_rule(
    tmp_path: pathlib.Path,
    orders: dict[str, str],
    payments: dict[str, tuple[str, int]],
    told: dict[str, list[str]],
    violation: str,
) -> None:
    urls = money_databases(tmp_path, orders, payments)
    report = check_money(urls, **told)
    assert not report.ok
    assert any(v.startswith(violation) for v in report.violations), report.violations
    assert not wait_settled(urls, timeout=0, **told).ok
