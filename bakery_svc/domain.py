"""Ticket rules: the baker's actions, and how a cancel request is answered.

The bakery decides whether bread left: a cancel request closes a ticket that
is still OPEN or ACCEPTED; a DELIVERED (or REJECTED) ticket refuses it.
"""

from __future__ import annotations

from bread.bakery.v1.bakery_pb2 import TicketStatus
from servicekit.state import StateMachine

OPEN = TicketStatus.TICKET_STATUS_OPEN
ACCEPTED = TicketStatus.TICKET_STATUS_ACCEPTED
REJECTED = TicketStatus.TICKET_STATUS_REJECTED
DELIVERED = TicketStatus.TICKET_STATUS_DELIVERED
CLOSED = TicketStatus.TICKET_STATUS_CLOSED

TICKETS = StateMachine(
    {
        OPEN: frozenset({ACCEPTED, REJECTED, CLOSED}),
        ACCEPTED: frozenset({DELIVERED, CLOSED}),
        REJECTED: frozenset(),
        DELIVERED: frozenset(),
        CLOSED: frozenset(),
    }
)

# A baker's action and the status it leaves the ticket in.
ACTIONS = {"accept": ACCEPTED, "reject": REJECTED, "deliver": DELIVERED}


def status_name(status: int) -> str:
    return TicketStatus.Name(status).removeprefix("TICKET_STATUS_")  # type: ignore[arg-type]
