"""Versioned schema migrations, run at start-up under a database lock.

Each owner of tables has a Schema: its models and the numbered steps that
brought older databases to what the models say. servicekit owns the outbox
and inbox (servicekit/shared_schema.py, run by every service); each service
owns its own (`<service>/migrations.py`). The table `schema_migrations`
records, per schema, the versions a database has.

At start-up (Database.connect) every schema is brought forward:
- no row and none of its tables: a fresh database gets today's tables from
  the models and is stamped at the newest version (no step runs);
- no row but some of its tables: an older release made them with
  create_tables; the missing tables are created and every step runs, each
  tolerating what is already there (add_column, add_index below);
- otherwise the steps newer than the recorded version run, in order, each in
  a transaction with its row (PostgreSQL and SQLite undo a failed step;
  MariaDB commits DDL at once, which the tolerant steps make safe to rerun).
Then the tables must match the models (playhouse.schema_diff): a field added
without a step stops start-up with what is missing, rather than failing the
first query that uses it. Columns or indexes the models do not know are
allowed: during a rollout the old release runs on a schema the new one moved
forward, which is why steps only ever add.

Replicas starting together take turns: PostgreSQL's pg_advisory_lock, MariaDB's
GET_LOCK, SQLite's write lock (BEGIN IMMEDIATE) are held while migrating, and
whoever comes second finds the steps recorded.

Steps are written with peewee's playhouse.migrate. Not playhouse.migrations'
Runner: it loads loose scripts from a directory by path, keeps no lock, and
has no notion of a fresh database stamped at the newest version.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import zlib
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field

import peewee
from playhouse.migrate import SchemaMigrator
from playhouse.schema_diff import diff_models

from servicekit.clock import utcnow

log = logging.getLogger(__name__)

TABLE = "schema_migrations"
# Per database on PostgreSQL (advisory locks are), so one key serves every service.
PG_LOCK_KEY = zlib.crc32(b"servicekit.migrations")
# How long a MariaDB replica waits for another's migration before its start-up retries.
MYSQL_LOCK_WAIT_SECONDS = 600

# One change of a step: runs playhouse.migrate operations through the migrator.
Change = Callable[[SchemaMigrator], None]


@dataclass(frozen=True)
class Step:
    version: int
    # What the step does, recorded with its version.
    does: str
    changes: Sequence[Change]


@dataclass(frozen=True)
class Schema:
    """An owner's tables (models without foreign keys between owners) and their history."""

    name: str
    models: Sequence[type[peewee.Model]]
    steps: Sequence[Step] = field(default=())

    def __post_init__(self) -> None:
        versions = [step.version for step in self.steps]
        if versions != list(range(1, len(versions) + 1)):
            raise ValueError(f"{self.name}: step versions must be 1, 2, 3, ... not {versions}")

    @property
    def version(self) -> int:
        return len(self.steps)


class SchemaMismatch(RuntimeError):
    """The tables lack what the models have: a step is missing."""


def add_column(table: str, column: str, column_field: peewee.Field) -> Change:
    """Add a column unless the table has it. Give the field in full here rather than
    the model's: a step must keep meaning what it meant when it was written."""

    def change(migrator: SchemaMigrator) -> None:
        if column not in {c.name for c in migrator.database.get_columns(table)}:
            migrator.migrate(migrator.add_column(table, column, column_field))

    return change


def add_index(table: str, columns: Sequence[str], unique: bool = False) -> Change:
    """Add an index named as peewee names a model's (`<table>_<columns>`) unless the
    table has an index on those columns."""

    def change(migrator: SchemaMigrator) -> None:
        indexed = {tuple(index.columns) for index in migrator.database.get_indexes(table)}
        if tuple(columns) not in indexed:
            migrator.migrate(migrator.add_index(table, tuple(columns), unique))

    return change


def add_table(model: type[peewee.Model]) -> Change:
    """Create a table, with its indexes, unless it is there. Give the model as it was when
    the step was written (a copy in the migrations file), not the live one."""

    def change(migrator: SchemaMigrator) -> None:
        peewee.SchemaManager(model, migrator.database).create_all(safe=True)

    return change


def migrate(database: peewee.Database, schemas: Sequence[Schema]) -> None:
    """Bring every schema to its newest version (see the module's docstring)."""
    with _locked(database):
        history = _history(database)
        history.create_table(safe=True)
        for schema in schemas:
            _bring_forward(database, history, schema)
    for schema in schemas:
        _check(database, schema)


