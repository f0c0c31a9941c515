"""order dies while its Pay call is in flight: after a restart the order is not left
dangling (the sweeper fails it) and pay ends with no charge for it."""

from __future__ import annotations

import contextlib
import pathlib
import sqlite3
import threading

import grpc

from bread.admin.v1 import faults_pb2, faults_pb2_grpc
from bread.order.v1 import order_pb2, order_pb2_grpc
from harness.polling import wait_for
from harness.system import running_system


def test_order_killed_mid_payment_is_failed_and_never_charged(tmp_path: pathlib.Path) -> None:
    with running_system(tmp_path) as system:
        with grpc.insecure_channel(f"127.0.0.1:{system.services['pay'].port}") as pay:
            faults_pb2_grpc.FaultInjectionStub(pay).SetFaults(
                faults_pb2.Faults(delay_min_ms=500, delay_max_ms=500), timeout=5
            )
        orders_db = system.urls["order"].removeprefix("sqlite:///")

        def pending() -> list[str]:
            with sqlite3.connect(orders_db) as db:
                return [r[0] for r in db.execute("SELECT id FROM orders WHERE status = 1")]

        def place() -> None:
            with system.channel() as channel:
                request = order_pb2.PlaceOrderRequest(item="cake", qty=1, customer_id="crash")
                with contextlib.suppress(grpc.RpcError):  # the order service dies under it
                    order_pb2_grpc.OrderServiceStub(channel).PlaceOrder(request, timeout=5)

        caller = threading.Thread(target=place)
        caller.start()
        (order_id,) = wait_for(pending, timeout=5, what="the order stored, its Pay in flight")
        system.services["order"].kill()
        caller.join()
        system.restart("order")

        with system.client(timeout=5) as http:

            def failed_order() -> dict | None:
                order = http.get(f"/orders/{order_id}").json()
                return order if order["status"] == "ORDER_STATUS_FAILED" else None

            failed = wait_for(failed_order, timeout=20, what="the sweeper failing the order")
            assert failed["reason"] == "payment outcome unknown"
            payments = wait_for(
                lambda: http.get("/payments", params={"orderId": order_id}).json()["payments"],
                what="pay's answer to OrderFailed",
            )
            assert len(payments) == 1
            assert payments[0]["status"] in ("PAYMENT_STATUS_VOIDED", "PAYMENT_STATUS_CANCELED")
