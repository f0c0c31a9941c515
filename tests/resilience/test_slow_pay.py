"""Slow pay, the reference's siege scenario, short: 100 clients flat out for 5 s while every
Pay takes 400-620 ms and the mesh cuts a call at 610 ms.

Nobody waits much past the timeout, overflow beyond the breakers is refused at once with 503
(and creates no order), a slow pay is not ejected, and the money adds up: every failed order
FAILED and not charged once compensated, every placed one PAID with exactly one payment.
"""

from __future__ import annotations

import pytest

from harness.invariants import wait_settled
from harness.load import LoadConfig, run
from harness.pay_faults import SCENARIOS, set_faults
from harness.system import BreadSystem
from tests.resilience.conftest import edge_overflow, mesh

pytestmark = pytest.mark.timeout(120)


def test_slow_pay_seed_scenario(system: BreadSystem) -> None:
    set_faults(system, SCENARIOS["slow-pay"].faults)
    overflow_before = edge_overflow(system)

    result = run(
        LoadConfig(
            target=system.gateway,
            protocol="http",
            concurrency=100,
            duration=5.0,
            customer_id="slow",
            token=system.token(),
        )
    )
    print(result.summary("slow pay"))

    assert set(result.statuses) <= {200, 503, 504}, result.codes
    assert result.count(200) > 100, result.codes  # pay is slow, not gone: ~100 orders/s
    assert result.longest <= 1.0, f"longest {result.longest:.3f} s"
    # A 504 is a call cut at the 610 ms timeout (its outcome unknown to order: compensated).
    assert all(
        lat >= 0.6 for lat, s in zip(result.latencies, result.statuses, strict=True) if s == 504
    )

    # Overflow: refused by a breaker, at once, and every 503 is one of those.
    overflowed = edge_overflow(system) - overflow_before
    assert overflowed > 0 and result.count(503) == overflowed, (overflowed, result.codes)
    assert result.percentile(95, lambda s: s == 503) <= 0.1
    assert (
        max(lat for lat, s in zip(result.latencies, result.statuses, strict=True) if s == 503) < 0.6
    )
    # Timeouts in a slow pay must not eject it (it would turn every order into a failure).
    assert mesh(system, "outlier_detection.ejections_enforced_total") == 0

    report = wait_settled(system.urls, result.placed, result.failed_orders, timeout=30)
    assert report.ok, report.summary()
    assert report.orders["PAID"] == result.count(200)
    # Overflow at the edge never reaches order: only timeouts leave FAILED orders behind.
    assert report.orders["FAILED"] == result.count(504)