@contextlib.contextmanager
def _locked(database: peewee.Database) -> Iterator[None]:
    if isinstance(database, peewee.SqliteDatabase):
        # The write lock, taken at BEGIN; DDL is transactional, so steps nest as savepoints.
        with database.atomic("IMMEDIATE"):
            yield
        return
    if isinstance(database, peewee.PostgresqlDatabase):
        database.execute_sql("SELECT pg_advisory_lock(%s)", (PG_LOCK_KEY,))
        unlock: tuple[str, tuple[object, ...]] = ("SELECT pg_advisory_unlock(%s)", (PG_LOCK_KEY,))
    elif isinstance(database, peewee.MySQLDatabase):
        # GET_LOCK names are server-wide: the database's name goes in.
        name = "migrations." + hashlib.sha1(str(database.database).encode()).hexdigest()
        (got,) = database.execute_sql(
            "SELECT GET_LOCK(%s, %s)", (name, MYSQL_LOCK_WAIT_SECONDS)
        ).fetchone()
        if got != 1:
            raise peewee.OperationalError(f"no migration lock after {MYSQL_LOCK_WAIT_SECONDS} s")
        unlock = ("SELECT RELEASE_LOCK(%s)", (name,))
    else:
        raise TypeError(f"no migration lock for {type(database).__name__}")
    try:
        yield
    finally:
        try:
            database.execute_sql(*unlock)
        except peewee.DatabaseError:
            # The session lock must not outlive this: closing the session releases it.
            database.close()


class SchemaMigration(peewee.Model):
    """A version of a schema that a database has: one row per step (or one for a
    fresh database's tables, or version 0 for tables an older release made)."""

    name = peewee.CharField(max_length=64)
    version = peewee.IntegerField()
    does = peewee.CharField(max_length=200)
    applied = peewee.DateTimeField()

    class Meta:
        primary_key = peewee.CompositeKey("name", "version")


def _history(db: peewee.Database) -> type[SchemaMigration]:
    """The history table's model bound to this database only: migrators of several
    databases may run at once (tests), and binding one model is not thread-safe."""

    class Bound(SchemaMigration):
        class Meta:
            database = db
            table_name = TABLE

    return Bound


def _bring_forward(
    database: peewee.Database, history: type[SchemaMigration], schema: Schema
) -> None:
    def record(version: int, does: str) -> None:
        history.create(name=schema.name, version=version, does=does, applied=utcnow())

    recorded = (
        history.select(peewee.fn.MAX(history.version)).where(history.name == schema.name).scalar()
    )
    steps: Sequence[Step] = schema.steps
    if recorded is None:
        tables = set(database.get_tables())
        found = [m for m in schema.models if m._meta.table_name in tables]
        with database.atomic():
            # Only the missing tables: an old table lacks columns today's indexes need.
            for model in schema.models:
                if model not in found:
                    peewee.SchemaManager(model, database).create_all(safe=False)
            if not found:
                record(schema.version, "tables created at this version")
                log.info("%s: tables created at version %d", schema.name, schema.version)
                return
            record(0, "tables found without a version")
        log.info("%s: tables found without a version; bringing them forward", schema.name)
    else:
        if recorded > schema.version:
            log.warning(
                "%s: the database is at version %d, newer than this release's %d",
                schema.name,
                recorded,
                schema.version,
            )
        steps = schema.steps[recorded:]
    migrator = SchemaMigrator.from_database(database)
    for step in steps:
        with database.atomic():
            for change in step.changes:
                change(migrator)
            record(step.version, step.does)
        log.info("%s: migrated to version %d: %s", schema.name, step.version, step.does)


def _check(database: peewee.Database, schema: Schema) -> None:
    diff = diff_models(database, list(schema.models))
    missing = [
        *(f"table {m._meta.table_name}" for m in diff.create_tables),
        *(f"column {f.model._meta.table_name}.{f.column_name}" for f in diff.add_columns),
        *(f"index {i.table} ({', '.join(i.columns or ())})" for i in diff.add_indexes),
    ]
    if missing:
        raise SchemaMismatch(
            f"{schema.name}: the database lacks {', '.join(missing)} that the models have; "
            f"add a step to its migrations (docs/DESIGN.md, Schema changes)"
        )
