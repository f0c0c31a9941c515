"""A client of bread through the edge, with the generated Python stubs: place an order,
follow its Mypage row, cancel it, and see how the saga ends.

    TOKEN=$(make -s token ROLE=customer SUB=alice | tail -1)
    .venv/bin/python -m examples.client --token "$TOKEN"            # against `make run`

The stubs are the `bread` package that `make proto` generates from protos/ (run it from
the repository's root as above, or put that directory on PYTHONPATH).
"""

from __future__ import annotations

import argparse
import sys
import time
import uuid
from collections.abc import Callable
from typing import TypeVar

import grpc

from bread.customer.v1 import mypage_pb2, mypage_pb2_grpc
from bread.order.v1 import order_pb2, order_pb2_grpc

T = TypeVar("T")


def until(probe: Callable[[], T | None], seconds: float = 15.0) -> T:
    """Poll probe until it answers (events reach Mypage a moment after the call)."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if (answer := probe()) is not None:
            return answer
        time.sleep(0.2)
    raise TimeoutError(f"no answer within {seconds:g} s")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--target", default="localhost:8088", help="the edge, host:port")
    parser.add_argument("--token", required=True, help="a bearer token (make token)")
    parser.add_argument("--item", default="croissant")
    parser.add_argument("--qty", type=int, default=2)
    args = parser.parse_args(argv)
    signed_in = (("authorization", f"Bearer {args.token}"),)

    with grpc.insecure_channel(args.target) as channel:
        orders = order_pb2_grpc.OrderServiceStub(channel)
        mypages = mypage_pb2_grpc.MypageServiceStub(channel)

        def mypage(order_id: str, *statuses: str) -> mypage_pb2.Mypage | None:
            try:
                row = mypages.GetMypage(
                    mypage_pb2.GetMypageRequest(order_id=order_id), metadata=signed_in, timeout=5
                )
            except grpc.RpcError as error:
                if error.code() == grpc.StatusCode.NOT_FOUND:  # not projected yet
                    return None
                raise
            return row if not statuses or row.order_status in statuses else None

        # A request id makes a retry of this call safe: it gives back the same order.
        request = order_pb2.PlaceOrderRequest(
            item=args.item, qty=args.qty, request_id=str(uuid.uuid4())
        )
        order = orders.PlaceOrder(request, metadata=signed_in, timeout=5)
        status = order_pb2.OrderStatus.Name(order.status)
        print(f"placed {order.id}: {order.qty} x {order.item}, {order.price} won, {status}")
        row = until(lambda: mypage(order.id))
        print(f"Mypage: order {row.order_status}, payment {row.payment_status}")

        canceling = orders.CancelOrder(
            order_pb2.CancelOrderRequest(id=order.id, reason="changed my mind"),
            metadata=signed_in,
            timeout=5,
        )
        print(f"cancel asked: {order_pb2.OrderStatus.Name(canceling.status)}")
        # The bakery answers: closed (CANCELED, refunded) or too late (DELIVERED).
        row = until(lambda: mypage(order.id, "CANCELED", "DELIVERED", "REJECTED"))
        print(
            f"Mypage: order {row.order_status}, payment {row.payment_status},"
            f" bakery {row.bakery_status}: {row.reason}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
