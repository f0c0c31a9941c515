"""Zero-downtime rollout under load: two replicas of every service behind Envoy (on server
databases: two writers on one SQLite file would fail), each service's replicas replaced one
at a time and the four services one after another (ops.rollout, the same code `make rollout`
runs), while 30 clients mix GET /orders/{id} and POST /orders. Anything but a 2xx is a
failure, and every order ends consistent in all four databases. A control run without
draining must lose requests."""

from __future__ import annotations

import pathlib
import threading
import time
from collections.abc import Iterator, Sequence

import pytest

from harness.load import LoadConfig, LoadResult, run
from harness.system import BreadSystem, ProcessSlots, running_system
from ops.audit import Expectations, readiness_name, wait_consistent
from ops.rollout import envoy_routes_to, health_serving, rollout
from servicekit.registry import NAMES


def system_with(
    tmp: pathlib.Path, drain: str, grace: str, services: Sequence[str]
) -> Iterator[BreadSystem]:
    env = {name: {"DRAIN_SECONDS": drain, "STOP_GRACE_SECONDS": grace} for name in services}
    replicas = {name: 2 for name in services}
    with running_system(tmp, replicas=replicas, extra_env=env) as system:
        yield system


def roll_under_load(
    system: BreadSystem, services: Sequence[str], load_seconds: float
) -> tuple[LoadResult, float]:
    """Run the load, roll the services out one after another in the middle of it; return the
    load and when the last rollout ended (seconds after the load started)."""
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
    admin = system.admin_url
    for name in services:
        rollout(
            ProcessSlots(system, name),
            serving=lambda port, name=name: health_serving(port, readiness_name(name)),  # type: ignore[misc]
            routed=lambda port: envoy_routes_to(admin, port),
            say=lambda _: None,
        )
    rolled_at = time.monotonic() - started
    load.join()
    return results[0], rolled_at


@pytest.fixture
def draining(tmp_path: pathlib.Path) -> Iterator[BreadSystem]:
    yield from system_with(tmp_path, drain="3", grace="10", services=NAMES)


@pytest.fixture
def not_draining(tmp_path: pathlib.Path) -> Iterator[BreadSystem]:
    yield from system_with(tmp_path, drain="0", grace="0", services=["order"])


def test_rollout_of_every_service_with_draining_loses_nothing(draining: BreadSystem) -> None:
    old = {name: set(draining.slots[name][:2]) for name in NAMES}
    result, rolled_at = roll_under_load(draining, NAMES, load_seconds=66)
    print(result.summary("rollout"), f"\nrolled out in {rolled_at:.1f} s")
    assert rolled_at < 65, f"the whole rollout must happen under load ({rolled_at:.0f} s)"
    assert result.requests > 2000
    assert result.not_ok == 0, result.summary("rollout")
    for name in NAMES:
        running = set(ProcessSlots(draining, name).running())
        assert len(running) == 2 and running != old[name], name  # both replicas are new
    told = Expectations(placed=result.placed, failed=result.failed_orders)
    report = wait_consistent(draining.urls, told, timeout=60)
    assert report.ok, report.summary()


def test_control_rollout_without_draining_drops_requests(not_draining: BreadSystem) -> None:
    result, _ = roll_under_load(not_draining, ["order"], load_seconds=10)
    assert result.not_ok > 0, result.summary("control")
