"""Schema migrations on SQLite, PostgreSQL and MariaDB: a database made by an older
release's create_tables is brought forward with every row kept and the new columns
working; a fresh one gets today's tables stamped at the newest version; two migrators
starting together apply a step once; a real service migrates its database at start-up
and prunes its inbox."""

from __future__ import annotations

import pathlib
import threading
import time
import uuid
from collections.abc import Iterator
from datetime import datetime, timedelta
from typing import Any

import peewee
import pytest
from playhouse.migrate import SchemaMigrator

from harness.polling import wait_for
from harness.ports import free_port
from harness.processes import ServiceProcess
from harness.system import delete_broker_objects
from ops.databases import drop_database, ensure_database
from ops.profiles import MARIADB, POSTGRESQL
from order_svc.migrations import SCHEMA as ORDER
from order_svc.models import Order
from servicekit.clock import utcnow
from servicekit.db import Database, open_database
from servicekit.inbox import InboxEvent
from servicekit.migrations import TABLE, Schema, Step, add_column, migrate
from servicekit.outbox import Outbox, OutboxEvent
from servicekit.shared_schema import SHARED

T0 = datetime(2026, 1, 1, 12, 0, 0)
# Older than the inbox keeps rows (INBOX_RETENTION_DAYS).
LONG_AGO = timedelta(days=30)


# The tables as the release before migrations made them (git show 6b764c4: order_svc/models.py,
# servicekit/outbox.py, servicekit/inbox.py): no orders.request_id and its unique index, no
# outbox.claimed_until.
class OldOrder(peewee.Model):
    id = peewee.CharField(max_length=36, primary_key=True)
    customer_id = peewee.CharField(max_length=64, index=True)
    item = peewee.CharField(max_length=64)
    qty = peewee.IntegerField()
    unit_price = peewee.BigIntegerField()
    price = peewee.BigIntegerField()
    status = peewee.IntegerField(index=True)
    payment_id = peewee.CharField(max_length=36, default="")
    reason = peewee.CharField(max_length=200, default="")
    created = peewee.DateTimeField(index=True)
    updated = peewee.DateTimeField()

    class Meta:
        table_name = "orders"


class OldOutbox(peewee.Model):
    id = peewee.AutoField()
    event_id = peewee.CharField(max_length=36, unique=True)
    type_name = peewee.CharField(max_length=100)
    order_id = peewee.CharField(max_length=64)
    payload = peewee.BlobField()
    created = peewee.DateTimeField()

    class Meta:
        table_name = "outbox"


class OldInbox(peewee.Model):
    event_id = peewee.CharField(max_length=36, primary_key=True)
    type_name = peewee.CharField(max_length=100)
    applied = peewee.DateTimeField()

    class Meta:
        table_name = "inbox"


OLD_MODELS = [OldOrder, OldOutbox, OldInbox]
# The history of such a database once migrated: tables adopted (0), then every step.
BROUGHT_FORWARD = [
    (schema.name, v) for schema in (ORDER, SHARED) for v in range(schema.version + 1)
]


@pytest.fixture(params=["sqlite", "postgresql", "mariadb"])
def url(request: pytest.FixtureRequest, tmp_path: pathlib.Path) -> Iterator[str]:
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path}/order.db"
        return
    name = f"bread_test_migrate_{uuid.uuid4().hex[:10]}"
    url = (POSTGRESQL if request.param == "postgresql" else MARIADB).format(database=name)
    ensure_database(url)
    try:
        yield url
    finally:
        drop_database(url)


def make_old_database(url: str, orders: int = 5) -> None:
    """The old release's tables with rows in them."""
    database = open_database(url)
    with database.bind_ctx(OLD_MODELS):
        database.create_tables(OLD_MODELS)
        for n in range(orders):
            OldOrder.create(
                id=f"order-{n}",
                customer_id=f"customer-{n % 2}",
                item="cake",
                qty=n + 1,
                unit_price=25000,
                price=25000 * (n + 1),
                status=2,
                payment_id=f"pay-{n}",
                created=T0,
                updated=T0,
            )
            OldOutbox.create(
                event_id=f"event-{n}",
                type_name="OrderPlaced",
                order_id=f"order-{n}",
                payload=b"\x00\x01payload",
                created=T0,
            )
            OldInbox.create(
                event_id=f"seen-{n}", type_name="BakeryAccepted", applied=utcnow() - LONG_AGO
            )
        OldInbox.create(event_id="seen-lately", type_name="BakeryAccepted", applied=utcnow())
    database.close()


def history(url: str) -> list[tuple[str, int]]:
    database = open_database(url)
    try:
        rows = database.execute_sql(f"SELECT name, version FROM {TABLE} ORDER BY name, version")
        return [(name, version) for name, version in rows.fetchall()]
    finally:
        database.close()


