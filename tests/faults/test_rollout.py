"""Zero-downtime rollout under load: two order replicas behind Envoy replaced one at
a time (ops.rollout, the same code `make rollout` runs), while 30 clients mix
GET /orders/{id} and POST /orders. A control run without draining must fail."""

from __future__ import annotations

import pathlib
import threading
import time
from collections.abc import Iterator

import pytest

from bench.load import LoadConfig, LoadResult, run
from ops.rollout import envoy_routes_to, health_serving, rollout
from order_svc.spec import SPEC
from tests.support.system import BreadSystem, ProcessSlots, running_system


def system_with(tmp: pathlib.Path, drain: str, grace: str) -> Iterator[BreadSystem]:
    env = {"order": {"DRAIN_SECONDS": drain, "STOP_GRACE_SECONDS": grace}}
    with running_system(tmp, replicas={"order": 2}, extra_env=env) as system:
        yield system


def roll_order_under_load(system: BreadSystem, load_seconds: float) -> tuple[LoadResult, float]:
    """Run the load, roll order out in the middle of it; return the load and when rollout ended."""
    results: list[LoadResult] = []
    load = threading.Thread(
        target=lambda: results.append(
            run(
                LoadConfig(
                    target=system.gateway,
                    protocol="http",
                    mix="mixed",
                    concurrency=30,
                    duration=load_seconds,
                    timeout=10,
                    token=system.token(),
                )
            )
        )
    )
    started = time.monotonic()
    load.start()
    time.sleep(1.0)  # the load is running before the first replica is replaced
    assert system.envoy is not None
    admin = system.envoy.admin_url
    rollout(
        ProcessSlots(system, "order"),
        serving=lambda port: health_serving(port, SPEC.readiness_name),
        routed=lambda port: envoy_routes_to(admin, port),
        say=lambda _: None,
    )
    rolled_at = time.monotonic() - started
    load.join()
    return results[0], rolled_at


@pytest.fixture
def draining(tmp_path: pathlib.Path) -> Iterator[BreadSystem]:
    yield from system_with(tmp_path, drain="3", grace="10")


@pytest.fixture
def not_draining(tmp_path: pathlib.Path) -> Iterator[BreadSystem]:
    yield from system_with(tmp_path, drain="0", grace="0")


def test_rollout_with_draining_loses_nothing(draining: BreadSystem) -> None:
    result, rolled_at = roll_order_under_load(draining, load_seconds=22)
    assert rolled_at < 21, "the whole rollout must happen under load"
    assert result.requests > 500
    assert result.failed == 0 and result.availability == 100.0, result.summary("rollout")
    old_ports = set(draining.slots["order"][:2])
    running = set(ProcessSlots(draining, "order").running())
    assert len(running) == 2 and running != old_ports  # both replicas are new processes


def test_control_rollout_without_draining_drops_requests(not_draining: BreadSystem) -> None:
    result, _ = roll_order_under_load(not_draining, load_seconds=10)
    assert result.failed > 0, result.summary("control")
