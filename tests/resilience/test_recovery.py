"""Recovery: pay fails until Envoy ejects it, then is healthy again. Orders succeed again with
no restart of anything, once the ejection (5 s) is over: within the ejection time plus one
health-check interval, and not before (the ejection holds even though pay's health check
passes all along)."""

from __future__ import annotations

import time

import pytest

from bread.admin.v1 import faults_pb2
from harness.invariants import wait_settled
from harness.pay_faults import BASE_EJECTION, HEALTH_CHECK_INTERVAL, SCENARIOS, set_faults
from harness.polling import wait_for
from harness.system import BreadSystem
from tests.resilience.conftest import mesh

pytestmark = pytest.mark.timeout(120)

ORDER = {"item": "donut", "qty": 2, "customerId": "recovery"}


def test_orders_succeed_again_once_the_ejection_ends(system: BreadSystem) -> None:
    pay = system.services["pay"].process
    assert pay is not None
    set_faults(system, SCENARIOS["recovery"].faults)
    codes: list[int] = []
    with system.client(timeout=5) as http:

        def place() -> int:
            codes.append(http.post("/orders", json=ORDER).status_code)
            return codes[-1]

        # Each order is tried 3 times (UNAVAILABLE is retried): the 2nd order ejects pay.
        wait_for(
            lambda: place() == 503 and mesh(system, "outlier_detection.ejections_active") == 1,
            timeout=10,
            what="pay ejected",
        )
        ejected_at = time.monotonic()
        set_faults(system, faults_pb2.Faults())

        wait_for(lambda: place() == 200, timeout=15, interval=0.05, what="an order placed")
        recovered = time.monotonic() - ejected_at
        print(f"placed again {recovered:.2f} s after the ejection")

        assert recovered <= BASE_EJECTION + HEALTH_CHECK_INTERVAL + 0.3
        assert recovered >= BASE_EJECTION - 0.5  # the ejection held; nothing reached pay
        assert set(codes[:-1]) == {503}
        assert mesh(system, "outlier_detection.ejections_enforced_total") == 1
        # Healthy again for good, with the same pay process.
        assert [place() for _ in range(20)] == [200] * 20
    assert system.services["pay"].process is pay and pay.poll() is None

    report = wait_settled(system.urls, timeout=30)
    assert report.ok, report.summary()
    assert report.orders["PAID"] == 21
    assert report.orders["FAILED"] == len(codes) - 21
