"""Mypage's rule: each status only moves forward.

Events may arrive in any order and more than once (the inbox drops exact
duplicates), so a row keeps the furthest state by rank, not the last message.
The saga ends each order in one final state, so no two finals compete.
"""

from __future__ import annotations

FINAL = 4
ORDER_RANK = {
    "PAID": 1,
    "CONFIRMED": 2,
    "CANCELING": 3,
    "DELIVERED": FINAL,
    "REJECTED": FINAL,
    "CANCELED": FINAL,
    "FAILED": FINAL,
}
PAYMENT_RANK = {"APPROVED": 1, "CANCELED": 2}
BAKERY_RANK = {"OPEN": 1, "ACCEPTED": 2, "DELIVERED": FINAL, "REJECTED": FINAL, "CLOSED": FINAL}


def advance(current: str, new: str, rank: dict[str, int]) -> str:
    return new if rank.get(new, 0) > rank.get(current, 0) else current
