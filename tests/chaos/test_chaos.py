"""Real faults under steady order load through the edge, then an audit of every order in
every service's database, the dead-letter queues and every replica's readiness.

The scenarios are ops/chaos.py's, the same `make chaos` runs against `make run`; here each
runs against a test system (see conftest.py). What they measure is printed (pytest -s).
"""

from __future__ import annotations

import pytest

from harness.system import BreadSystem
from ops.chaos import run_scenario

pytestmark = pytest.mark.slow


def scenario(name: str, system: BreadSystem) -> None:
    outcome = run_scenario(name, system, say=lambda line: print(f"   {name}: {line}", flush=True))
    print(outcome.text(), flush=True)
    assert not outcome.skipped, outcome.skipped
    assert outcome.ok, outcome.text()


def test_broker_stopped_ten_seconds(system: BreadSystem) -> None:
    """(a) at most 1 % refused, same PIDs, all ready, consistent within 60 s, no dead letters."""
    scenario("broker-outage", system)


def test_broker_connections_closed(system: BreadSystem) -> None:
    """(b) every connection of this system closed from the broker side, twice."""
    scenario("broker-connections", system)


def test_databases_restarted(system: BreadSystem) -> None:
    """(c) PostgreSQL (order) then MariaDB (pay): clean 503s only while down, orders succeed
    again within 5 s of the database being back."""
    scenario("database-restart", system)


def test_replica_killed_mid_transaction(system: BreadSystem) -> None:
    """(d) kill -9 of one order and one pay replica (of two, on server databases)."""
    scenario("kill-replica", system)


def test_cancel_races_delivery(system: BreadSystem) -> None:
    """(e) 40 deliver/cancel pairs sent at the same moment: never canceled and delivered."""
    scenario("races", system)


def test_poison_message_is_dead_lettered_and_consumers_go_on(system: BreadSystem) -> None:
    """(f) an undecodable event lands in each consumer's DLQ with its error."""
    scenario("poison", system)
