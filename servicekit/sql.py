"""Statements rendered to SQL once, then run many times with new values.

peewee renders a query to SQL every time it runs, and on the database thread
that rendering costs far more than the database's own work: 250-420 µs per
INSERT, UPDATE or get_or_none against about 30 µs for the same SQL run
directly (SQLite, this project's 2-core machine; issue 10's profile had
customer's database thread spend ~70 % of its time there). A Statement is
written with peewee as usual, with a named Slot where each value goes; it is
rendered once per kind of database and then run with the values of each call.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import peewee


class _SlotName(str):
    """Marks a rendered parameter as a slot, never confused with a constant."""


class Slot(peewee.Value):
    """A named placeholder for a value given when the statement runs."""

    def __init__(self, name: str) -> None:
        # converter=False: the value reaches the driver as given (str, int,
        # bytes, datetime, None), exactly as peewee passes these field types.
        super().__init__(_SlotName(name), converter=False, unpack=False)


class Slots:
    """`slots.order_id` is the Slot named order_id."""

    def __getattr__(self, name: str) -> Slot:
        return Slot(name)


# (the SQL, per parameter: a slot's name or a constant)
Rendered = tuple[str, tuple[Any, ...]]


class Statement:
    """A peewee query on model with slots for its values, rendered once per
    database kind. Run it on the database thread, inside or outside a
    transaction, like any peewee query."""

    def __init__(self, model: type[peewee.Model], build: Callable[[Slots], peewee.Query]) -> None:
        self.model = model
        self._build = build
        self._rendered: dict[type[peewee.Database], Rendered] = {}
        self._columns: Sequence[peewee.Field] = ()

    def run(self, **values: Any) -> Any:
        """Execute with these slot values; returns the cursor."""
        database = self.model._meta.database  # tests bind models to new databases
        rendered = self._rendered.get(type(database))
        if rendered is None:
            query = self._build(Slots())
            sql, params = query.sql()
            rendered = self._rendered[type(database)] = (sql, tuple(params))
            self._columns = list(getattr(query, "_returning", None) or ())
        sql, template = rendered
        return database.execute_sql(
            sql, [values[p] if isinstance(p, _SlotName) else p for p in template]
        )

    def rowcount(self, **values: Any) -> int:
        """Rows an UPDATE or DELETE changed."""
        return int(self.run(**values).rowcount)

    def first(self, **values: Any) -> dict[str, Any] | None:
        """A SELECT's first row as {field name: Python value}, or None."""
        row = self.run(**values).fetchone()
        return None if row is None else self._as_dict(row)

    def select(self, **values: Any) -> list[Any]:
        """A SELECT's rows as instances of the model."""
        return [_loaded(self.model, self._as_dict(row)) for row in self.run(**values).fetchall()]

    def _as_dict(self, row: Sequence[Any]) -> dict[str, Any]:
        return {f.name: f.python_value(v) for f, v in zip(self._columns, row, strict=True)}


class KeysStatement:
    """A statement over a list of keys (`... IN (...)`), rendered for lengths
    1, 2, 4, 8, ... only: a list is padded with its last key to the next one."""

    def __init__(
        self,
        model: type[peewee.Model],
        build: Callable[[Slots, list[Slot]], peewee.Query],
    ) -> None:
        self.model = model
        self._build = build
        self._by_length: dict[int, Statement] = {}

    def run(self, keys: Sequence[Any], **values: Any) -> Any:
        length = 1 << (len(keys) - 1).bit_length()
        statement = self._by_length.get(length)
        if statement is None:
            statement = self._by_length[length] = Statement(
                self.model,
                lambda s: self._build(s, [getattr(s, f"key{i}") for i in range(length)]),
            )
        padded = [*keys, *[keys[-1]] * (length - len(keys))]
        return statement.run(**values, **{f"key{i}": key for i, key in enumerate(padded)})


def insert(model: type[peewee.Model]) -> Statement:
    """INSERT of one row with a slot per column (named as the field); every
    column is given, so no default is rendered into the SQL once for all rows."""
    fields = [f for f in model._meta.sorted_fields if not isinstance(f, peewee.AutoField)]
    return Statement(model, lambda s: model.insert({f: getattr(s, f.name) for f in fields}))


_LOOKUPS: dict[peewee.Field, Statement] = {}


def get_by(field: peewee.Field, value: Any) -> Any:
    """The row of field's model whose field equals value, or None (peewee's
    get_or_none for the one-column lookups of hot paths)."""
    statement = _LOOKUPS.get(field)
    if statement is None:
        model = field.model
        statement = _LOOKUPS[field] = Statement(
            model, lambda s: model.select().where(field == s.value)
        )
    row = statement.first(value=value)
    return None if row is None else _loaded(field.model, row)


def _loaded(model: type[peewee.Model], row: dict[str, Any]) -> Any:
    """A model instance of a row read from the database: every column is given, so
    no defaults are made first (peewee builds the rows of its own queries so)."""
    return model(__no_default__=1, **row)
