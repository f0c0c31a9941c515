"""examples/client.py, the README's generated-stubs client, against a real system."""

from __future__ import annotations

import subprocess
import sys

from harness.processes import ROOT
from harness.system import BreadSystem


def test_the_example_client_orders_follows_and_cancels(system: BreadSystem) -> None:
    token = system.token("customer", "example")
    done = subprocess.run(
        [sys.executable, "-m", "examples.client", "--target", system.gateway, "--token", token],
        cwd=ROOT,  # as the README runs it
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert "ORDER_STATUS_PAID" in lines[0]
    assert lines[2] == "cancel asked: ORDER_STATUS_CANCELING"
    assert lines[3].startswith("Mypage: order CANCELED, payment CANCELED, bakery CLOSED")
