"""harness.load's counting, which the resilience, fault and benchmark tests judge by: siege's
figures, which orders a client was told are placed or FAILED, the order id found in an
error, and how a figure a test asserts to be zero is read."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from types import SimpleNamespace
from typing import Any, cast

import grpc
import pytest

from harness.load import GrpcClient, HttpClient, LoadConfig, LoadResult, Outcome

CONFIG = LoadConfig(target="127.0.0.1:9")
STATUSES = [200, 201, 302, 400, 401, 404, 409, 429, 500, 503, 504, 0]


def result_of(statuses: list[int], place: bool = False) -> LoadResult:
    result = LoadResult(CONFIG, elapsed=2.0)
    for n, status in enumerate(statuses):
        outcome = Outcome(status, str(status) if status else "ConnectError", 10, f"o{n}")
        result.add(offset=n * 0.1, latency=0.01 * (n + 1), outcome=outcome, place=place)
    return result


def test_siege_figures() -> None:
    result = result_of(STATUSES)
    assert result.requests == 12
    assert result.transactions == 8  # a response below 500
    assert result.successful == 3  # below 400
    assert result.failed == 4  # 5xx or no response
    assert result.availability == pytest.approx(100 * 8 / 12)
    assert result.response_time == pytest.approx(sum(0.01 * n for n in range(1, 13)) / 8)
    assert result.transaction_rate == 4.0
    assert result.bytes_received == 120
    assert result.count(503) == 1 and result.count(418) == 0
    assert result.codes["ConnectError"] == 1 and result.codes["200"] == 1
    as_json = result.to_dict()
    assert (as_json["failed_transactions"], as_json["successful_transactions"]) == (4, 3)


def test_a_result_with_errors_reports_them() -> None:
    """What a reader of a run (bench, make chaos) sees of its errors: none is lost."""
    result = result_of(STATUSES)
    summary = result.summary("errors")
    figures = dict(line.split(":", 1) for line in summary.splitlines()[1:] if ":" in line)
    assert figures["Failed transactions"].split()[0] == "4"  # 5xx and no answer
    assert figures["Not 2xx"].split()[0] == "10"  # and 3xx, 4xx
    for label in ("503", "504", "500", "ConnectError", "429", "400"):
        assert f"{label} x1" in summary
    assert result.to_dict()["not_2xx"] == 10
    assert result.to_dict()["outcomes"]["ConnectError"] == 1


def test_only_a_2xx_placement_counts_as_placed() -> None:
    result = result_of(STATUSES, place=True)
    assert result.placed == ["o0", "o1"]
    assert result.placed_offsets == [0.0, 0.1]
    assert result.failed_orders == [f"o{n}" for n in range(2, 12)]


def test_outcomes_without_an_order_or_not_placements_name_no_order() -> None:
    result = LoadResult(CONFIG)
    result.add(0, 0.1, Outcome(503, "503"), place=True)  # refused before any order existed
    result.add(0, 0.1, Outcome(200, "200", order_id="o1"), place=False)  # a GetOrder
    assert (result.placed, result.failed_orders) == ([], [])


def test_a_run_refused_every_time_is_not_a_clean_run() -> None:
    """siege's figures count a 4xx as served; a run where clients must get what they asked
    for (a rollout, a chaos run) counts not_ok, which does not."""
    result = result_of([401] * 50 + [429] * 50)
    assert result.failed == 0 and result.availability == 100.0  # siege's view
    assert result.not_ok == 100 and result.not_ok_share == 100.0


def test_a_time_slice_keeps_its_requests() -> None:
    result = result_of(STATUSES)
    part = result.between(0.35, 0.75)  # requests 4..7 started then
    assert part.statuses == [401, 404, 409, 429] and part.elapsed == pytest.approx(0.4)


# ------------------------------------------------------------------------------ what clients see

FAILED_DETAILS = (
    "payment failed (UNAVAILABLE); order 6c1f-42 is FAILED and anything charged will be refunded"
)


async def test_a_grpc_error_names_the_failed_order() -> None:
    client = GrpcClient("127.0.0.1:9", channels=1, timeout=1.0)
    try:

        async def refused() -> Any:
            raise grpc.aio.AioRpcError(
                grpc.StatusCode.UNAVAILABLE,
                grpc.aio.Metadata(),
                grpc.aio.Metadata(),
                details=FAILED_DETAILS,
            )

        outcome = await client._call(refused(), place=True)
        assert outcome == Outcome(503, "UNAVAILABLE", len(FAILED_DETAILS), "6c1f-42")
        read = await client._call(refused(), place=False)
        assert (read.status, read.order_id) == (503, "")
    finally:
        await client.close()


class CannedServer:
    """An HTTP/1.1 server on loopback answering each request with the next canned reply."""

    def __init__(self, replies: list[bytes]) -> None:
        self.replies = replies
        self.server: asyncio.Server | None = None

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while self.replies:
            head = await reader.readuntil(b"\r\n\r\n")
            length = next(
                (
                    int(line.split(b":")[1])
                    for line in head.split(b"\r\n")
                    if line.lower().startswith(b"content-length")
                ),
                0,
            )
            await reader.readexactly(length)
            writer.write(self.replies.pop(0))
            await writer.drain()
        writer.close()

    @property
    def target(self) -> str:
        assert self.server is not None
        return f"127.0.0.1:{self.server.sockets[0].getsockname()[1]}"


def reply(status: str, body: dict[str, Any], chunked: bool = False) -> bytes:
    data = json.dumps(body).encode()
    if chunked:
        framed = b"%x\r\n%s\r\n0\r\n\r\n" % (len(data), data)
        return b"HTTP/1.1 %s\r\ntransfer-encoding: chunked\r\n\r\n%s" % (status.encode(), framed)
    return b"HTTP/1.1 %s\r\ncontent-length: %d\r\n\r\n%s" % (status.encode(), len(data), data)


@pytest.fixture
async def canned() -> AsyncIterator[CannedServer]:
    server = CannedServer([])
    server.server = await asyncio.start_server(server.handle, "127.0.0.1", 0)
    yield server
    server.server.close()


async def test_http_placements_name_their_order(canned: CannedServer) -> None:
    canned.replies += [
        reply("200 OK", {"id": "o1", "status": "ORDER_STATUS_PAID"}),
        reply("503 Service Unavailable", {"code": 14, "message": FAILED_DETAILS}, chunked=True),
        reply("400 Bad Request", {"code": 3, "message": "unknown item 'pizza'"}),
    ]
    client = HttpClient(canned.target, timeout=2.0)
    try:
        placed = await client.place("cake", 1, "alice")
        failed = await client.place("cake", 1, "alice")
        invalid = await client.place("pizza", 1, "alice")
    finally:
        await client.close()
    assert (placed.status, placed.order_id) == (200, "o1")
    assert (failed.status, failed.order_id) == (503, "6c1f-42")
    assert (invalid.status, invalid.order_id) == (400, "")


async def test_no_response_is_status_zero() -> None:
    client = HttpClient("127.0.0.1:9", timeout=1.0)  # nothing listens on the discard port
    outcome = await client.menu()
    assert outcome.status == 0 and outcome.label.endswith("Error")


# ------------------------------------------------------------------------------ reading counters


def test_a_missing_envoy_counter_is_an_error_not_zero(monkeypatch: pytest.MonkeyPatch) -> None:
    from tests.resilience import conftest

    monkeypatch.setattr(conftest, "stats", lambda admin_url, pattern="": {})
    system = SimpleNamespace(envoy=SimpleNamespace(admin_url="http://127.0.0.1:9"))
    with pytest.raises(AssertionError, match="Envoy has no stat"):
        conftest.mesh(cast(Any, system), "outlier_detection.ejections_enforced_total")
    with pytest.raises(AssertionError, match="Envoy has no stat"):
        conftest.edge_overflow(cast(Any, system))
    # Three of the four breakers' counters are not enough either.
    three = {key: 0 for key in conftest.OVERFLOWS[1:]}
    monkeypatch.setattr(conftest, "stats", lambda admin_url, pattern="": three)
    with pytest.raises(AssertionError, match=conftest.OVERFLOWS[0]):
        conftest.edge_overflow(cast(Any, system))


def test_a_missing_outbox_is_an_error_not_empty(monkeypatch: pytest.MonkeyPatch) -> None:
    from tests.hostile import state

    rows = {"orders": [("o1",)]}  # an order service whose outbox table is not found
    monkeypatch.setattr(state, "snapshot", lambda system: {"order": rows})
    monkeypatch.setattr(
        state, "time", SimpleNamespace(monotonic=time.monotonic, sleep=lambda _: None)
    )
    with pytest.raises(AssertionError, match=r"no outbox table in \['order'\]"):
        state.settled(cast(Any, None))
    rows["outbox"] = []
    assert state.settled(cast(Any, None)) == {"order": rows}
