"""Locally, the edge is the only thing a neighbour can reach: services, the mesh listener
and Envoy's admin bind to loopback unless told otherwise."""

from typing import Any

import yaml

from ops.envoy_config import EnvoyTopology, render
from servicekit.settings import Settings


def rendered(topology: EnvoyTopology) -> Any:
    # libyaml's loader: a tenth of safe_load's time on the rendered config (fast tests).
    return yaml.load(render(topology), Loader=yaml.CSafeLoader)


def test_services_bind_to_loopback_by_default() -> None:
    assert Settings.from_env("order", 8081, {}).grpc_bind == "127.0.0.1"
    assert Settings.from_env("order", 8081, {"GRPC_BIND": "0.0.0.0"}).grpc_bind == "0.0.0.0"


def test_only_the_edge_listens_beyond_loopback_in_make_run() -> None:
    config = rendered(EnvoyTopology())
    addresses = {
        listener["name"]: listener["address"]["socket_address"]["address"]
        for listener in config["static_resources"]["listeners"]
    }
    assert addresses == {"edge": "0.0.0.0", "mesh": "127.0.0.1"}
    assert config["admin"]["address"]["socket_address"]["address"] == "127.0.0.1"


def test_cors_admits_only_configured_origins() -> None:
    def origins(topology: EnvoyTopology) -> list:
        config = rendered(topology)
        edge = config["static_resources"]["listeners"][0]
        manager = edge["filter_chains"][0]["filters"][0]["typed_config"]
        host = manager["route_config"]["virtual_hosts"][0]
        return list(
            host["typed_per_filter_config"]["envoy.filters.http.cors"]["allow_origin_string_match"]
        )

    assert origins(EnvoyTopology()) == []
    assert origins(EnvoyTopology(cors_origins=("https://shop.example",))) == [
        {"exact": "https://shop.example"}
    ]
