"""The edge's per-caller rate limit: a client flooding the API gets 429 past its
EDGE_RATE_LIMIT (with a burst of twice that), per token subject, else per address,
while another client is still served."""

from __future__ import annotations

import pathlib
import threading
from collections import Counter
from collections.abc import Iterator

import grpc
import httpx
import pytest

from harness.system import BreadSystem, running_system

LIMIT = 10  # requests per second per caller; the burst is 20


@pytest.fixture(scope="module")
def limited(tmp_path_factory: pytest.TempPathFactory) -> Iterator[BreadSystem]:
    tmp: pathlib.Path = tmp_path_factory.mktemp("limited")
    with running_system(tmp, rate_limit=LIMIT) as system:
        yield system


def flood(client: httpx.Client, path: str, count: int) -> Counter[int]:
    statuses: Counter[int] = Counter()
    lock = threading.Lock()

    def hammer() -> None:
        for _ in range(count // 4):
            status = client.get(path).status_code
            with lock:
                statuses[status] += 1

    threads = [threading.Thread(target=hammer) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return statuses


def test_a_flooding_client_is_limited_and_another_is_served(limited: BreadSystem) -> None:
    with (
        limited.client("customer", "flooder") as flooder,
        limited.client("customer", "neighbour") as neighbour,
    ):
        statuses = flood(flooder, "/orders", 120)
        assert statuses[429] > 0 and statuses[200] >= LIMIT, statuses
        assert set(statuses) <= {200, 429}, statuses
        limited_answer = flooder.get("/orders")
        assert limited_answer.status_code == 429
        assert limited_answer.json()["code"] == grpc.StatusCode.RESOURCE_EXHAUSTED.value[0]
        # The neighbour has a bucket of its own.
        assert neighbour.get("/orders").status_code == 200


def test_anonymous_callers_are_limited_by_address(limited: BreadSystem) -> None:
    with httpx.Client(base_url=limited.http, timeout=5) as anonymous:
        statuses = flood(anonymous, "/menu", 120)
    # Served until its address's bucket ran dry (how many depends on the refill's timing).
    assert statuses[429] > 0 and statuses[200] > 0, statuses


def test_a_forged_subject_does_not_buy_fresh_buckets(limited: BreadSystem) -> None:
    """An anonymous caller naming a new subject in the header the edge trusts on every
    request still shares its address's bucket."""
    counter = iter(range(10_000))

    class Forging(httpx.Client):
        def get(self, url: httpx.URL | str, **kwargs: object) -> httpx.Response:
            return super().get(url, headers={"x-bread-subject": f"s{next(counter)}"})

    with Forging(base_url=limited.http, timeout=5) as anonymous:
        statuses = flood(anonymous, "/menu", 120)
    assert statuses[429] > 0, statuses
