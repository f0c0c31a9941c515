"""One id per request: the edge sets x-request-id (a client's own is replaced), returns it
and writes it into its JSON access log with the gRPC status (the services log it too:
tests/unit/test_logs.py)."""

from __future__ import annotations

import json

import grpc
import httpx
import pytest

from bread.order.v1 import order_pb2, order_pb2_grpc
from harness.polling import wait_for
from harness.system import BreadSystem


def access_log(system: BreadSystem) -> list[dict]:
    assert system.envoy is not None
    lines = system.envoy.log_path.read_text(errors="replace").splitlines()
    return [json.loads(line) for line in lines if line.startswith('{"')]


def test_the_edge_returns_and_logs_one_request_id(system: BreadSystem, http: httpx.Client) -> None:
    response = http.get("/orders/no-such-order", headers={"x-request-id": "chosen-by-client"})
    assert response.status_code == 404
    request_id = response.headers["x-request-id"]
    assert request_id and request_id != "chosen-by-client"

    def logged() -> dict | None:
        return next((e for e in access_log(system) if e["request_id"] == request_id), None)

    entry = wait_for(logged, what="the access log line")
    assert entry["path"] == "/orders/no-such-order" and entry["status"] == 404
    assert entry["caller"] == "tester" and entry["flags"] == "-"


def test_a_grpc_call_is_logged_with_its_grpc_status(system: BreadSystem) -> None:
    with system.channel() as channel, pytest.raises(grpc.RpcError) as raised:
        order_pb2_grpc.OrderServiceStub(channel).GetOrder(
            order_pb2.GetOrderRequest(id="no-such-order"), timeout=5
        )
    error = raised.value
    assert error.code() == grpc.StatusCode.NOT_FOUND
    # An error is trailers-only: the response headers arrive with the trailers.
    metadata = dict(error.initial_metadata()) | dict(error.trailing_metadata())
    request_id = metadata["x-request-id"]

    def logged() -> dict | None:
        return next((e for e in access_log(system) if e["request_id"] == request_id), None)

    entry = wait_for(logged, what="the access log line")
    assert entry["path"] == "/bread.order.v1.OrderService/GetOrder"
    assert entry["grpc_status"] == grpc.StatusCode.NOT_FOUND.value[0]
