"""bakery_svc's use cases against an in-memory database: the baker's actions in and out of
turn, tickets opened by OrderPlaced, and the bakery's answer to a cancel request."""

from __future__ import annotations

import pytest

from bakery_svc.domain import ACCEPTED, CLOSED, DELIVERED, OPEN, REJECTED, TICKETS, status_name
from bakery_svc.models import Ticket
from bakery_svc.tickets import Tickets
from bread.events.v1 import events_pb2 as ev
from servicekit.db import Database
from servicekit.errors import FailedPrecondition, NotFound
from servicekit.outbox import Outbox
from tests.unit.fakes import database_of, deliver, recorded

ALL_STATUSES = [OPEN, ACCEPTED, REJECTED, DELIVERED, CLOSED]
PLACED = ev.OrderPlaced(order_id="o1", customer_id="alice", item="cake", qty=2, price=50000)


db = database_of(Ticket)


@pytest.fixture
async def tickets(db: Database) -> Tickets:
    return Tickets(db, Outbox(db))


async def a_ticket(db: Database, status: int, order_id: str = "o1") -> str:
    await db.run(lambda: Ticket.create(order_id=order_id, item="cake", qty=2, status=status))
    return order_id


async def stored(db: Database, order_id: str = "o1") -> Ticket:
    return await db.run(Ticket.get_by_id, order_id)


def test_the_transition_table_is_the_designs() -> None:
    assert dict(TICKETS.transitions) == {
        OPEN: {ACCEPTED, REJECTED, CLOSED},
        ACCEPTED: {DELIVERED, CLOSED},
        REJECTED: set(),
        DELIVERED: set(),
        CLOSED: set(),
    }


async def test_a_placed_order_opens_a_ticket(tickets: Tickets, db: Database) -> None:
    assert await deliver(db, tickets.handlers(), PLACED)
    ticket = await stored(db)
    assert (ticket.status, ticket.item, ticket.qty) == (OPEN, "cake", 2)
    assert await recorded(db) == []


async def test_a_placed_order_seen_again_leaves_its_ticket_as_it_is(
    tickets: Tickets, db: Database
) -> None:
    await deliver(db, tickets.handlers(), PLACED)
    await tickets.act("o1", "accept")
    await deliver(db, tickets.handlers(), PLACED)  # republished under a new event id
    assert (await stored(db)).status == ACCEPTED
    assert await db.run(Ticket.select().count) == 1


# ------------------------------------------------------------------------------ the baker

# The baker's action → the one status it may be taken in, the status it leaves, its event.
ACTIONS = {
    "accept": (OPEN, ACCEPTED, ev.BakeryAccepted(order_id="o1")),
    "reject": (OPEN, REJECTED, ev.BakeryRejected(order_id="o1", reason="no flour")),
    "deliver": (ACCEPTED, DELIVERED, ev.OrderDelivered(order_id="o1")),
}


@pytest.mark.parametrize("action", list(ACTIONS))
async def test_the_bakers_actions_in_turn(tickets: Tickets, db: Database, action: str) -> None:
    before, after, event = ACTIONS[action]
    await a_ticket(db, before)
    reason = "no flour" if action == "reject" else ""
    ticket = await tickets.act("o1", action, reason)
    assert (ticket.status, ticket.reason) == (after, reason)
    assert (await stored(db)).status == after
    assert await recorded(db) == [event]


@pytest.mark.parametrize(
    ("action", "status"),
    [(a, s) for a in ACTIONS for s in ALL_STATUSES if s != ACTIONS[a][0]],
)
async def test_the_bakers_actions_out_of_turn_are_refused(
    tickets: Tickets, db: Database, action: str, status: int
) -> None:
    await a_ticket(db, status)
    message = f"cannot {action} an order whose ticket is {status_name(status)}"
    with pytest.raises(FailedPrecondition, match=message):
        await tickets.act("o1", action, "why not")
    ticket = await stored(db)
    assert (ticket.status, ticket.reason) == (status, "")
    assert await recorded(db) == []


