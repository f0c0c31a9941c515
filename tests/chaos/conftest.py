"""Chaos tests: one bread for the scenarios in turn, in the layout that has every fault to
play with (order on PostgreSQL, pay on MariaDB, two replicas of every service, so bakery and
customer on PostgreSQL too). A scenario that fails leaves its system behind: the next one
gets a fresh system, so one failure does not hide or cause another.

Every database and broker server a scenario stops is started again in a `finally` there
(ops.faults.take_down); the `system` fixture checks after each test, however it ended, that
RabbitMQ, PostgreSQL and MariaDB all accept connections, and starts any that does not.
"""

from __future__ import annotations

from collections.abc import Generator, Iterator

import pytest

from harness.system import BreadSystem
from ops.faults import ensure_servers_up
from servicekit.registry import NAMES

LAYOUT: dict[str, object] = {"profile": "polyglot", "replicas": {name: 2 for name in NAMES}}


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Generator[None]:
    """Keep each phase's report on the test item, for the fixture to see how it went."""
    outcome = yield
    report = outcome.get_result()  # type: ignore[attr-defined]
    setattr(item, f"rep_{report.when}", report)


class Systems:
    """At most one running test system; a new one when the last was discarded."""

    def __init__(self, tmp_path_factory: pytest.TempPathFactory) -> None:
        self.tmp_path_factory = tmp_path_factory
        self.current: BreadSystem | None = None

    def get(self) -> BreadSystem:
        if self.current is None:
            system = BreadSystem(self.tmp_path_factory.mktemp("chaos"), **LAYOUT)  # type: ignore[arg-type]
            try:
                system.start()
            except BaseException:
                system.stop()
                raise
            self.current = system
        return self.current

    def discard(self) -> None:
        if self.current is not None:
            system, self.current = self.current, None
            system.stop()


@pytest.fixture(scope="module")
def systems(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Systems]:
    holder = Systems(tmp_path_factory)
    try:
        yield holder
    finally:
        try:
            holder.discard()
        finally:
            ensure_servers_up()


@pytest.fixture
def system(systems: Systems, request: pytest.FixtureRequest) -> Iterator[BreadSystem]:
    ensure_servers_up()  # whatever ran before may have left one down
    try:
        yield systems.get()
    finally:
        restarted = ensure_servers_up()
        call = getattr(request.node, "rep_call", None)
        if restarted or call is None or call.failed:
            systems.discard()
