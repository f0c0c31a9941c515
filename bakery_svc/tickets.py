"""The baker's work: a ticket per paid order, accepted or rejected, delivered;
and the answer to a customer's cancel request."""

from __future__ import annotations

import logging

from google.protobuf.message import Message

from bakery_svc import domain
from bakery_svc.domain import ACTIONS, TICKETS
from bakery_svc.models import Ticket
from bread.events.v1 import events_pb2 as ev
from servicekit.db import Database, one
from servicekit.errors import FailedPrecondition
from servicekit.inbox import Handlers
from servicekit.logs import order_id_var
from servicekit.outbox import Outbox
from servicekit.paging import Listing
from servicekit.sql import Statement, get_by, insert

log = logging.getLogger(__name__)


_INSERT = insert(Ticket)
_LISTING = Listing(Ticket, Ticket.created, Ticket.order_id)
_FILL = Statement(
    Ticket,
    lambda s: Ticket.update(item=s.item, qty=s.qty).where(Ticket.order_id == s.order_id),
)


class Tickets:
    def __init__(self, db: Database, outbox: Outbox) -> None:
        self.db = db
        self.outbox = outbox

    async def act(self, order_id: str, action: str, reason: str = "") -> Ticket:
        order_id_var.set(order_id)
        return await self.db.transaction(lambda: self._act(order_id, action, reason))

    def _act(self, order_id: str, action: str, reason: str) -> Ticket:
        status = ACTIONS[action]
        reason = reason[:200]
        if not TICKETS.move(Ticket.order_id, order_id, status, reason=reason):
            ticket = find_ticket(order_id)
            raise FailedPrecondition(
                f"cannot {action} an order whose ticket is {domain.status_name(ticket.status)}"
            )
        event: Message
        if status == domain.ACCEPTED:
            event = ev.BakeryAccepted(order_id=order_id)
        elif status == domain.REJECTED:
            event = ev.BakeryRejected(order_id=order_id, reason=reason)
        else:
            event = ev.OrderDelivered(order_id=order_id)
        self.outbox.record(event, order_id)
        return find_ticket(order_id)

    async def get(self, order_id: str) -> Ticket:
        return await self.db.run(find_ticket, order_id)

    async def list_page(self, status: int, page_size: int, page_token: str) -> tuple[list, str]:
        return await self.db.run(lambda: _LISTING.page(page_size, page_token, status=status))

    # Handlers run inside the inbox transaction.

    def handlers(self) -> Handlers:
        return {
            ev.OrderPlaced: self._on_order_placed,
            ev.OrderCancelRequested: self._on_cancel_requested,
        }

    @staticmethod
    def _on_order_placed(event: ev.OrderPlaced, _: object) -> None:
        facts = {"order_id": event.order_id, "item": event.item, "qty": event.qty}
        if not _FILL.rowcount(**facts):  # else the cancel request overtook it: it stays closed
            _INSERT.run(**Ticket(**facts, status=domain.OPEN).__data__)

    def _on_cancel_requested(self, event: ev.OrderCancelRequested, _: object) -> None:
        """Close the ticket if the bread has not left, else refuse; either way
        the order hears the answer."""
        order_id, reason = event.order_id, event.reason[:200]
        if not TICKETS.move(Ticket.order_id, order_id, domain.CLOSED, reason=reason):
            ticket = get_by(Ticket.order_id, order_id)
            if ticket is None:  # the request overtook OrderPlaced: nothing was baked yet
                Ticket.create(order_id=order_id, status=domain.CLOSED, reason=reason)
            elif ticket.status != domain.CLOSED:
                self._refuse_cancel(order_id, ticket)
                return
        self.outbox.record(ev.TicketClosed(order_id=order_id, reason=reason), order_id)

    def _refuse_cancel(self, order_id: str, ticket: Ticket) -> None:
        refusal = "cancel refused: " + (
            "the bread was already delivered"
            if ticket.status == domain.DELIVERED
            else f"the ticket is {domain.status_name(ticket.status)} already"
        )
        log.info("order %s: %s", order_id, refusal)
        self.outbox.record(ev.CancelRefused(order_id=order_id, reason=refusal), order_id)


def find_ticket(order_id: str) -> Ticket:
    return one(Ticket.order_id, order_id, f"no bakery ticket for order {order_id!r}")
