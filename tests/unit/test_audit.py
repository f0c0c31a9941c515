"""The audit every fault test and `make chaos` rely on (ops/audit.py), on deliberately bad
data: each broken rule must be reported, and a consistent system must pass."""

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


def page(row: OrderRow, payment: str = "APPROVED", bakery: str = "OPEN") -> MypageRow:
    return MypageRow(
        row.customer_id, row.item, row.qty, row.price, row.status, row.payment_id, payment, bakery
    )


def consistent() -> Snapshot:
    """One order at each end, with everything that goes with it."""
    rows = {
        "paid": (order("PAID"), "APPROVED", "OPEN"),
        "delivered": (order("DELIVERED"), "APPROVED", "DELIVERED"),
        "rejected": (order("REJECTED"), "CANCELED", "REJECTED"),
        "canceled": (order("CANCELED"), "CANCELED", "CLOSED"),
    }
    return Snapshot(
        orders={oid: row for oid, (row, _, _) in rows.items()},
        payments={oid: [PaymentRow("p", pay, 100)] for oid, (_, pay, _) in rows.items()},
        tickets={oid: ticket for oid, (_, _, ticket) in rows.items()},
        mypages={oid: page(row, pay, ticket) for oid, (row, pay, ticket) in rows.items()},
    )


def test_a_consistent_system_passes_and_is_counted() -> None:
    report = check(consistent(), Expectations(placed=["paid", "delivered"]))
    assert report.ok, report.violations
    assert report.orders == {"PAID": 1, "DELIVERED": 1, "REJECTED": 1, "CANCELED": 1}
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


def test_the_money_view_reads_the_services_own_databases(tmp_path: pathlib.Path) -> None:
    urls = {"order": f"sqlite:///{tmp_path}/order.db", "pay": f"sqlite:///{tmp_path}/pay.db"}
    paid = OrderStatus.ORDER_STATUS_PAID
    for name, model in (("order", Order), ("pay", Payment)):
        database = peewee.SqliteDatabase(f"{tmp_path}/{name}.db")
        with database.bind_ctx([model]):
            database.create_tables([model])
            if model is Order:
                Order.create(
                    id="o1", customer_id="c", item="cake", qty=1, unit_price=9, price=9, status=paid
                )
            else:
                approved = PaymentStatus.PAYMENT_STATUS_APPROVED
                Payment.create(id="p1", order_id="o1", customer_id="c", amount=9, status=approved)
                Payment.create(id="p2", order_id="o2", customer_id="c", amount=9, status=approved)
        database.close()
    assert check_money(urls, placed=["o1"]).violations == [
        "order o2: payment for an order that order does not know"
    ]
    assert not wait_settled(urls, placed=["o1"], timeout=0).ok
