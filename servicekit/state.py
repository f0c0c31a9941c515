"""Status changes that no concurrent replica can overwrite.

Each service's domain.py states its transitions as a table; every change is
one conditional UPDATE (`... WHERE key = ? AND status IN (allowed-from)`), so
of two replicas that both read a row and both decide to move it, exactly one
moves it and the other learns that it did not. Nothing is read, checked in
Python and then saved by primary key.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import peewee

from servicekit.clock import utcnow


@dataclass(frozen=True)
class StateMachine:
    # status → the statuses it may move to
    transitions: Mapping[int, frozenset[int]]

    def can_move(self, current: int, new: int) -> bool:
        return new in self.transitions.get(current, frozenset())

    def sources(self, target: int) -> list[int]:
        """The statuses from which target may be reached."""
        return sorted(s for s, targets in self.transitions.items() if target in targets)

    def move(self, key: peewee.Field, value: Any, target: int, **changes: Any) -> bool:
        """Move the row whose key is value to target, with changes, if its status
        allows; True when this call moved it. Call on the database thread."""
        model = key.model
        query = model.update(status=target, **{"updated": utcnow(), **changes}).where(
            key == value, model.status.in_(self.sources(target))
        )
        return bool(query.execute())
