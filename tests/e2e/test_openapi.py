"""The OpenAPI description the edge serves, against what the edge answers: every documented
operation reaches a service (never the transcoder's 404 for a path that is no RPC), asks for a
token exactly where the document says so, and the methods it does not document are 404."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from openapi_spec_validator import validate

from harness.system import BreadSystem
from ops.envoy_config import DEFAULT_OPENAPI

METHODS = ("get", "post", "put", "delete", "patch")
# Envoy's router sets it on every answer that came from an upstream (a service), never on the
# answers Envoy makes itself: jwt_authn's 401, the transcoder's 404.
FROM_A_SERVICE = "x-envoy-upstream-service-time"


@pytest.fixture(scope="module")
def anonymous(system: BreadSystem) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=system.http, timeout=5) as client:
        yield client


@pytest.fixture(scope="module")
def doc(anonymous: httpx.Client) -> dict[str, Any]:
    response = anonymous.get("/openapi.json")
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "application/json"
    assert response.headers["x-content-type-options"] == "nosniff"
    return dict(response.json())


def operations(doc: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    """(method, path with its variables filled in, operation) of every documented operation."""
    return [
        (verb, re.sub(r"\{[^}]*\}", "no-such-id", path), operation)
        for path, by_verb in doc["paths"].items()
        for verb, operation in by_verb.items()
    ]


def test_the_served_document_is_the_generated_one_and_valid(
    anonymous: httpx.Client, doc: dict[str, Any]
) -> None:
    assert doc == json.loads(DEFAULT_OPENAPI.read_text())
    validate(doc)
    head = anonymous.head("/openapi.json")
    assert head.status_code == 200 and head.content == b""
    # Only reads: a POST there is no request for the document (and no RPC either).
    assert anonymous.post("/openapi.json", json={}).status_code == 404


def test_every_documented_operation_reaches_a_service(
    http: httpx.Client, doc: dict[str, Any]
) -> None:
    for verb, path, operation in operations(doc):
        body: dict[str, str] | None = {} if "requestBody" in operation else None
        response = http.request(verb, path, json=body)
        where = f"{verb.upper()} {path}: {response.status_code} {response.text}"
        assert FROM_A_SERVICE in response.headers, where
        # A service's own answer: found, refused as bad input, or not found (no-such-id).
        assert response.status_code in (200, 400, 404), where


def test_a_token_is_needed_exactly_where_documented(
    system: BreadSystem, anonymous: httpx.Client, doc: dict[str, Any]
) -> None:
    forged = {"authorization": "Bearer " + system.token().rsplit(".", 1)[0] + ".AAAA"}
    for verb, path, operation in operations(doc):
        public = operation.get("security") == []
        for headers in ({}, forged):
            response = anonymous.request(verb, path, headers=headers)
            where = f"{verb.upper()} {path} {headers}: {response.status_code}"
            if public:  # a token, even a forged one, is not looked at
                assert response.status_code == 200 and FROM_A_SERVICE in response.headers, where
            else:
                assert response.status_code == 401, where
                assert FROM_A_SERVICE not in response.headers, where


def test_undocumented_methods_are_no_route(http: httpx.Client, doc: dict[str, Any]) -> None:
    for path, by_verb in doc["paths"].items():
        filled = re.sub(r"\{[^}]*\}", "no-such-id", path)
        for verb in set(METHODS) - set(by_verb):
            response = http.request(verb, filled)
            where = f"{verb.upper()} {filled}: {response.status_code} {response.text}"
            assert response.status_code == 404, where
            assert FROM_A_SERVICE not in response.headers, where
