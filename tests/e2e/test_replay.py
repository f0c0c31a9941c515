"""The Mypage read model can be rebuilt from scratch by replaying the event log."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys

import httpx

from harness.polling import wait_for
from harness.processes import ROOT
from harness.system import BreadSystem

COLUMNS = (
    "order_id, customer_id, item, qty, price, order_status, payment_id, payment_status,"
    " bakery_status, reason"
)


def mypages(url: str) -> list[tuple]:
    with sqlite3.connect(url.removeprefix("sqlite:///")) as db:
        return db.execute(f"SELECT {COLUMNS} FROM mypages ORDER BY order_id").fetchall()


def test_rebuild_from_the_log_equals_the_live_read_model(
    system: BreadSystem, http: httpx.Client
) -> None:
    placed = [
        http.post("/orders", json={"item": "cake", "qty": n, "customerId": "replay"}).json()["id"]
        for n in (1, 2, 3)
    ]
    wait_for(lambda: http.get(f"/bakeries/{placed[0]}").status_code == 200)
    http.post(f"/bakeries/{placed[0]}:accept", json={})
    http.post(f"/orders/{placed[1]}:cancel", json={})
    live_url = system.urls["customer"]

    def settled() -> bool:
        rows = {row[0]: row for row in mypages(live_url)}
        order_status, payment_status = 5, 7  # positions in COLUMNS
        return (
            placed[0] in rows
            and placed[1] in rows
            and rows[placed[0]][order_status] == "CONFIRMED"
            and rows[placed[1]][payment_status] == "CANCELED"
        )

    wait_for(settled, what="live Mypage settled")

    rebuilt_url = f"sqlite:///{system.tmp}/rebuilt-customer.db"
    env = {**os.environ, **system.env("customer"), "DATABASE_URL": rebuilt_url}
    result = subprocess.run(
        [sys.executable, "-m", "customer_svc.rebuild", "--reset"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    assert "applied" in result.stdout
    assert mypages(rebuilt_url) == mypages(live_url)
