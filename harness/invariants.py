"""Money invariants after a load, read straight from order's and pay's own databases.

The money view of the one audit (ops/audit.py), for loads without bakers. Once the saga has
settled (pay has consumed every OrderFailed):
- no order is left PENDING; each is PAID or FAILED (no baker acts during a scenario);
- a PAID order has exactly one payment, APPROVED, for its price;
- a FAILED order was never left charged: its one payment row is VOIDED (failed before pay
  charged; a late Pay is refused) or CANCELED (refunded);
- no payment exists for an order that order does not know;
- what the clients were told agrees: an order answered as placed is PAID, one answered as
  FAILED is FAILED.

Compensation is asynchronous, so `wait_settled` polls until these hold or a deadline passes,
and then reports what still does not.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from ops.audit import Expectations, Report, check, read_snapshot, wait_consistent

__all__ = ["Report", "check_money", "wait_settled"]

MONEY = frozenset({"PAID", "FAILED"})


def _money(placed: Iterable[str], failed: Iterable[str]) -> Expectations:
    return Expectations(placed=list(placed), failed=list(failed), allowed=MONEY, placed_as={"PAID"})


def _money_urls(urls: Mapping[str, str]) -> dict[str, str]:
    return {"order": urls["order"], "pay": urls["pay"]}


def check_money(
    urls: Mapping[str, str], placed: Iterable[str] = (), failed: Iterable[str] = ()
) -> Report:
    """The money invariants once, now."""
    return check(read_snapshot(_money_urls(urls)), _money(placed, failed))


def wait_settled(
    urls: Mapping[str, str],
    placed: Iterable[str] = (),
    failed: Iterable[str] = (),
    timeout: float = 30.0,
) -> Report:
    """Check until the invariants hold (compensation is asynchronous) or timeout seconds pass."""
    return wait_consistent(_money_urls(urls), _money(placed, failed), timeout)
