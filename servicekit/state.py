"""Status changes that no concurrent replica can overwrite.

Each service's domain.py states its transitions as a table; every change is
one conditional UPDATE (`... WHERE key = ? AND status IN (allowed-from)`), so
of two replicas that both read a row and both decide to move it, exactly one
moves it and the other learns that it did not. Nothing is read, checked in
Python and then saved by primary key.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import peewee

from servicekit.clock import utcnow
from servicekit.sql import Slots, Statement


@dataclass(frozen=True)
class StateMachine:
    # status → the statuses it may move to
    transitions: Mapping[int, frozenset[int]]
    # The UPDATE of each (key, target, changed fields), rendered once (servicekit.sql).
    _moves: dict[tuple[str, int, tuple[str, ...]], Statement] = field(
        default_factory=dict, compare=False, repr=False
    )

    def can_move(self, current: int, new: int) -> bool:
        return new in self.transitions.get(current, frozenset())

    def sources(self, target: int) -> list[int]:
        """The statuses from which target may be reached."""
        return sorted(s for s, targets in self.transitions.items() if target in targets)

    def move(self, key: peewee.Field, value: Any, target: int, **changes: Any) -> bool:
        """Move the row whose key is value to target, with changes, if its status
        allows; True when this call moved it. Call on the database thread."""
        changes = {"updated": utcnow(), **changes}
        shape = (key.name, target, tuple(sorted(changes)))
        statement = self._moves.get(shape)
        if statement is None:
            statement = self._moves[shape] = self._move_statement(key, target, shape[2])
        return statement.rowcount(key=value, **changes) > 0

    def _move_statement(
        self, key: peewee.Field, target: int, changed: tuple[str, ...]
    ) -> Statement:
        model = key.model

        def build(s: Slots) -> peewee.Query:
            values = {getattr(model, name): getattr(s, name) for name in changed}
            return model.update({model.status: target, **values}).where(
                key == s.key, model.status.in_(self.sources(target))
            )

        return Statement(model, build)
