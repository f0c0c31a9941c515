"""Each service's convert.py fills every field of its message from the model, so a field
added to a proto and forgotten in the translation fails here, not in a client."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import pytest
from google.protobuf.message import Message

from bakery_svc.convert import ticket_to_proto
from bakery_svc.domain import ACCEPTED
from bakery_svc.models import Ticket
from customer_svc.convert import mypage_to_proto, timeline_to_proto
from customer_svc.models import Mypage, TimelineEvent
from customer_svc.timeline import Timeline
from order_svc.convert import menu_to_proto, order_to_proto
from order_svc.domain import PAID
from order_svc.menu import DEFAULT_MENU
from order_svc.models import Order
from pay_svc.convert import payment_to_proto
from pay_svc.domain import APPROVED
from pay_svc.models import Payment

CREATED, UPDATED = datetime(2026, 1, 1, 12, 0, 0), datetime(2026, 1, 1, 12, 0, 5)
WHEN = {"created": CREATED, "updated": UPDATED}

CONVERTED = {
    "order": order_to_proto(
        Order(
            id="o1",
            customer_id="alice",
            item="cake",
            qty=2,
            unit_price=25000,
            price=50000,
            status=PAID,
            payment_id="p1",
            reason="why",
            request_id="r1",
            **WHEN,
        )
    ),
    "payment": payment_to_proto(
        Payment(
            id="p1",
            order_id="o1",
            customer_id="alice",
            amount=50000,
            status=APPROVED,
            reason="why",
            **WHEN,
        )
    ),
    "ticket": ticket_to_proto(
        Ticket(order_id="o1", item="cake", qty=2, status=ACCEPTED, reason="why", **WHEN)
    ),
    "mypage": mypage_to_proto(
        Mypage(
            order_id="o1",
            customer_id="alice",
            item="cake",
            qty=2,
            price=50000,
            order_status="PAID",
            payment_id="p1",
            payment_status="APPROVED",
            bakery_status="ACCEPTED",
            reason="why",
            **WHEN,
        )
    ),
}


@pytest.mark.parametrize("name", list(CONVERTED))
def test_every_field_is_translated(name: str) -> None:
    message: Message = CONVERTED[name]
    filled = {field.name for field, _ in message.ListFields()}
    assert filled == {field.name for field in message.DESCRIPTOR.fields}


@pytest.mark.parametrize("name", list(CONVERTED))
def test_times_are_the_rows(name: str) -> None:
    message: Any = CONVERTED[name]
    assert message.create_time.ToDatetime() == CREATED
    assert message.update_time.ToDatetime() == UPDATED


def test_the_menu_lists_every_item_at_its_price() -> None:
    menu = menu_to_proto(DEFAULT_MENU)
    assert {item.name: item.price for item in menu.items} == DEFAULT_MENU


def test_a_timeline_has_every_field_of_each_event() -> None:
    event = TimelineEvent(
        order_id="o1",
        event_id="e1",
        type_name="bread.events.v1.OrderPlaced",
        service="order",
        event_time=CREATED,
    )
    message = timeline_to_proto(Timeline("o1", "PAID", [event]))
    assert {field.name for field, _ in message.ListFields()} == {
        field.name for field in message.DESCRIPTOR.fields
    }
    (converted,) = message.events
    assert {field.name for field, _ in converted.ListFields()} == {
        field.name for field in converted.DESCRIPTOR.fields
    }
    assert (converted.type, converted.event_time.ToDatetime()) == ("OrderPlaced", CREATED)
