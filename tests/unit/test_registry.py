"""servicekit/registry.py and the repository agree: every `*_svc` package is registered,
everything registered has its package, spec and Kubernetes manifest, and the Envoy config
follows the registry, so a fifth service needs no edit elsewhere (docs/adding-a-service.md)."""

from __future__ import annotations

import importlib
import pathlib
from typing import Any

import pytest
import yaml

from ops import envoy_config
from ops.run import slot_ports
from servicekit import registry
from servicekit.registry import SERVICES, Edge, Service

ROOT = pathlib.Path(__file__).resolve().parents[2]
K8S_BASE = ROOT / "k8s" / "base"
# Ports bread's own processes take besides the services' (README: Ports).
OTHER_PORTS = {8085, 8088, 8090, 9901}


def test_every_service_package_is_registered_and_nothing_else() -> None:
    packages = {path.parent.name for path in ROOT.glob("*_svc/__init__.py")}
    assert packages == {service.package for service in SERVICES}


@pytest.mark.parametrize("service", SERVICES, ids=registry.NAMES)
def test_a_registered_service_has_its_package(service: Service) -> None:
    for module in ("__main__.py", "spec.py"):
        assert (ROOT / service.package / module).is_file(), f"{service.package}/{module}"
    spec = importlib.import_module(f"{service.package}.spec").SPEC
    assert (spec.name, spec.default_port, spec.readiness_name) == (
        service.name,
        service.port,
        service.api,
    )
    proto = importlib.import_module(service.proto_module)
    assert service.api in {s.full_name for s in proto.DESCRIPTOR.services_by_name.values()}


@pytest.mark.parametrize("service", SERVICES, ids=registry.NAMES)
def test_a_registered_service_has_its_kubernetes_manifest(service: Service) -> None:
    manifest = f"services/{service.name}.yaml"
    assert (K8S_BASE / manifest).is_file()
    assert manifest in yaml.safe_load((K8S_BASE / "kustomization.yaml").read_text())["resources"]


def test_names_and_ports_are_unique_with_the_rollout_slots() -> None:
    assert len(set(registry.NAMES)) == len(SERVICES)
    ports = [port for service in SERVICES for port in slot_ports(service.name)]
    assert len(set(ports)) == len(ports)
    assert not set(ports) & OTHER_PORTS


def test_internal_methods_exist() -> None:
    for service in SERVICES:
        if service.edge:
            proto = importlib.import_module(service.proto_module)
            (api,) = (
                s for s in proto.DESCRIPTOR.services_by_name.values() if s.full_name == service.api
            )
            assert set(service.edge.internal_methods) <= set(api.methods_by_name)


def test_an_unknown_name_says_what_is_registered() -> None:
    with pytest.raises(KeyError, match="registered are order, pay, bakery, customer"):
        registry.service("delivery")


# ------------------------------------------------------------------------------ a fifth service

DELIVERY = Service(
    "delivery",
    8086,
    "bread.delivery.v1.DeliveryService",
    "bread.delivery.v1.delivery_pb2",
    edge=Edge(probe="/deliveries", internal_methods=("Assign",), roles=("courier", "operator")),
)


def rendered_with_a_fifth_service(monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    services = (*SERVICES, DELIVERY)
    monkeypatch.setattr(registry, "SERVICES", services)
    monkeypatch.setattr(registry, "NAMES", tuple(s.name for s in services))
    text = envoy_config.render(
        envoy_config.EnvoyTopology(upstreams=envoy_config.default_upstreams())
    )
    config: dict[str, Any] = yaml.safe_load(text)
    return config


def test_the_envoy_config_follows_the_registry(monkeypatch: pytest.MonkeyPatch) -> None:
    config = rendered_with_a_fifth_service(monkeypatch)
    (edge, _mesh) = config["static_resources"]["listeners"]
    manager = edge["filter_chains"][0]["filters"][0]["typed_config"]
    routes = manager["route_config"]["virtual_hosts"][0]["routes"]
    filters = {f["name"]: f["typed_config"] for f in manager["http_filters"]}
    clusters = {c["name"]: c for c in config["static_resources"]["clusters"]}

    prefix = "/bread.delivery.v1.DeliveryService/"
    assert {
        "match": {"prefix": prefix},
        "route": {"cluster": "delivery", "timeout": "5s"},
    } in routes
    assert {"path": prefix + "Assign"} in [r["match"] for r in routes if "direct_response" in r]
    transcoded = filters["envoy.filters.http.grpc_json_transcoder"]["services"]
    assert DELIVERY.api in transcoded
    cluster = clusters["delivery"]
    assert cluster["health_checks"][0]["grpc_health_check"] == {"service_name": DELIVERY.api}
    endpoint = cluster["load_assignment"]["endpoints"][0]["lb_endpoints"][0]["endpoint"]
    assert endpoint["address"]["socket_address"]["port_value"] == 8086

    policies = filters["envoy.filters.http.rbac"]["rules"]["policies"]
    assert {
        p["header"]["string_match"]["exact"] for p in policies["delivery-staff"]["principals"]
    } == {
        "courier",
        "operator",
    }
    # Two restricted APIs: everything else is neither.
    (rule,) = policies["everything-else"]["permissions"]
    assert len(rule["and_rules"]["rules"]) == 2
