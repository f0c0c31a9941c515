"""Envoy's stats listener (Kubernetes: Prometheus scrapes the gateway through it): GET
/stats/prometheus is the admin API's; every other path and method is refused, so nothing
there can drain, reconfigure or stop Envoy."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from harness.envoy import EnvoyProcess, start_envoy
from harness.ports import free_port
from ops.envoy_config import EnvoyTopology
from ops.tokens import DevIssuer


@pytest.fixture(scope="module")
def envoy(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EnvoyProcess]:
    tmp = tmp_path_factory.mktemp("envoy-stats")
    topology = EnvoyTopology(
        edge_port=0,
        mesh_port=0,
        # The stats listener's cluster is the admin API: its port must be known up front.
        admin_port=free_port(),
        stats_port=0,
        listen_address="127.0.0.1",
        jwks_path=DevIssuer(tmp / "keys").ensure_keys().jwks_path,
    )
    with start_envoy(topology, Path(tmp)) as process:
        yield process


@pytest.fixture(scope="module")
def stats_url(envoy: EnvoyProcess) -> str:
    listeners = httpx.get(envoy.admin_url + "/listeners?format=json", timeout=2).json()
    [port] = [
        s["local_address"]["socket_address"]["port_value"]
        for s in listeners["listener_statuses"]
        if s["name"] == "stats"
    ]
    return f"http://127.0.0.1:{port}"


def test_prometheus_gets_envoys_stats(stats_url: str) -> None:
    response = httpx.get(stats_url + "/stats/prometheus", timeout=5)
    assert response.status_code == 200
    assert 'envoy_cluster_upstream_rq_total{envoy_cluster_name="pay_mesh"}' in response.text


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/clusters"),
        ("GET", "/config_dump"),
        ("GET", "/stats"),
        ("POST", "/stats/prometheus"),
        ("POST", "/drain_listeners?graceful"),
        ("POST", "/healthcheck/fail"),
        ("POST", "/quitquitquit"),
    ],
)
def test_nothing_else_of_the_admin_api_is_reachable(
    envoy: EnvoyProcess, stats_url: str, method: str, path: str
) -> None:
    response = httpx.request(method, stats_url + path, timeout=5)
    assert response.status_code == 404
    assert envoy.process.poll() is None
    assert httpx.get(envoy.admin_url + "/ready", timeout=2).text.strip() == "LIVE"
