"""Pay stopped: orders fail fast and are kept FAILED; pay back: orders succeed again."""

from __future__ import annotations

import pathlib
import re
import time
from collections.abc import Iterator

import pytest

from harness.polling import wait_for
from harness.system import BreadSystem, running_system


@pytest.fixture
def system(tmp_path: pathlib.Path) -> Iterator[BreadSystem]:
    with running_system(tmp_path) as bread:
        yield bread


def test_pay_down_fails_fast_and_recovers(system: BreadSystem) -> None:
    with system.client(timeout=5) as http:
        order = {"item": "cake", "qty": 1, "customerId": "down"}
        assert http.post("/orders", json=order).status_code == 200

        assert system.services["pay"].terminate() == 0
        for _ in range(5):
            started = time.monotonic()
            response = http.post("/orders", json=order)
            elapsed = time.monotonic() - started
            assert response.status_code == 503, response.text
            assert response.json()["code"] == 14  # UNAVAILABLE
            assert elapsed < 1.0
            match = re.search(r"order (\S+) is FAILED", response.json()["message"])
            assert match, response.text
            failed_id = match.group(1)
            failed = http.get(f"/orders/{failed_id}").json()
            assert failed["status"] == "ORDER_STATUS_FAILED"

        system.restart("pay")
        # Envoy's health check sees pay within an interval; then orders succeed again.
        wait_for(lambda: http.post("/orders", json=order).status_code == 200, timeout=10)

        # The failed order's OrderFailed event reached pay: a void, never a charge.
        voided = wait_for(
            lambda: http.get("/payments", params={"orderId": failed_id}).json()["payments"],
            what="void of the failed order",
        )
        assert [p["status"] for p in voided] == ["PAYMENT_STATUS_VOIDED"]
