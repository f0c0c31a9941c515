"""Payment use cases: charge once per order, refund on the saga's say-so."""

from __future__ import annotations

import logging
import uuid

import peewee

from bread.events.v1 import events_pb2
from pay_svc.domain import APPROVED, CANCELED, PAYMENTS, VOIDED
from pay_svc.models import Payment
from servicekit.db import Database, one
from servicekit.errors import FailedPrecondition, InvalidArgument
from servicekit.identity import Caller
from servicekit.inbox import Handlers
from servicekit.logs import order_id_var
from servicekit.outbox import Outbox
from servicekit.paging import Listing
from servicekit.sql import get_by, insert

log = logging.getLogger(__name__)


_INSERT = insert(Payment)
_LISTING = Listing(Payment, Payment.created.desc(), Payment.id)


class Payments:
    def __init__(self, db: Database, outbox: Outbox) -> None:
        self.db = db
        self.outbox = outbox

    async def pay(self, order_id: str, customer_id: str, amount: int) -> Payment:
        order_id_var.set(order_id)
        if not order_id:
            raise InvalidArgument("order_id is required")
        if amount <= 0:
            raise InvalidArgument("amount must be positive")
        try:
            payment = await self.db.transaction(lambda: self._charge(order_id, customer_id, amount))
        except peewee.IntegrityError:
            # A concurrent retry of the same Pay won the insert: return its payment.
            payment = await self.db.run(lambda: Payment.get(Payment.order_id == order_id))
        if payment.status == VOIDED:
            raise FailedPrecondition(f"order {order_id} failed before it was paid")
        return payment

    def _charge(self, order_id: str, customer_id: str, amount: int) -> Payment:
        existing = get_by(Payment.order_id, order_id)
        if existing is not None:
            return existing
        payment = Payment(
            id=str(uuid.uuid4()),
            order_id=order_id,
            customer_id=customer_id,
            amount=amount,
            status=APPROVED,
        )
        _INSERT.run(**payment.__data__)
        self.outbox.record(
            events_pb2.PaymentApproved(
                payment_id=payment.id, order_id=order_id, customer_id=customer_id, amount=amount
            ),
            order_id,
        )
        return payment

    async def cancel(self, payment_id: str, reason: str) -> Payment:
        def cancel() -> Payment:
            self._refund(find_payment(payment_id), reason or "canceled")
            return find_payment(payment_id)

        return await self.db.transaction(cancel)

    def _refund(self, payment: Payment, reason: str) -> None:
        """APPROVED → CANCELED; whoever moves it publishes the one PaymentCanceled
        (refunded or voided already: nothing to do)."""
        reason = reason[:200]
        if PAYMENTS.move(Payment.id, payment.id, CANCELED, reason=reason):
            self.outbox.record(
                events_pb2.PaymentCanceled(
                    payment_id=payment.id,
                    order_id=payment.order_id,
                    amount=payment.amount,
                    reason=reason,
                ),
                payment.order_id,
            )

    async def get(self, payment_id: str, who: Caller) -> Payment:
        return await self.db.run(find_payment, payment_id, who)

    async def list_page(
        self, customer_id: str, order_id: str, page_size: int, page_token: str
    ) -> tuple[list, str]:
        """A page of payments, newest first; customer_id "" lists everyone's."""
        return await self.db.run(
            lambda: _LISTING.page(page_size, page_token, customer_id=customer_id, order_id=order_id)
        )

    # Compensations; handlers run inside the inbox transaction.

    def handlers(self) -> Handlers:
        return {
            events_pb2.OrderCanceled: lambda e, _: self._compensate(e.order_id, e.reason),
            events_pb2.BakeryRejected: lambda e, _: self._compensate(
                e.order_id, e.reason or "rejected by the bakery"
            ),
            events_pb2.OrderFailed: self._on_order_failed,
        }

    def _compensate(self, order_id: str, reason: str) -> None:
        payment = get_by(Payment.order_id, order_id)
        if payment is None:
            log.warning("nothing to refund for order %s", order_id)
            return
        self._refund(payment, reason)

    def _on_order_failed(self, event: events_pb2.OrderFailed, _: object) -> None:
        payment = get_by(Payment.order_id, event.order_id)
        if payment is not None:
            self._refund(payment, "order failed: " + event.reason)
            return
        # Not charged (yet): a void row makes a late Pay for it refuse.
        void = Payment(
            id=str(uuid.uuid4()),
            order_id=event.order_id,
            customer_id=event.customer_id,
            amount=event.price,
            status=VOIDED,
            reason="order failed before payment",
        )
        _INSERT.run(**void.__data__)


def find_payment(payment_id: str, who: Caller | None = None) -> Payment:
    return one(Payment.id, payment_id, f"payment {payment_id!r} not found", who)