async def connect_as_order(url: str) -> Database:
    """The database as order_svc opens it at start-up."""
    db = Database(url, [*ORDER.models, *SHARED.models])
    await db.connect([SHARED, ORDER])
    return db


async def test_an_old_database_is_brought_forward_with_every_row(url: str) -> None:
    make_old_database(url)
    db = await connect_as_order(url)
    try:
        assert history(url) == BROUGHT_FORWARD

        def rows() -> tuple[list[Any], ...]:
            return (
                list(Order.select(Order.id, Order.qty, Order.price).order_by(Order.id).tuples()),
                list(OutboxEvent.select(OutboxEvent.event_id, OutboxEvent.payload).tuples()),
                list(InboxEvent.select(InboxEvent.event_id).order_by(InboxEvent.event_id).tuples()),
            )

        orders, outbox, inbox = await db.run(rows)
        assert orders == [(f"order-{n}", n + 1, 25000 * (n + 1)) for n in range(5)]
        assert sorted((e, bytes(p)) for e, p in outbox) == [
            (f"event-{n}", b"\x00\x01payload") for n in range(5)
        ]
        assert inbox == [*((f"seen-{n}",) for n in range(5)), ("seen-lately",)]

        # orders.request_id: stored, and unique per customer.
        def keyed() -> None:
            Order.update(request_id="retry-1").where(Order.id == "order-0").execute()
            Order.update(request_id="retry-1").where(Order.id == "order-1").execute()  # other

        await db.transaction(keyed)
        with pytest.raises(peewee.IntegrityError):
            await db.transaction(
                lambda: Order.update(request_id="retry-1").where(Order.id == "order-2").execute()
            )
        assert await db.run(lambda: Order.get_by_id("order-0").request_id) == "retry-1"

        # outbox.claimed_until: the relay claims the old rows.
        claimed = await db.transaction(Outbox(db)._delete_and_claim, [])
        assert len(claimed) == 5
        assert (
            await db.run(
                lambda: OutboxEvent.select().where(OutboxEvent.claimed_until.is_null()).count()
            )
            == 0
        )
    finally:
        await db.close()

    # A restart finds nothing to do.
    db = await connect_as_order(url)
    await db.close()
    assert history(url) == BROUGHT_FORWARD


async def test_a_fresh_database_gets_todays_tables_stamped_at_the_newest_version(
    url: str,
) -> None:
    db = await connect_as_order(url)
    await db.close()
    assert history(url) == [("order", ORDER.version), ("servicekit", SHARED.version)]


class Probe(peewee.Model):
    id = peewee.AutoField()
    note = peewee.CharField(default="")

    class Meta:
        table_name = "migration_probe"


class OldProbe(peewee.Model):
    id = peewee.AutoField()

    class Meta:
        table_name = "migration_probe"


def test_two_migrators_starting_together_apply_a_step_once(url: str) -> None:
    database = open_database(url)
    with database.bind_ctx([OldProbe]):
        database.create_tables([OldProbe])
    database.close()

    applied: list[str] = []
    add_note = add_column("migration_probe", "note", peewee.CharField(default=""))

    def slow_add_note(migrator: SchemaMigrator) -> None:
        applied.append(threading.current_thread().name)
        time.sleep(0.5)  # long enough for the other migrator to arrive meanwhile
        add_note(migrator)

    probe = Schema("probe", [Probe], [Step(1, "migration_probe.note", [slow_add_note])])
    start = threading.Barrier(2)
    errors: list[BaseException] = []

    def migrator() -> None:
        own = open_database(url)
        try:
            start.wait()
            migrate(own, [probe])
        except BaseException as error:
            errors.append(error)
        finally:
            own.close()

    threads = [threading.Thread(target=migrator, name=f"migrator-{n}") for n in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert not errors
    assert len(applied) == 1, applied
    assert history(url) == [("probe", 0), ("probe", 1)]


def inbox(url: str) -> list[str]:
    database = open_database(url)
    try:
        rows = database.execute_sql("SELECT event_id FROM inbox ORDER BY event_id").fetchall()
        return [event_id for (event_id,) in rows]
    finally:
        database.close()


def test_a_service_migrates_its_old_database_at_start_up_and_prunes_its_inbox(
    tmp_path: pathlib.Path,
) -> None:
    url = f"sqlite:///{tmp_path}/order.db"
    make_old_database(url)
    names = f"bread-test-migrate-{uuid.uuid4().hex[:8]}"
    env = {"DATABASE_URL": url, "EVENT_EXCHANGE": names, "QUEUE_PREFIX": names}
    order = ServiceProcess("order", free_port(), env, tmp_path).start()
    try:
        order.wait_ready()
        wait_for(lambda: inbox(url) == ["seen-lately"], timeout=10, what="old inbox rows pruned")
    finally:
        order.kill()
        delete_broker_objects(names, names)
    assert history(url) == BROUGHT_FORWARD
