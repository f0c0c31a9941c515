"""What a hostile run must leave as it found: every stored row of every service, and
the same service processes, all still ready."""

from __future__ import annotations

import time

from harness.system import BreadSystem
from servicekit.db import open_database
from servicekit.registry import NAMES

# Table name -> its rows, sorted; by service.
Snapshot = dict[str, dict[str, list[tuple]]]


def snapshot(system: BreadSystem) -> Snapshot:
    """Every row of every table of the four services' databases."""
    state: Snapshot = {}
    for name in NAMES:
        db = open_database(system.urls[name])
        try:
            db.connect()
            left, right = db.quote[0], db.quote[-1]
            state[name] = {
                table: sorted(
                    (_plain(row) for row in db.execute_sql(f"SELECT * FROM {left}{table}{right}")),
                    key=repr,
                )
                for table in db.get_tables()
            }
        finally:
            db.close()
    return state


def _plain(row: tuple) -> tuple:
    """A row with blobs as bytes (PostgreSQL gives memoryviews), so rows compare and hash."""
    return tuple(bytes(value) if isinstance(value, memoryview) else value for value in row)


def settled(system: BreadSystem, timeout: float = 30.0) -> Snapshot:
    """The state once events have stopped flowing: every outbox empty and nothing
    changing for a second."""
    deadline = time.monotonic() + timeout
    last = snapshot(system)
    while time.monotonic() < deadline:
        time.sleep(1.0)
        current = snapshot(system)
        # A missing outbox is an error, not an empty one: "settled" must not pass vacuously.
        missing = [service for service, tables in current.items() if "outbox" not in tables]
        assert not missing, f"no outbox table in {missing}"
        if current == last and all(not tables["outbox"] for tables in current.values()):
            return current
        last = current
    raise AssertionError("the system did not settle")


def differences(before: Snapshot, after: Snapshot) -> list[str]:
    """Rows that appeared or went, per service and table (empty when equal)."""
    found = []
    for service, tables in after.items():
        for table in sorted(set(tables) | set(before.get(service, {}))):
            old, new = set(before.get(service, {}).get(table, [])), set(tables.get(table, []))
            if old != new:
                found.append(f"{service}.{table}: +{sorted(new - old)} -{sorted(old - new)}")
    return found


def processes(system: BreadSystem) -> dict[str, int]:
    """The pid of each service process and of Envoy."""
    assert system.envoy is not None
    pids = {name: p.process.pid for name, p in system.services.items() if p.process}
    return {**pids, "envoy": system.envoy.process.pid}


def assert_unharmed(system: BreadSystem, pids: dict[str, int]) -> None:
    """The same processes as before, all still running, every service ready."""
    assert processes(system) == pids
    assert system.envoy is not None and system.envoy.process.poll() is None
    for name, service in system.services.items():
        assert service.process is not None and service.process.poll() is None, name
        assert service.is_ready(), f"{name} is not ready: {service.log_tail()}"
