"""Order use cases: place (with the synchronous payment), read, cancel, and
the order side of the saga."""

from __future__ import annotations

import asyncio
import logging
import uuid
from datetime import datetime, timedelta
from typing import Any

import grpc
import peewee

from bread.events.v1 import events_pb2 as ev
from order_svc import domain
from order_svc.domain import ORDERS
from order_svc.models import Order
from order_svc.pay_client import PayClient, PaymentFailed
from servicekit.clock import utcnow
from servicekit.db import Database, one
from servicekit.errors import (
    AlreadyExists,
    DeadlineExceeded,
    FailedPrecondition,
    Unavailable,
)
from servicekit.identity import Caller
from servicekit.inbox import Handlers
from servicekit.logs import order_id_var
from servicekit.outbox import Outbox
from servicekit.paging import Listing
from servicekit.sql import insert

log = logging.getLogger(__name__)

SWEEP_INTERVAL_SECONDS = 5.0


_INSERT = insert(Order)
_LISTING = Listing(Order, Order.created.desc(), Order.id)


class Orders:
    def __init__(self, db: Database, outbox: Outbox, menu: dict[str, int], pay: PayClient) -> None:
        self.db = db
        self.outbox = outbox
        self.menu = menu
        self.pay = pay

    async def place(self, item: str, qty: int, customer_id: str, request_id: str = "") -> Order:
        price = domain.price_order(self.menu, item, qty, customer_id)
        domain.check_request_id(request_id)
        if request_id and (earlier := await self._earlier(customer_id, request_id, item, qty)):
            return earlier
        order_id = str(uuid.uuid4())
        order_id_var.set(order_id)
        try:
            order = Order(
                id=order_id,
                customer_id=customer_id,
                item=item,
                qty=qty,
                unit_price=self.menu[item],
                price=price,
                status=domain.PENDING,
                request_id=request_id or None,
            )
            await self.db.run(lambda: _INSERT.run(**order.__data__))
        except peewee.IntegrityError:
            # A concurrent retry with the same request id stored its order first.
            if earlier := await self._earlier(customer_id, request_id, item, qty):
                return earlier
            raise
        try:
            payment = await self.pay.pay(order_id, customer_id, price)
        except PaymentFailed as failure:
            await self.db.transaction(self._fail, order, f"payment {failure}")
            raise _client_error(failure, order_id) from None
        if not await self.db.transaction(self._mark_paid, order, payment.id):
            raise Unavailable(f"payment outcome came too late; order {order_id} is FAILED")
        return order

    async def _earlier(
        self, customer_id: str, request_id: str, item: str, qty: int
    ) -> Order | None:
        """The order a retry of the same request placed already, if any."""
        earlier: Order | None = await self.db.run(
            lambda: Order.get_or_none(
                Order.customer_id == customer_id, Order.request_id == request_id
            )
        )
        if earlier is not None and (earlier.item, earlier.qty) != (item, qty):
            raise AlreadyExists(f"request_id {request_id!r} was used for a different order")
        return earlier

    def _mark_paid(self, order: Order, payment_id: str) -> bool:
        now = utcnow()
        if not ORDERS.move(Order.id, order.id, domain.PAID, payment_id=payment_id, updated=now):
            return False  # the sweeper failed it meanwhile; its refund follows
        order.status, order.payment_id, order.updated = domain.PAID, payment_id, now
        self.outbox.record(ev.OrderPlaced(**_facts(order), payment_id=payment_id), order.id)
        return True

    def _fail(self, order: Order, reason: str) -> None:
        """PENDING → FAILED, telling pay to refund or void whatever it holds.
        The request id is freed: retrying the request places a new order."""
        reason, now = reason[:200], utcnow()
        if ORDERS.move(
            Order.id, order.id, domain.FAILED, reason=reason, request_id=None, updated=now
        ):
            order.status, order.reason, order.updated = domain.FAILED, reason, now
            self.outbox.record(ev.OrderFailed(**_facts(order), reason=reason), order.id)

    async def get(self, order_id: str, who: Caller) -> Order:
        order_id_var.set(order_id)
        return await self.db.run(find_order, order_id, who)

    async def list_page(
        self, customer_id: str, page_size: int, page_token: str
    ) -> tuple[list, str]:
        return await self.db.run(
            lambda: _LISTING.page(page_size, page_token, customer_id=customer_id)
        )

    async def cancel(self, order_id: str, reason: str, who: Caller) -> Order:
        """Ask the bakery to cancel: the order is CANCELING until it answers."""
        order_id_var.set(order_id)
        return await self.db.transaction(self._cancel, order_id, reason, who)

    def _cancel(self, order_id: str, reason: str, who: Caller) -> Order:
        reason = (reason or "canceled by the customer")[:200]
        find_order(order_id, who)
        if ORDERS.move(Order.id, order_id, domain.CANCELING, reason=reason):
            self.outbox.record(ev.OrderCancelRequested(order_id=order_id, reason=reason), order_id)
        order = find_order(order_id)
        if order.status not in (domain.CANCELING, domain.CANCELED):  # asking twice is fine
            raise domain.refuse_cancel(order.status)
        return order

    async def sweep_stale_payments(self) -> None:
        """Fail orders whose payment call never finished (the process died).

        A PENDING order older than twice the pay timeout has no call in flight
        any more; failing it makes pay refund or void it.
        """
        while True:
            cutoff = utcnow() - timedelta(seconds=2 * self.pay.timeout)
            stale = await self.db.run(self._pending_before, cutoff)
            for order in stale:
                log.warning("failing order %s left PENDING by a crash", order.id)
                await self.db.transaction(self._fail, order, "payment outcome unknown")
            await asyncio.sleep(SWEEP_INTERVAL_SECONDS)

    @staticmethod
    def _pending_before(cutoff: datetime) -> list[Order]:
        return list(Order.select().where(Order.status == domain.PENDING, Order.created < cutoff))

    # The order side of the saga; handlers run inside the inbox transaction.

    def handlers(self) -> Handlers:
        return {
            ev.BakeryAccepted: lambda e, _: self._move(e.order_id, domain.CONFIRMED),
            ev.BakeryRejected: lambda e, _: self._move(
                e.order_id, domain.REJECTED, reason=e.reason or "rejected by the bakery"
            ),
            ev.OrderDelivered: lambda e, _: self._move(e.order_id, domain.DELIVERED),
            ev.TicketClosed: self._on_ticket_closed,
            ev.CancelRefused: self._on_cancel_refused,
        }

    @staticmethod
    def _move(order_id: str, status: int, **changes: Any) -> bool:
        moved = ORDERS.move(Order.id, order_id, status, **changes)
        if not moved:
            log.info("order %s does not move to %s", order_id, domain.status_name(status))
        return moved

    def _on_ticket_closed(self, event: ev.TicketClosed, _: object) -> None:
        """The bakery confirmed the cancel: the order is canceled, pay refunds."""
        if self._move(event.order_id, domain.CANCELED):
            order = find_order(event.order_id)
            self.outbox.record(ev.OrderCanceled(order_id=order.id, reason=order.reason), order.id)

    @staticmethod
    def _on_cancel_refused(event: ev.CancelRefused, _: object) -> None:
        """The bread had left: its delivery (or rejection) event ends the order;
        the customer is told why the cancel did not happen."""
        Order.update(reason=event.reason[:200]).where(
            Order.id == event.order_id, Order.status.in_([domain.CANCELING, domain.DELIVERED])
        ).execute()


def _client_error(failure: PaymentFailed, order_id: str) -> Exception:
    """What the client hears when the payment did not go through."""
    if failure.code == grpc.StatusCode.FAILED_PRECONDITION:
        return FailedPrecondition(
            f"payment declined ({failure.details}); order {order_id} is FAILED"
        )
    error = DeadlineExceeded if failure.code == grpc.StatusCode.DEADLINE_EXCEEDED else Unavailable
    return error(
        f"payment failed ({failure.code.name}); order {order_id} is FAILED"
        " and anything charged will be refunded"
    )


def _facts(order: Order) -> dict[str, Any]:
    """What OrderPlaced and OrderFailed tell about the order itself."""
    return {
        "order_id": order.id,
        "customer_id": order.customer_id,
        "item": order.item,
        "qty": order.qty,
        "price": order.price,
    }


def find_order(order_id: str, who: Caller | None = None) -> Order:
    return one(Order.id, order_id, f"order {order_id!r} not found", who)
