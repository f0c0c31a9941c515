"""Events that decode but make no sense are refused where they enter (servicekit.events
.from_amqp), so consumers dead-letter them at once; the events the services publish pass."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime

import pytest
from google.protobuf.message import Message

from bread.events.v1 import events_pb2 as ev
from servicekit.events import MAX_EVENT_BYTES, InvalidEvent, event_type, from_amqp

ORDER = str(uuid.uuid4())
PAYMENT = str(uuid.uuid4())
EXCHANGE = "bread.events"


@dataclass
class Delivery:
    """What from_amqp reads of an aio-pika incoming message."""

    body: bytes
    type: str | None
    message_id: str | None
    correlation_id: str | None
    exchange: str = EXCHANGE
    routing_key: str | None = None
    timestamp: datetime | None = None
    app_id: str | None = None
    headers: dict[str, object] | None = None

    def __post_init__(self) -> None:
        if self.routing_key is None:
            self.routing_key = self.type


def delivery(message: Message, correlation: str | None = ORDER, **changes: object) -> Delivery:
    fields: dict = {
        "body": message.SerializeToString(),
        "type": event_type(message),
        "message_id": str(uuid.uuid4()),
        "correlation_id": correlation,
        "timestamp": datetime.now(UTC),
        **changes,
    }
    return Delivery(**fields)


PLACED = ev.OrderPlaced(
    order_id=ORDER, customer_id="alice", item="cake", qty=2, price=50000, payment_id=PAYMENT
)
# As the services publish them (order_svc.orders, pay_svc.payments, bakery_svc.tickets).
PUBLISHED: list[Message] = [
    PLACED,
    ev.OrderFailed(order_id=ORDER, customer_id="alice", item="cake", qty=1, price=25000),
    ev.OrderCancelRequested(order_id=ORDER, reason="too late,\nsorry 🍞"),
    ev.OrderCanceled(order_id=ORDER),
    ev.PaymentApproved(payment_id=PAYMENT, order_id=ORDER, customer_id="alice", amount=1),
    ev.PaymentCanceled(payment_id=PAYMENT, order_id=ORDER, amount=25000, reason="r" * 200),
    ev.BakeryAccepted(order_id=ORDER),
    ev.BakeryRejected(order_id=ORDER, reason="no flour"),
    ev.OrderDelivered(order_id=ORDER),
    ev.TicketClosed(order_id=ORDER, reason=""),
    ev.CancelRefused(order_id=ORDER, reason="cancel refused: the bread was already delivered"),
]


@pytest.mark.parametrize("message", PUBLISHED, ids=lambda m: m.DESCRIPTOR.name)
def test_what_the_services_publish_passes(message: Message) -> None:
    event = from_amqp(delivery(message))  # type: ignore[arg-type]
    assert event.message == message and event.order_id == ORDER


def placed(**changes: object) -> ev.OrderPlaced:
    message = ev.OrderPlaced()
    message.CopyFrom(PLACED)
    for name, value in changes.items():
        setattr(message, name, value)
    return message


FORGED = {
    "empty order id": delivery(placed(order_id=""), correlation=""),
    "absurd order id": delivery(placed(order_id="o" * 5000), correlation="o" * 5000),
    "unprintable order id": delivery(placed(order_id="o\x00\x1b"), correlation="o\x00\x1b"),
    "RTL order id": delivery(placed(order_id="\u202e1"), correlation="\u202e1"),
    "correlation not the order": delivery(ev.BakeryAccepted(order_id=ORDER), correlation="other"),
    "no correlation": delivery(ev.BakeryAccepted(order_id=ORDER), correlation=None),
    "payload of another type": delivery(
        PLACED, type="bread.events.v1.PaymentCanceled", routing_key=None
    ),
    "published under another type": delivery(
        ev.BakeryAccepted(order_id=ORDER), routing_key="bread.events.v1.OrderPlaced"
    ),
    "negative qty": delivery(placed(qty=-5)),
    "no qty": delivery(placed(qty=0)),
    "negative price": delivery(placed(price=-1)),
    "negative amount": delivery(
        ev.PaymentCanceled(payment_id=PAYMENT, order_id=ORDER, amount=-25000)
    ),
    "no payment id": delivery(placed(payment_id="")),
    "blank customer": delivery(placed(customer_id="  ")),
    "long customer": delivery(placed(customer_id="c" * 65)),
    "NUL in a reason": delivery(ev.OrderCanceled(order_id=ORDER, reason="a\x00b")),
    "long reason": delivery(ev.BakeryRejected(order_id=ORDER, reason="r" * 201)),
    "huge payload": delivery(placed(), body=b"\x1a" + b"\x80\x80\x08" + b"a" * MAX_EVENT_BYTES),
    "long event id": delivery(PLACED, message_id="m" * 37),
    "no event id": delivery(PLACED, message_id=""),
    "unknown type": delivery(PLACED, type="bread.events.v1.Nope"),
}


@pytest.mark.parametrize("forged", FORGED.values(), ids=FORGED.keys())
def test_senseless_events_are_invalid(forged: Delivery) -> None:
    with pytest.raises(InvalidEvent):
        from_amqp(forged)  # type: ignore[arg-type]


def test_a_redriven_event_keeps_its_type_but_not_its_routing_key() -> None:
    """Redrives go through the default exchange, routed by queue name."""
    redriven = delivery(PLACED, exchange="", routing_key="bread.bakery")
    assert from_amqp(redriven).message == PLACED  # type: ignore[arg-type]
