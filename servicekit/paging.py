"""Page tokens for List RPCs (AIP-158): opaque, validated, capped page sizes."""

from __future__ import annotations

import base64
import binascii

import peewee

from servicekit.errors import InvalidArgument

DEFAULT_PAGE_SIZE = 20
MAX_PAGE_SIZE = 100
# Further than any list goes; a tampered token asking for more is invalid, not an overflow.
MAX_OFFSET = 10_000_000


def page(query: peewee.Query, page_size: int, page_token: str) -> tuple[list, str]:
    """One page of query's rows and the token of the next page ("" at the end)."""
    if page_size < 0:
        raise InvalidArgument("page_size must not be negative")
    size = min(page_size or DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE)
    offset = _decode(page_token)
    rows = list(query.offset(offset).limit(size + 1))
    next_token = _encode(offset + size) if len(rows) > size else ""
    return rows[:size], next_token


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
