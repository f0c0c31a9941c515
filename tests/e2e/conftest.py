from collections.abc import Iterator

import httpx
import pytest

from harness.system import BreadSystem, running_system


@pytest.fixture(scope="module")
def system(tmp_path_factory: pytest.TempPathFactory) -> Iterator[BreadSystem]:
    with running_system(tmp_path_factory.mktemp("bread")) as bread:
        yield bread


@pytest.fixture(scope="module")
def http(system: BreadSystem) -> Iterator[httpx.Client]:
    with system.client(timeout=5) as client:
        yield client
