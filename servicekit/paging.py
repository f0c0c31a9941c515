"""Page tokens for List RPCs (AIP-158): opaque, validated, capped page sizes."""

from __future__ import annotations

import base64
import binascii
from typing import Any

import peewee

from servicekit.errors import InvalidArgument
from servicekit.sql import Slots, Statement

DEFAULT_PAGE_SIZE = 20
MAX_PAGE_SIZE = 100
# Further than any list goes; a tampered token asking for more is invalid, not an overflow.
MAX_OFFSET = 10_000_000


class Listing:
    """A List RPC's rows: model rows in a fixed order, optionally filtered by
    equality on some fields; a statement is rendered once per set of filters
    used (servicekit.sql), so a page costs no SQL building."""

    def __init__(self, model: type[peewee.Model], *order_by: peewee.Node) -> None:
        self.model = model
        self.order_by = order_by
        self._statements: dict[tuple[str, ...], Statement] = {}

    def page(self, page_size: int, page_token: str, **filters: Any) -> tuple[list, str]:
        """One page of rows matching the filters that are set (a filter that is
        "" or 0 is not), and the token of the next page ("" at the end)."""
        if page_size < 0:
            raise InvalidArgument("page_size must not be negative")
        size = min(page_size or DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE)
        offset = _decode(page_token)
        given = {name: value for name, value in sorted(filters.items()) if value}
        rows = self._statement(tuple(given)).select(**given, limit=size + 1, offset=offset)
        next_token = _encode(offset + size) if len(rows) > size else ""
        return rows[:size], next_token

    def _statement(self, filtered_by: tuple[str, ...]) -> Statement:
        statement = self._statements.get(filtered_by)
        if statement is None:
            model = self.model

            def build(s: Slots) -> peewee.Query:
                query = model.select()
                if filtered_by:
                    query = query.where(
                        *(getattr(model, name) == getattr(s, name) for name in filtered_by)
                    )
                return query.order_by(*self.order_by).limit(s.limit).offset(s.offset)

            statement = self._statements[filtered_by] = Statement(model, build)
        return statement


def _encode(offset: int) -> str:
    return base64.urlsafe_b64encode(f"o{offset}".encode()).decode()


def _decode(token: str) -> int:
    if not token:
        return 0
    try:
        text = base64.urlsafe_b64decode(token.encode()).decode()
        offset = int(text[1:]) if text.startswith("o") and text[1:].isdigit() else -1
        if not 0 <= offset <= MAX_OFFSET:
            raise ValueError(text)
        return offset
    except (binascii.Error, UnicodeDecodeError, ValueError):
        raise InvalidArgument("page_token is not valid") from None
