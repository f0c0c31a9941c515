"""The baker's work: a ticket per paid order, accepted or rejected, delivered."""

from __future__ import annotations

import logging

from google.protobuf.message import Message

from bakery_svc.models import Ticket
from bread.bakery.v1 import bakery_pb2
from bread.events.v1 import events_pb2
from servicekit.clock import to_timestamp, utcnow
from servicekit.db import Database, one
from servicekit.errors import FailedPrecondition
from servicekit.inbox import Handler
from servicekit.logs import order_id_var
from servicekit.outbox import Outbox
from servicekit.paging import page

log = logging.getLogger(__name__)

Status = bakery_pb2.TicketStatus
OPEN = Status.TICKET_STATUS_OPEN
ACCEPTED = Status.TICKET_STATUS_ACCEPTED
REJECTED = Status.TICKET_STATUS_REJECTED
DELIVERED = Status.TICKET_STATUS_DELIVERED
CLOSED = Status.TICKET_STATUS_CLOSED

# A baker's action: the status it needs, the status it leaves.
ACTIONS = {
    "accept": (frozenset({OPEN}), ACCEPTED),
    "reject": (frozenset({OPEN}), REJECTED),
    "deliver": (frozenset({ACCEPTED}), DELIVERED),
}


def status_name(status: int) -> str:
    return Status.Name(status).removeprefix("TICKET_STATUS_")  # type: ignore[arg-type]


class Tickets:
    def __init__(self, db: Database, outbox: Outbox) -> None:
        self.db = db
        self.outbox = outbox

    async def act(self, order_id: str, action: str, reason: str = "") -> Ticket:
        order_id_var.set(order_id)
        return await self.db.transaction(lambda: self._act(order_id, action, reason))

    def _act(self, order_id: str, action: str, reason: str) -> Ticket:
        ticket = find_ticket(order_id)
        allowed_from, new_status = ACTIONS[action]
        if ticket.status not in allowed_from:
            raise FailedPrecondition(
                f"cannot {action} an order whose ticket is {status_name(ticket.status)}"
            )
        ticket.status = new_status
        ticket.reason = reason[:200]
        ticket.updated = utcnow()
        ticket.save()
        event: Message
        if new_status == ACCEPTED:
            event = events_pb2.BakeryAccepted(order_id=order_id)
        elif new_status == REJECTED:
            event = events_pb2.BakeryRejected(order_id=order_id, reason=ticket.reason)
        else:
            event = events_pb2.OrderDelivered(order_id=order_id)
        self.outbox.record(event, order_id)
        return ticket

    async def get(self, order_id: str) -> Ticket:
        return await self.db.run(find_ticket, order_id)

    async def list_page(self, status: int, page_size: int, page_token: str) -> tuple[list, str]:
        query = Ticket.select().order_by(Ticket.created, Ticket.order_id)
        if status:
            query = query.where(Ticket.status == status)
        return await self.db.run(lambda: page(query, page_size, page_token))

    # Handlers run inside the inbox transaction.

    def handlers(self) -> dict[str, Handler]:
        return {
            "bread.events.v1.OrderPlaced": self._on_order_placed,
            "bread.events.v1.OrderCanceled": self._on_order_canceled,
        }

    def _on_order_placed(self, event: events_pb2.OrderPlaced, _: object) -> None:
        ticket = Ticket.get_or_none(Ticket.order_id == event.order_id)
        if ticket is not None:  # the cancellation overtook it: stay closed
            ticket.item, ticket.qty = event.item, event.qty
            ticket.save()
            return
        Ticket.create(order_id=event.order_id, item=event.item, qty=event.qty, status=OPEN)

    def _on_order_canceled(self, event: events_pb2.OrderCanceled, _: object) -> None:
        ticket = Ticket.get_or_none(Ticket.order_id == event.order_id)
        if ticket is None:
            Ticket.create(order_id=event.order_id, status=CLOSED, reason=event.reason)
        elif ticket.status in (OPEN, ACCEPTED):
            ticket.status = CLOSED
            ticket.reason = event.reason[:200]
            ticket.updated = utcnow()
            ticket.save()
        else:
            log.info("ticket %s stays %s", event.order_id, status_name(ticket.status))


def find_ticket(order_id: str) -> Ticket:
    return one(Ticket, Ticket.order_id == order_id, f"no bakery ticket for order {order_id!r}")


def to_proto(ticket: Ticket) -> bakery_pb2.Ticket:
    return bakery_pb2.Ticket(
        order_id=ticket.order_id,
        item=ticket.item,
        qty=ticket.qty,
        status=Status.ValueType(ticket.status),
        reason=ticket.reason,
        create_time=to_timestamp(ticket.created),
        update_time=to_timestamp(ticket.updated),
    )
