"""Translation between the bakery's models and its protobuf messages, for the servicer."""

from __future__ import annotations

from bakery_svc.models import Ticket
from bread.bakery.v1 import bakery_pb2
from servicekit.clock import to_timestamp


def ticket_to_proto(ticket: Ticket) -> bakery_pb2.Ticket:
    return bakery_pb2.Ticket(
        order_id=ticket.order_id,
        item=ticket.item,
        qty=ticket.qty,
        status=bakery_pb2.TicketStatus.ValueType(ticket.status),
        reason=ticket.reason,
        create_time=to_timestamp(ticket.created),
        update_time=to_timestamp(ticket.updated),
    )
