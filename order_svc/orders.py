"""Order use cases: place (with the synchronous payment), read, cancel, and
the order side of the saga."""

from __future__ import annotations

import asyncio
import logging
import uuid
from datetime import datetime, timedelta
from typing import Any

import grpc

from bread.events.v1 import events_pb2
from bread.order.v1 import order_pb2
from order_svc import domain
from order_svc.models import Order
from order_svc.pay_client import PayClient, PaymentFailed
from servicekit.clock import to_timestamp, utcnow
from servicekit.db import Database, one
from servicekit.errors import DeadlineExceeded, Unavailable
from servicekit.inbox import Handler
from servicekit.logs import order_id_var
from servicekit.outbox import Outbox
from servicekit.paging import page

log = logging.getLogger(__name__)

SWEEP_INTERVAL_SECONDS = 5.0


class Orders:
    def __init__(self, db: Database, outbox: Outbox, menu: dict[str, int], pay: PayClient) -> None:
        self.db = db
        self.outbox = outbox
        self.menu = menu
        self.pay = pay

    async def place(self, item: str, qty: int, customer_id: str) -> Order:
        price = domain.price_order(self.menu, item, qty, customer_id)
        order_id = str(uuid.uuid4())
        order_id_var.set(order_id)
        order = await self.db.run(
            lambda: Order.create(
                id=order_id,
                customer_id=customer_id,
                item=item,
                qty=qty,
                unit_price=self.menu[item],
                price=price,
                status=domain.PENDING,
            )
        )
        try:
            payment = await self.pay.pay(order_id, customer_id, price)
        except PaymentFailed as failure:
            await self.db.transaction(self._fail, order, f"payment {failure}")
            error = (
                DeadlineExceeded
                if failure.code == grpc.StatusCode.DEADLINE_EXCEEDED
                else Unavailable
            )
            raise error(
                f"payment failed ({failure.code.name}); order {order_id} is FAILED"
                " and anything charged will be refunded"
            ) from None
        if not await self.db.transaction(self._mark_paid, order, payment.id):
            raise Unavailable(f"payment outcome came too late; order {order_id} is FAILED")
        return order

    @staticmethod
    def _leave_pending(order: Order, **changes: object) -> bool:
        """Update a PENDING order, here and in the database, unless it left PENDING already
        (a sweeper on any replica may have failed it)."""
        changes["updated"] = utcnow()
        query = Order.update(**changes).where(Order.id == order.id, Order.status == domain.PENDING)
        if not query.execute():
            return False
        for name, value in changes.items():
            setattr(order, name, value)
        return True

    def _mark_paid(self, order: Order, payment_id: str) -> bool:
        if not self._leave_pending(order, status=domain.PAID, payment_id=payment_id):
            return False  # the sweeper failed it meanwhile; its refund follows
        self.outbox.record(events_pb2.OrderPlaced(**_facts(order), payment_id=payment_id), order.id)
        return True

    def _fail(self, order: Order, reason: str) -> None:
        """PENDING → FAILED, telling pay to refund or void whatever it holds."""
        if self._leave_pending(order, status=domain.FAILED, reason=reason[:200]):
            self.outbox.record(
                events_pb2.OrderFailed(**_facts(order), reason=order.reason), order.id
            )

    async def get(self, order_id: str) -> Order:
        order_id_var.set(order_id)
        return await self.db.run(find_order, order_id)

    async def list_page(
        self, customer_id: str, page_size: int, page_token: str
    ) -> tuple[list, str]:
        query = Order.select().order_by(Order.created.desc(), Order.id)
        if customer_id:
            query = query.where(Order.customer_id == customer_id)
        return await self.db.run(lambda: page(query, page_size, page_token))

    async def cancel(self, order_id: str, reason: str) -> Order:
        order_id_var.set(order_id)
        return await self.db.transaction(self._cancel, order_id, reason)

    def _cancel(self, order_id: str, reason: str) -> Order:
        order = find_order(order_id)
        if order.status == domain.CANCELED:
            return order  # canceling twice is not an error
        domain.check_cancel(order.status)
        order.status = domain.CANCELED
        order.reason = (reason or "canceled by the customer")[:200]
        order.updated = utcnow()
        order.save()
        self.outbox.record(
            events_pb2.OrderCanceled(order_id=order.id, reason=order.reason), order.id
        )
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

    def handlers(self) -> dict[str, Handler]:
        return {
            "bread.events.v1.BakeryAccepted": lambda e, _: self._move(e.order_id, domain.CONFIRMED),
            "bread.events.v1.BakeryRejected": lambda e, _: self._move(
                e.order_id, domain.REJECTED, e.reason or "rejected by the bakery"
            ),
            "bread.events.v1.OrderDelivered": lambda e, _: self._move(e.order_id, domain.DELIVERED),
        }

    def _move(self, order_id: str, status: int, reason: str = "") -> None:
        order = Order.get_or_none(Order.id == order_id)
        if order is None:
            log.warning("event for unknown order %s", order_id)
            return
        if not domain.can_move(order.status, status):
            log.info(
                "order %s stays %s (not %s)",
                order_id,
                domain.status_name(order.status),
                domain.status_name(status),
            )
            return
        order.status = status
        order.reason = reason[:200] or order.reason
        order.updated = utcnow()
        order.save()


def _facts(order: Order) -> dict[str, Any]:
    """What OrderPlaced and OrderFailed tell about the order itself."""
    return {
        "order_id": order.id,
        "customer_id": order.customer_id,
        "item": order.item,
        "qty": order.qty,
        "price": order.price,
    }


def find_order(order_id: str) -> Order:
    return one(Order, Order.id == order_id, f"order {order_id!r} not found")


def to_proto(order: Order) -> order_pb2.Order:
    return order_pb2.Order(
        id=order.id,
        customer_id=order.customer_id,
        item=order.item,
        qty=order.qty,
        unit_price=order.unit_price,
        price=order.price,
        status=order_pb2.OrderStatus.ValueType(order.status),
        payment_id=order.payment_id,
        reason=order.reason,
        create_time=to_timestamp(order.created),
        update_time=to_timestamp(order.updated),
    )