async def test_a_whole_day_open_accepted_delivered(tickets: Tickets, db: Database) -> None:
    await deliver(db, tickets.handlers(), PLACED)
    await tickets.act("o1", "accept")
    await tickets.act("o1", "deliver")
    assert await recorded(db) == [
        ev.BakeryAccepted(order_id="o1"),
        ev.OrderDelivered(order_id="o1"),
    ]


async def test_acting_on_no_ticket_is_not_found(tickets: Tickets) -> None:
    with pytest.raises(NotFound):
        await tickets.act("o404", "accept")


async def test_tickets_are_listed_by_status(tickets: Tickets, db: Database) -> None:
    await a_ticket(db, OPEN, "o1")
    await a_ticket(db, ACCEPTED, "o2")
    await a_ticket(db, OPEN, "o3")
    open_ones, _ = await tickets.list_page(OPEN, 10, "")
    assert [t.order_id for t in open_ones] == ["o1", "o3"]
    every, _ = await tickets.list_page(0, 10, "")
    assert len(every) == 3
    assert (await tickets.get("o2")).status == ACCEPTED


# ------------------------------------------------------------------------------ cancel requests


@pytest.mark.parametrize("status", [OPEN, ACCEPTED])
async def test_a_cancel_closes_a_ticket_whose_bread_has_not_left(
    tickets: Tickets, db: Database, status: int
) -> None:
    await a_ticket(db, status)
    await deliver(db, tickets.handlers(), ev.OrderCancelRequested(order_id="o1", reason="too slow"))
    ticket = await stored(db)
    assert (ticket.status, ticket.reason) == (CLOSED, "too slow")
    assert await recorded(db) == [ev.TicketClosed(order_id="o1", reason="too slow")]


async def test_a_cancel_that_overtook_the_placement_closes_the_ticket_for_good(
    tickets: Tickets, db: Database
) -> None:
    await deliver(db, tickets.handlers(), ev.OrderCancelRequested(order_id="o1", reason="oops"))
    assert (await stored(db)).status == CLOSED
    await deliver(db, tickets.handlers(), PLACED)
    ticket = await stored(db)
    assert (ticket.status, ticket.item, ticket.qty, ticket.reason) == (CLOSED, "cake", 2, "oops")
    assert await recorded(db) == [ev.TicketClosed(order_id="o1", reason="oops")]
    with pytest.raises(FailedPrecondition):
        await tickets.act("o1", "accept")


@pytest.mark.parametrize(
    ("status", "refusal"),
    [
        (DELIVERED, "cancel refused: the bread was already delivered"),
        (REJECTED, "cancel refused: the ticket is REJECTED already"),
    ],
)
async def test_a_cancel_after_the_bread_left_is_refused_with_a_reason(
    tickets: Tickets, db: Database, status: int, refusal: str
) -> None:
    await a_ticket(db, status)
    await deliver(db, tickets.handlers(), ev.OrderCancelRequested(order_id="o1", reason="late"))
    ticket = await stored(db)
    assert (ticket.status, ticket.reason) == (status, "")
    assert await recorded(db) == [ev.CancelRefused(order_id="o1", reason=refusal)]


async def test_a_cancel_of_a_closed_ticket_is_answered_closed_again(
    tickets: Tickets, db: Database
) -> None:
    """CLOSED is reached only by a cancel, so a repeated request hears the same answer.
    (DESIGN.md's ticket table says a CLOSED ticket refuses; the code answers TicketClosed.)"""
    await a_ticket(db, OPEN)
    request = ev.OrderCancelRequested(order_id="o1", reason="too slow")
    await deliver(db, tickets.handlers(), request)
    await deliver(db, tickets.handlers(), request)
    assert (await stored(db)).status == CLOSED
    assert await recorded(db) == [ev.TicketClosed(order_id="o1", reason="too slow")] * 2


async def test_a_long_reason_is_cut_to_fit(tickets: Tickets, db: Database) -> None:
    await a_ticket(db, OPEN)
    await deliver(db, tickets.handlers(), ev.OrderCancelRequested(order_id="o1", reason="x" * 500))
    assert (await stored(db)).reason == "x" * 200
