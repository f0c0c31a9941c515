"""Builds Mypage rows from domain events (CQRS read side).

Events may arrive in any order and more than once: statuses only move forward
(domain.py). Replicas may project events of one order at the same time, so the
row is read with a row lock where the database has them.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from bread.events.v1 import events_pb2 as ev
from customer_svc.domain import BAKERY_RANK, ORDER_RANK, PAYMENT_RANK, advance
from customer_svc.models import Mypage
from servicekit.db import Database, locked, one
from servicekit.events import ReceivedEvent
from servicekit.identity import Caller
from servicekit.inbox import Handler, Handlers
from servicekit.paging import Listing
from servicekit.sql import Statement, insert

_FIELDS = [f for f in Mypage._meta.sorted_fields if f is not Mypage.order_id]
_READ = Statement(Mypage, lambda s: locked(Mypage.select().where(Mypage.order_id == s.order_id)))
_INSERT = insert(Mypage)
_LISTING = Listing(Mypage, Mypage.created.desc(), Mypage.order_id)
_UPDATE = Statement(
    Mypage,
    lambda s: Mypage.update({f: getattr(s, f.name) for f in _FIELDS}).where(
        Mypage.order_id == s.order_id
    ),
)


def project(
    order_id: str,
    at: datetime,
    order_status: str = "",
    payment_status: str = "",
    bakery_status: str = "",
    **facts: Any,
) -> None:
    """Merge what one event tells about an order into its row."""
    at = at.replace(tzinfo=None)
    row = _READ.first(order_id=order_id)
    is_new = row is None
    if row is None:
        row = {f.name: f.default for f in _FIELDS} | {"created": at, "updated": at}
        row["order_id"] = order_id
    reason = facts.pop("reason", "")
    for name, value in facts.items():
        if value:
            row[name] = value
    if reason and _tells_why(row["order_status"], order_status):
        row["reason"] = reason
    row["order_status"] = advance(row["order_status"], order_status, ORDER_RANK)
    row["payment_status"] = advance(row["payment_status"], payment_status, PAYMENT_RANK)
    row["bakery_status"] = advance(row["bakery_status"], bakery_status, BAKERY_RANK)
    row["created"] = min(row["created"], at)
    row["updated"] = max(row["updated"], at)
    (_INSERT if is_new else _UPDATE).run(**row)


def _tells_why(current: str, new: str) -> bool:
    """Whether an event's reason is the row's, whatever order events arrive in: the reason
    of the status the order ends in (a rejection's, a cancel's, a failure's); a refused
    cancel's (no status of its own) while the order may yet be, or is, delivered."""
    if new:
        return advance(current, new, ORDER_RANK) == new
    return current in ("", "PAID", "CONFIRMED", "CANCELING", "DELIVERED")


def _order_facts(e: ev.OrderPlaced | ev.OrderFailed) -> dict[str, Any]:
    return {"customer_id": e.customer_id, "item": e.item, "qty": e.qty, "price": e.price}


def handlers() -> Handlers:
    def on(status_of: Any) -> Handler:
        def handle(e: Any, meta: ReceivedEvent) -> None:
            project(e.order_id, meta.published, **status_of(e))

        return handle

    return {
        ev.OrderPlaced: on(
            lambda e: {
                **_order_facts(e),
                "payment_id": e.payment_id,
                "order_status": "PAID",
                "bakery_status": "OPEN",
            }
        ),
        ev.OrderFailed: on(
            lambda e: {**_order_facts(e), "reason": e.reason, "order_status": "FAILED"}
        ),
        # The request's reason is the order's once canceled (OrderCanceled carries it);
        # until then a refusal's may yet be the one to show.
        ev.OrderCancelRequested: on(lambda e: {"order_status": "CANCELING"}),
        ev.TicketClosed: on(lambda e: {"bakery_status": "CLOSED"}),
        ev.CancelRefused: on(lambda e: {"reason": e.reason}),
        ev.OrderCanceled: on(lambda e: {"reason": e.reason, "order_status": "CANCELED"}),
        ev.PaymentApproved: on(
            lambda e: {
                "customer_id": e.customer_id,
                "payment_id": e.payment_id,
                "payment_status": "APPROVED",
            }
        ),
        ev.PaymentCanceled: on(
            lambda e: {"payment_id": e.payment_id, "payment_status": "CANCELED"}
        ),
        ev.BakeryAccepted: on(lambda e: {"order_status": "CONFIRMED", "bakery_status": "ACCEPTED"}),
        ev.BakeryRejected: on(
            lambda e: {"reason": e.reason, "order_status": "REJECTED", "bakery_status": "REJECTED"}
        ),
        ev.OrderDelivered: on(
            lambda e: {"order_status": "DELIVERED", "bakery_status": "DELIVERED"}
        ),
    }


class Mypages:
    def __init__(self, db: Database) -> None:
        self.db = db

    async def get(self, order_id: str, who: Caller) -> Mypage:
        missing = f"no Mypage for order {order_id!r} (yet)"
        return await self.db.run(one, Mypage.order_id, order_id, missing, who)

    async def list_page(
        self, customer_id: str, page_size: int, page_token: str
    ) -> tuple[list, str]:
        return await self.db.run(
            lambda: _LISTING.page(page_size, page_token, customer_id=customer_id)
        )
