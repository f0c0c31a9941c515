"""python -m order_svc"""

import os

from bread.order.v1 import order_pb2_grpc
from order_svc.menu import load_menu
from order_svc.migrations import SCHEMA
from order_svc.orders import Orders
from order_svc.pay_client import PayClient
from order_svc.servicer import OrderServicer
from order_svc.spec import SPEC
from servicekit.server import Runtime, Wiring, main


def wire(runtime: Runtime) -> Wiring:
    pay = PayClient(
        target=os.environ.get("PAY_TARGET", "127.0.0.1:8090"),
        # Envoy's route timeout (610 ms) fires first; this bounds a hung mesh.
        timeout_seconds=float(os.environ.get("PAY_TIMEOUT_SECONDS", "1.0")),
    )
    orders = Orders(runtime.db, runtime.outbox, load_menu(), pay)
    return Wiring(
        servicers=[(order_pb2_grpc.add_OrderServiceServicer_to_server, OrderServicer(orders))],
        handlers=orders.handlers(),
        background=[orders.sweep_stale_payments],
    )


if __name__ == "__main__":
    main(SPEC, SCHEMA, wire)
