"""Schema migrations on SQLite in memory: every service's schema is created and stamped;
tables an older release made are adopted, a column already there tolerated; a model
field without a step stops start-up, naming it; a newer database is accepted (rollouts).
The three databases, old rows and concurrent migrators: tests/integration/test_migrations.py."""

from __future__ import annotations

import logging
from collections.abc import Iterator

import peewee
import pytest

from bakery_svc.migrations import SCHEMA as BAKERY
from customer_svc.migrations import SCHEMA as CUSTOMER
from order_svc.migrations import SCHEMA as ORDER
from order_svc.models import Order
from pay_svc.migrations import SCHEMA as PAY
from pay_svc.models import Payment
from servicekit.migrations import TABLE, Schema, SchemaMismatch, Step, add_column, migrate
from servicekit.shared_schema import SHARED


@pytest.fixture
def database() -> Iterator[peewee.SqliteDatabase]:
    db = peewee.SqliteDatabase(":memory:")
    yield db
    db.close()


def history(database: peewee.Database) -> list[tuple[str, int, str]]:
    rows = database.execute_sql(f"SELECT name, version, does FROM {TABLE} ORDER BY name, version")
    return [tuple(row) for row in rows.fetchall()]


@pytest.mark.parametrize("schema", [ORDER, PAY, BAKERY, CUSTOMER], ids=lambda s: s.name)
def test_a_fresh_database_is_stamped_at_the_newest_version(
    database: peewee.Database, schema: Schema
) -> None:
    migrate(database, [SHARED, schema])
    assert history(database) == sorted(
        [
            (schema.name, schema.version, "tables created at this version"),
            ("servicekit", SHARED.version, "tables created at this version"),
        ]
    )
    migrate(database, [SHARED, schema])  # the next start finds nothing to do
    assert len(history(database)) == 2


def test_no_step_runs_on_a_fresh_database(database: peewee.Database) -> None:
    ran: list[int] = []
    steps = [Step(1, "one", [lambda _: ran.append(1)]), Step(2, "two", [lambda _: ran.append(2)])]
    migrate(database, [Schema("order", [Order], steps)])
    assert ran == []
    assert history(database) == [("order", 2, "tables created at this version")]


def test_tables_of_a_release_just_before_migrations_are_adopted(
    database: peewee.Database,
) -> None:
    # create_tables of today's models, as the release before migrations did: every column is
    # there already, and each step tolerates it.
    with database.bind_ctx([Order, Payment]):
        database.create_tables([Order, Payment])
        Payment.create(id="p", order_id="o", customer_id="c", amount=1, status=1)
    migrate(database, [ORDER, PAY])
    assert [(name, version) for name, version, _ in history(database)] == [
        ("order", 0),
        ("order", 1),
        ("pay", 0),
    ]
    with database.bind_ctx([Payment]):
        assert Payment.select().count() == 1


class Grown(peewee.Model):
    id = peewee.AutoField()
    note = peewee.CharField(default="")
    size = peewee.IntegerField(default=0)

    class Meta:
        table_name = "grown"


def test_a_field_without_a_step_stops_start_up_naming_it(database: peewee.Database) -> None:
    note = [add_column("grown", "note", peewee.CharField(default=""))]
    database.execute_sql('CREATE TABLE "grown" ("id" INTEGER NOT NULL PRIMARY KEY)')
    with pytest.raises(SchemaMismatch, match=r"column grown\.size"):
        migrate(database, [Schema("grown", [Grown], [Step(1, "grown.note", note)])])

    size = [add_column("grown", "size", peewee.IntegerField(default=0))]
    migrate(database, [Schema("grown", [Grown], [Step(1, "n", note), Step(2, "grown.size", size)])])
    assert [version for _, version, _ in history(database)] == [0, 1, 2]


def test_a_database_a_newer_release_moved_forward_is_accepted(
    database: peewee.Database, caplog: pytest.LogCaptureFixture
) -> None:
    newer = Schema("order", [Order], [*ORDER.steps, Step(len(ORDER.steps) + 1, "later", [])])
    migrate(database, [newer])
    with caplog.at_level(logging.WARNING):
        migrate(database, [ORDER])
    assert "newer than this release's" in caplog.text


def test_step_versions_count_from_one() -> None:
    with pytest.raises(ValueError, match="1, 2, 3"):
        Schema("order", [Order], [Step(2, "skips one", [])])
