"""The browser page, in a real headless Chromium, against the real gateway."""

from __future__ import annotations

import shutil
import subprocess
import sys

import httpx
import pytest

from tests.support.polling import wait_for
from tests.support.ports import free_port
from tests.support.processes import ROOT
from tests.support.system import BreadSystem

CHROMIUM = shutil.which("chromium")


@pytest.mark.skipif(
    CHROMIUM is None, reason="Debian's chromium is not installed (.ci/run installs it)"
)
def test_page_shows_mypage_and_bakery_tickets(system: BreadSystem, http: httpx.Client) -> None:
    placed = http.post("/orders", json={"item": "croissant", "qty": 4, "customerId": "webby"})
    order_id = placed.json()["id"]
    port = free_port()
    web = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "http.server",
            str(port),
            "--bind",
            "127.0.0.1",
            "--directory",
            str(ROOT / "web"),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        page = f"http://127.0.0.1:{port}/"
        wait_for(lambda: httpx.get(page).status_code == 200, what="the page served")
        dom = subprocess.run(
            [
                CHROMIUM or "",
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-quic",
                "--no-first-run",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                f"--user-data-dir={system.tmp / 'chromium'}",
                "--virtual-time-budget=5000",
                "--dump-dom",
                f"{page}?api={system.http}",
            ],
            capture_output=True,
            text=True,
            timeout=60,
            check=True,
        ).stdout
    finally:
        web.terminate()
        web.wait(10)
    assert "croissant (₩3,500)" in dom  # the menu, from GET /menu
    assert order_id[:8] in dom  # in the bakery's open tickets, with its buttons
    assert ">Accept<" in dom
