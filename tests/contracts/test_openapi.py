"""The OpenAPI description `make proto` writes: valid OpenAPI, exactly the routes the edge
transcodes, small enough for the edge to serve, and its generator refuses what it cannot
describe. tests/e2e/test_openapi.py checks it against what the running edge answers."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml
from google.api import annotations_pb2
from google.protobuf import descriptor_pb2, descriptor_pool
from openapi_spec_validator import validate

# Imported for their services in the default descriptor pool (the transcoder's list).
import bread.bakery.v1.bakery_pb2
import bread.customer.v1.mypage_pb2
import bread.order.v1.order_pb2
import bread.pay.v1.pay_pb2  # noqa: F401
from ops.envoy_config import DEFAULT_OPENAPI, EnvoyTopology, render
from scripts.gen_openapi import PUBLIC_METHODS, Unsupported, document

DESCRIPTOR_SET = DEFAULT_OPENAPI.parent / "bread.pb"


def load(path: Path = DEFAULT_OPENAPI) -> dict[str, Any]:
    return dict(json.loads(path.read_text()))


def edge_config() -> dict[str, Any]:
    (edge,) = [
        listener
        for listener in yaml.safe_load(render(EnvoyTopology()))["static_resources"]["listeners"]
        if listener["name"] == "edge"
    ]
    return dict(edge["filter_chains"][0]["filters"][0]["typed_config"])


def transcoded_routes() -> dict[tuple[str, str], str]:
    """(HTTP method, path) -> RPC of every route the edge's JSON transcoder serves."""
    (transcoder,) = [
        f["typed_config"]
        for f in edge_config()["http_filters"]
        if f["name"] == "envoy.filters.http.grpc_json_transcoder"
    ]
    routes = {}
    for name in transcoder["services"]:
        for method in descriptor_pool.Default().FindServiceByName(name).methods:
            options = method.GetOptions()
            if options.HasExtension(annotations_pb2.http):
                rule = options.Extensions[annotations_pb2.http]
                verb = rule.WhichOneof("pattern")
                routes[(verb, getattr(rule, verb))] = method.full_name
    return routes


def documented(doc: dict[str, Any]) -> dict[tuple[str, str], dict[str, Any]]:
    return {
        (verb, path): operation
        for path, operations in doc["paths"].items()
        for verb, operation in operations.items()
    }


def test_the_document_is_valid_openapi() -> None:
    doc = load()
    validate(doc)
    assert doc["openapi"].startswith("3.1.")


def test_it_documents_exactly_the_routes_the_edge_transcodes() -> None:
    routes = transcoded_routes()
    operations = documented(load())
    assert set(operations) == set(routes)
    assert ("post", "/orders") in routes and ("get", "/mypages/{order_id}") in routes
    for route, rpc in routes.items():
        service, method = rpc.rsplit(".", 1)
        assert operations[route]["operationId"] == f"{service.rsplit('.', 1)[1]}_{method}"
    # Pay and CancelPayment have no route at the edge, so no place here either.
    assert not any("Pay_" in op["operationId"] for op in operations.values())


def test_only_the_menu_is_documented_as_needing_no_token() -> None:
    doc = load()
    assert doc["security"] == [{"bearer": []}]
    public = {op["operationId"] for op in documented(doc).values() if op.get("security") == []}
    assert public == {"OrderService_GetMenu"}
    assert {"bread.order.v1.OrderService.GetMenu"} == PUBLIC_METHODS


def test_the_json_mapping_is_the_transcoders() -> None:
    """lowerCamelCase names, int64 as a string, enums by name, Timestamps as RFC 3339."""
    schemas = load()["components"]["schemas"]
    order = schemas["bread.order.v1.Order"]["properties"]
    assert order["unitPrice"] == {
        "type": "string",
        "format": "int64",
        "description": "Prices are integer won.",
    }
    assert order["createTime"] == {"type": "string", "format": "date-time"}
    assert order["status"] == {"$ref": "#/components/schemas/bread.order.v1.OrderStatus"}
    assert "ORDER_STATUS_PAID" in schemas["bread.order.v1.OrderStatus"]["enum"]
    place = documented(load())[("post", "/orders")]
    body = place["requestBody"]["content"]["application/json"]["schema"]["properties"]
    assert set(body) == {"item", "qty", "customerId", "requestId"}
    cancel = documented(load())[("post", "/orders/{id}:cancel")]
    assert [p["name"] for p in cancel["parameters"]] == ["id"]  # the rest is the body
    body = cancel["requestBody"]["content"]["application/json"]["schema"]["properties"]
    assert set(body) == {"reason"}
    listing = documented(load())[("get", "/orders")]
    assert [(p["name"], p["in"]) for p in listing["parameters"]] == [
        ("customerId", "query"),
        ("pageSize", "query"),
        ("pageToken", "query"),
    ]


def test_the_edge_can_serve_it() -> None:
    """Envoy refuses to load a direct response body over the route config's bound."""
    limit = edge_config()["route_config"]["max_direct_response_body_size_bytes"]
    assert DEFAULT_OPENAPI.stat().st_size < limit


def descriptor_files() -> list[descriptor_pb2.FileDescriptorProto]:
    return list(descriptor_pb2.FileDescriptorSet.FromString(DESCRIPTOR_SET.read_bytes()).file)


def test_generating_again_gives_the_same_document() -> None:
    assert document(descriptor_files()) == load()


def get_order_rule(files: list[descriptor_pb2.FileDescriptorProto]) -> Any:
    (order,) = [f for f in files if f.name == "bread/order/v1/order.proto"]
    (method,) = [m for m in order.service[0].method if m.name == "GetOrder"]
    return method.options.Extensions[annotations_pb2.http]


@pytest.mark.parametrize(
    "change",
    [
        lambda rule: rule.additional_bindings.add(get="/v2/orders/{id}"),
        lambda rule: setattr(rule, "get", "/orders/{name=orders/*}"),
        lambda rule: setattr(rule, "body", "id"),
        lambda rule: rule.custom.SetInParent(),
    ],
    ids=["additional binding", "path pattern", "body field", "custom verb"],
)
def test_the_generator_refuses_what_it_cannot_describe(change: Any) -> None:
    files = descriptor_files()
    change(get_order_rule(files))
    with pytest.raises(Unsupported):
        document(files)
