"""Siege-like load generator for bread: N concurrent clients through the Envoy edge.

    python -m harness.load --target 127.0.0.1:8088 --protocol http --mix place -c 100 -t 20S
    python -m harness.load --target 127.0.0.1:8088 --protocol grpc --mix mixed -c 30 -n 5000

Also a library (`run(LoadConfig(...)) -> LoadResult`) for tests, scenarios and the benchmark.

It counts the way siege 4 does (checked against siege 4.0.7 on this machine), so that its
figures sit beside siege's: a response below 500 is a transaction, below 400 a successful one;
a 5xx or no response at all is a failed transaction; availability is transactions / (all);
"response time" is the total time of every request divided by the transactions, concurrency
the total time divided by the elapsed time. A gRPC status counts as the HTTP status Envoy's
transcoder turns it into (UNAVAILABLE 503, DEADLINE_EXCEEDED 504, ...), so gRPC and HTTP runs
are comparable. Unlike siege (`connection = close`), connections are kept alive.

siege's "failed" and "availability" count a 4xx as a (served) transaction. Where anything but
a 2xx means the client did not get what it asked for (a rollout, a chaos run), use `not_ok`
and `not_ok_share` ("Not 2xx" in the summary) instead.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import math
import random
import re
import sys
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import grpc
import uvloop
from grpc_health.v1 import health_pb2, health_pb2_grpc

from bread.order.v1 import order_pb2, order_pb2_grpc

Protocol = Literal["grpc", "http"]
# place: PlaceOrder; get: GetOrder; mixed: half each; menu: GetMenu (the no-op of the edge);
# health: grpc.health.v1 Check (gRPC only; the edge does not route it, so aim at a service).
Mix = Literal["place", "get", "mixed", "menu", "health"]
MIXES: tuple[str, ...] = ("place", "get", "mixed", "menu", "health")

# What Envoy's grpc_json_transcoder answers for each gRPC status (google.rpc.Code -> HTTP).
GRPC_TO_HTTP: dict[grpc.StatusCode, int] = {
    grpc.StatusCode.OK: 200,
    grpc.StatusCode.CANCELLED: 499,
    grpc.StatusCode.UNKNOWN: 500,
    grpc.StatusCode.INVALID_ARGUMENT: 400,
    grpc.StatusCode.DEADLINE_EXCEEDED: 504,
    grpc.StatusCode.NOT_FOUND: 404,
    grpc.StatusCode.ALREADY_EXISTS: 409,
    grpc.StatusCode.PERMISSION_DENIED: 403,
    grpc.StatusCode.RESOURCE_EXHAUSTED: 429,
    grpc.StatusCode.FAILED_PRECONDITION: 400,
    grpc.StatusCode.ABORTED: 409,
    grpc.StatusCode.OUT_OF_RANGE: 400,
    grpc.StatusCode.UNIMPLEMENTED: 501,
    grpc.StatusCode.INTERNAL: 500,
    grpc.StatusCode.UNAVAILABLE: 503,
    grpc.StatusCode.DATA_LOSS: 500,
    grpc.StatusCode.UNAUTHENTICATED: 401,
}

# order_svc names the order it failed in the error message; the scenarios check those orders.
FAILED_ORDER = re.compile(r"order (\S+) is FAILED")


@dataclass(frozen=True)
class LoadConfig:
    target: str  # host:port: the Envoy edge, or a service's own port for `health`
    protocol: Protocol = "http"
    mix: Mix = "place"
    concurrency: int = 100
    duration: float = 20.0  # seconds; ignored when `requests` is set
    requests: int | None = None  # total number of requests instead of a duration
    rate: float | None = None  # cap on requests per second over all clients (None: flat out)
    delay: float = 0.0  # like siege -d: each client pauses uniformly in [0, delay] s before each
    timeout: float = 30.0  # the client's own deadline per request (siege's default is 30 s)
    item: str = "cake"
    qty: int = 1
    customer_id: str = "load"
    order_ids: Sequence[str] = ()  # orders for `get`; placed first when empty
    seed_orders: int = 20
    health_service: str = ""  # grpc.health.v1 service name for `health` ("" = liveness)
    channels: int = 4  # gRPC: separate HTTP/2 connections, clients spread over them
    token: str = ""  # the callers' bearer token (the edge wants one for everything but the menu)


@dataclass(frozen=True)
class Outcome:
    status: int  # HTTP status, or the one Envoy gives the gRPC status; 0: no response at all
    label: str  # "200", "UNAVAILABLE", "ConnectError", ...
    nbytes: int = 0
    order_id: str = ""  # PlaceOrder: the order it created, placed or FAILED


def _nearest_rank(values: list[float], q: float) -> float:
    if not values:
        return 0.0
    ordered = sorted(values)
    return ordered[max(math.ceil(q / 100 * len(ordered)) - 1, 0)]


def _label(outcome: Outcome) -> str:
    if outcome.label == str(outcome.status) or outcome.status == 0:
        return outcome.label
    return f"{outcome.label} ({outcome.status})"


@dataclass
class LoadResult:
    config: LoadConfig
    elapsed: float = 0.0
    started: float = 0.0  # time.perf_counter() when the run began (offsets count from here)
    latencies: list[float] = field(default_factory=list)  # seconds, in completion order
    statuses: list[int] = field(default_factory=list)
    offsets: list[float] = field(default_factory=list)  # when each request started, since start
    codes: Counter[str] = field(default_factory=Counter)
    bytes_received: int = 0
    placed: list[str] = field(default_factory=list)  # orders the client was told are placed
    placed_offsets: list[float] = field(default_factory=list)  # when each of those started
    failed_orders: list[str] = field(default_factory=list)  # orders it was told are FAILED

    def add(self, offset: float, latency: float, outcome: Outcome, place: bool) -> None:
        self.latencies.append(latency)
        self.statuses.append(outcome.status)
        self.offsets.append(offset)
        self.codes[_label(outcome)] += 1
        self.bytes_received += outcome.nbytes
        if place and outcome.order_id:
            if 200 <= outcome.status < 300:
                self.placed.append(outcome.order_id)
                self.placed_offsets.append(offset)
            else:
                self.failed_orders.append(outcome.order_id)

    # siege's figures

    @property
    def requests(self) -> int:
        return len(self.statuses)

    @property
    def transactions(self) -> int:
        return sum(1 for s in self.statuses if 0 < s < 500)

    @property
    def successful(self) -> int:
        return sum(1 for s in self.statuses if 0 < s < 400)

    @property
    def failed(self) -> int:
        return self.requests - self.transactions

    @property
    def availability(self) -> float:
        return 100.0 * self.transactions / self.requests if self.requests else 0.0

    @property
    def response_time(self) -> float:
        """siege's: every request's time over the transactions (failures weigh in)."""
        return sum(self.latencies) / self.transactions if self.transactions else 0.0

    @property
    def transaction_rate(self) -> float:
        return self.transactions / self.elapsed if self.elapsed else 0.0

    @property
    def concurrency(self) -> float:
        return sum(self.latencies) / self.elapsed if self.elapsed else 0.0

    @property
    def longest(self) -> float:
        return max(self.latencies, default=0.0)

    @property
    def shortest(self) -> float:
        return min(self.latencies, default=0.0)

    # and ours: anything but a 2xx is not what the client asked for (siege counts a 4xx as
    # an available, though unsuccessful, transaction)

    @property
    def ok(self) -> int:
        return sum(1 for s in self.statuses if 200 <= s < 300)

    @property
    def not_ok(self) -> int:
        """Requests not answered 2xx: 4xx, 5xx and no answer at all."""
        return self.requests - self.ok

    @property
    def not_ok_share(self) -> float:
        """not_ok as a percentage of every request."""
        return 100.0 * self.not_ok / self.requests if self.requests else 0.0

    @property
    def request_rate(self) -> float:
        return self.requests / self.elapsed if self.elapsed else 0.0

    @property
    def mean(self) -> float:
        return sum(self.latencies) / self.requests if self.requests else 0.0

    def percentile(self, q: float, statuses: Callable[[int], bool] | None = None) -> float:
        """Nearest-rank percentile (seconds) of every request, or of those whose status passes."""
        return _nearest_rank(
            [
                lat
                for lat, s in zip(self.latencies, self.statuses, strict=True)
                if statuses is None or statuses(s)
            ],
            q,
        )

    def count(self, status: int) -> int:
        return sum(1 for s in self.statuses if s == status)

    def summary(self, title: str = "") -> str:
        c = self.config
        mb = self.bytes_received / 1e6
        lines = [
            f"** {title or 'harness.load'}: {c.protocol} {c.mix} -c{c.concurrency} "
            + (f"-n{c.requests}" if c.requests else f"-t{c.duration:g}S")
            + (f" rate<={c.rate:g}/s" if c.rate else "")
            + f" -> {c.target}",
            f"Transactions:              {self.transactions:10d} hits",
            f"Availability:              {self.availability:10.2f} %",
            f"Elapsed time:              {self.elapsed:10.2f} secs",
            f"Data transferred:          {mb:10.2f} MB",
            f"Response time:             {self.response_time:10.3f} secs",
            f"Transaction rate:          {self.transaction_rate:10.2f} trans/sec",
            f"Throughput:                {mb / self.elapsed if self.elapsed else 0:10.2f} MB/sec",
            f"Concurrency:               {self.concurrency:10.2f}",
            f"Successful transactions:   {self.successful:10d}",
            f"Failed transactions:       {self.failed:10d}",
            f"Longest transaction:       {self.longest:10.3f}",
            f"Shortest transaction:      {self.shortest:10.3f}",
            f"Requests:                  {self.requests:10d} ({self.request_rate:.1f}/s)",
            f"Not 2xx:                   {self.not_ok:10d} ({self.not_ok_share:.2f} %)",
            "Latency p50/p95/p99:       "
            f"{self.percentile(50) * 1e3:.1f} / {self.percentile(95) * 1e3:.1f} / "
            f"{self.percentile(99) * 1e3:.1f} ms (mean {self.mean * 1e3:.1f} ms, every request)",
            "Outcomes:                  "
            + ", ".join(f"{label} x{n}" for label, n in self.codes.most_common()),
        ]
        for status, (n, p50, p99, longest) in sorted(self.breakdown().items()):
            lines.append(
                f"  status {status or 'none':>4}: {n:7d} requests, p50 {p50 * 1e3:7.1f} ms, "
                f"p99 {p99 * 1e3:7.1f} ms, longest {longest * 1e3:7.1f} ms"
            )
        return "\n".join(lines)

    def between(self, start: float, end: float) -> LoadResult:
        """The requests that started in [start, end) seconds after the run began."""
        part = LoadResult(self.config, elapsed=max(end - start, 0.0))
        rows = zip(self.offsets, self.latencies, self.statuses, strict=True)
        for offset, latency, status in rows:
            if start <= offset < end:
                part.add(offset, latency, Outcome(status, str(status)), place=False)
        return part

    def breakdown(self) -> dict[int, tuple[int, float, float, float]]:
        """Per status: how many, p50, p99 and the longest latency (seconds)."""
        by_status: dict[int, list[float]] = {}
        for latency, status in zip(self.latencies, self.statuses, strict=True):
            by_status.setdefault(status, []).append(latency)
        return {
            status: (len(lats), _nearest_rank(lats, 50), _nearest_rank(lats, 99), max(lats))
            for status, lats in by_status.items()
        }

    def to_dict(self) -> dict[str, Any]:
        """siege's JSON fields plus ours."""
        return {
            "transactions": self.transactions,
            "availability": round(self.availability, 2),
            "elapsed_time": round(self.elapsed, 2),
            "data_transferred": round(self.bytes_received / 1e6, 2),
            "response_time": round(self.response_time, 3),
            "transaction_rate": round(self.transaction_rate, 2),
            "concurrency": round(self.concurrency, 2),
            "successful_transactions": self.successful,
            "failed_transactions": self.failed,
            "longest_transaction": round(self.longest, 3),
            "shortest_transaction": round(self.shortest, 3),
            "requests": self.requests,
            "not_2xx": self.not_ok,
            "p50_ms": round(self.percentile(50) * 1e3, 1),
            "p95_ms": round(self.percentile(95) * 1e3, 1),
            "p99_ms": round(self.percentile(99) * 1e3, 1),
            "outcomes": dict(self.codes),
        }


# ------------------------------------------------------------------------------ clients


class Client:
    """One protocol's operations; every failure becomes an Outcome, never an exception."""

    async def place(self, item: str, qty: int, customer_id: str) -> Outcome:
        raise NotImplementedError

    async def get(self, order_id: str) -> Outcome:
        raise NotImplementedError

    async def menu(self) -> Outcome:
        raise NotImplementedError

    async def health(self, service: str) -> Outcome:
        raise NotImplementedError

    async def close(self) -> None:
        raise NotImplementedError


class GrpcClient(Client):
    def __init__(self, target: str, channels: int, timeout: float, token: str = "") -> None:
        self.timeout = timeout
        self.metadata = (("authorization", f"Bearer {token}"),) if token else None
        # A local subchannel pool per channel: really separate connections, as separate
        # clients would have, not one shared HTTP/2 connection.
        self.channels = [
            grpc.aio.insecure_channel(target, options=[("grpc.use_local_subchannel_pool", 1)])
            for _ in range(max(channels, 1))
        ]
        self.orders = [order_pb2_grpc.OrderServiceStub(ch) for ch in self.channels]
        self.healths = [health_pb2_grpc.HealthStub(ch) for ch in self.channels]
        self._next = 0

    def _pick(self) -> int:
        self._next = (self._next + 1) % len(self.channels)
        return self._next

    async def _call(self, call: Awaitable[Any], place: bool = False) -> Outcome:
        try:
            response = await call
        except grpc.aio.AioRpcError as error:
            details = error.details() or ""
            found = FAILED_ORDER.search(details) if place else None
            return Outcome(
                GRPC_TO_HTTP.get(error.code(), 500),
                error.code().name,
                len(details),
                found.group(1) if found else "",
            )
        order_id = response.id if place else ""
        return Outcome(200, "OK", response.ByteSize(), order_id)

    async def place(self, item: str, qty: int, customer_id: str) -> Outcome:
        request = order_pb2.PlaceOrderRequest(item=item, qty=qty, customer_id=customer_id)
        return await self._call(
            self.orders[self._pick()].PlaceOrder(
                request, timeout=self.timeout, metadata=self.metadata
            ),
            place=True,
        )

    async def get(self, order_id: str) -> Outcome:
        request = order_pb2.GetOrderRequest(id=order_id)
        return await self._call(
            self.orders[self._pick()].GetOrder(
                request, timeout=self.timeout, metadata=self.metadata
            )
        )

    async def menu(self) -> Outcome:
        request = order_pb2.GetMenuRequest()
        return await self._call(
            self.orders[self._pick()].GetMenu(request, timeout=self.timeout, metadata=self.metadata)
        )

    async def health(self, service: str) -> Outcome:
        request = health_pb2.HealthCheckRequest(service=service)
        return await self._call(self.healths[self._pick()].Check(request, timeout=self.timeout))

    async def close(self) -> None:
        await asyncio.gather(*(ch.close() for ch in self.channels))


class HttpClient(Client):
    """HTTP/1.1 keep-alive on plain asyncio streams, one connection per busy client.

    httpx's async pool managed about 275 req/s on this machine where siege did 2.3k against
    the same endpoint: the load generator, not the system, would have been measured.
    """

    def __init__(self, target: str, timeout: float, token: str = "") -> None:
        hostport = target.split("://", 1)[-1].rstrip("/")
        host, _, port = hostport.rpartition(":")
        self.host, self.port = host or hostport, int(port or 80)
        self.timeout = timeout
        self.idle: list[tuple[asyncio.StreamReader, asyncio.StreamWriter]] = []
        self.head = f"Host: {hostport}\r\nUser-Agent: harness.load\r\nAccept: application/json\r\n"
        if token:
            self.head += f"Authorization: Bearer {token}\r\n"

    async def _exchange(self, method: str, path: str, body: bytes) -> tuple[int, bytes]:
        conn = self.idle.pop() if self.idle else None
        if conn is None:
            conn = await asyncio.open_connection(self.host, self.port)
        reader, writer = conn
        try:
            length = f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n"
            writer.write(
                f"{method} {path} HTTP/1.1\r\n{self.head}{length if body else ''}\r\n".encode()
                + body
            )
            status_line = await reader.readline()
            if not status_line:
                raise ConnectionResetError("connection closed before the response")
            status = int(status_line.split(b" ", 2)[1])
            headers: dict[bytes, bytes] = {}
            while (line := await reader.readline()) not in (b"\r\n", b"\n", b""):
                name, _, value = line.partition(b":")
                headers[name.strip().lower()] = value.strip()
            if headers.get(b"transfer-encoding", b"").lower() == b"chunked":
                chunks = []
                while size := int((await reader.readline()).split(b";")[0], 16):
                    chunks.append(await reader.readexactly(size))
                    await reader.readline()
                await reader.readline()  # the blank line after the last chunk
                data = b"".join(chunks)
            else:
                data = await reader.readexactly(int(headers.get(b"content-length", b"0")))
        except BaseException:
            writer.close()
            raise
        if headers.get(b"connection", b"").lower() == b"close":
            writer.close()
        else:
            self.idle.append(conn)
        return status, data

    async def _send(self, method: str, path: str, body: Any = None, place: bool = False) -> Outcome:
        payload = json.dumps(body).encode() if body is not None else b""
        try:
            async with asyncio.timeout(self.timeout):
                status, data = await self._exchange(method, path, payload)
        except TimeoutError:
            return Outcome(0, "timeout")
        except (OSError, ValueError, IndexError, asyncio.IncompleteReadError) as error:
            return Outcome(0, type(error).__name__)
        order_id = ""
        if place:
            try:
                answer = json.loads(data)
            except ValueError:
                answer = {}
            if 200 <= status < 300:
                order_id = str(answer.get("id", ""))
            elif found := FAILED_ORDER.search(str(answer.get("message", ""))):
                order_id = found.group(1)
        return Outcome(status, str(status), len(data), order_id)

    async def place(self, item: str, qty: int, customer_id: str) -> Outcome:
        body = {"item": item, "qty": qty, "customerId": customer_id}
        return await self._send("POST", "/orders", body, place=True)

    async def get(self, order_id: str) -> Outcome:
        return await self._send("GET", f"/orders/{order_id}")

    async def menu(self) -> Outcome:
        return await self._send("GET", "/menu")

    async def health(self, service: str) -> Outcome:
        raise ValueError("grpc.health.v1 is gRPC only: use --protocol grpc")

    async def close(self) -> None:
        for _, writer in self.idle:
            writer.close()
        self.idle.clear()


def make_client(config: LoadConfig) -> Client:
    if config.protocol == "grpc":
        return GrpcClient(config.target, config.channels, config.timeout, config.token)
    return HttpClient(config.target, config.timeout, config.token)


# ------------------------------------------------------------------------------ the run


class _Pacer:
    """Spaces requests 1/rate apart over all clients (a cap: busy clients fall behind)."""

    def __init__(self, rate: float) -> None:
        self.interval = 1.0 / rate
        self.next = time.perf_counter()

    async def wait(self) -> None:
        now = time.perf_counter()
        at = max(self.next, now)
        self.next = at + self.interval
        if at > now:
            await asyncio.sleep(at - now)


async def run_load(config: LoadConfig) -> LoadResult:
    """Run the load described by config and return what every request saw."""
    if config.mix not in MIXES:
        raise ValueError(f"mix must be one of {', '.join(MIXES)}")
    client = make_client(config)
    result = LoadResult(config)
    try:
        # Orders for GetOrder: given, or placed now (outside the measured window).
        pool = list(config.order_ids)
        if config.mix == "get" and not pool:
            for _ in range(config.seed_orders):
                seeded = await client.place(config.item, config.qty, config.customer_id)
                if seeded.status == 200:
                    pool.append(seeded.order_id)
            if not pool:
                raise RuntimeError("could not place any order to read back")

        def operation(rng: random.Random) -> tuple[Awaitable[Outcome], bool]:
            mixed_read = config.mix == "mixed" and bool(pool) and rng.random() < 0.5
            if config.mix == "get" or mixed_read:
                return client.get(rng.choice(pool)), False
            if config.mix == "menu":
                return client.menu(), False
            if config.mix == "health":
                return client.health(config.health_service), False
            return client.place(config.item, config.qty, config.customer_id), True

        pacer = _Pacer(config.rate) if config.rate else None
        remaining = [config.requests] if config.requests is not None else None
        start = result.started = time.perf_counter()
        deadline = start + config.duration

        async def worker(n: int) -> None:
            rng = random.Random(n)
            while True:
                if remaining is not None:
                    if remaining[0] <= 0:
                        return
                    remaining[0] -= 1
                elif time.perf_counter() >= deadline:
                    return
                if config.delay:  # before each request, as siege does: clients start staggered
                    await asyncio.sleep(rng.uniform(0, config.delay))
                if pacer is not None:
                    await pacer.wait()
                call, place = operation(rng)
                began = time.perf_counter()
                outcome = await call
                result.add(began - start, time.perf_counter() - began, outcome, place)
                if place and outcome.status == 200 and config.mix == "mixed":
                    pool.append(outcome.order_id)

        await asyncio.gather(*(worker(n) for n in range(config.concurrency)))
        result.elapsed = time.perf_counter() - start
    finally:
        await client.close()
    return result


def run(config: LoadConfig) -> LoadResult:
    """run_load on a fresh uvloop event loop (from synchronous code: tests, scenarios).

    The garbage collector is off meanwhile: in a big process (pytest's) a full collection
    stalls the client for tens of ms, which would be measured as the system's latency.
    """
    was_enabled = gc.isenabled()
    gc.collect()
    gc.disable()
    try:
        return uvloop.run(run_load(config))
    finally:
        if was_enabled:
            gc.enable()


# ------------------------------------------------------------------------------ CLI


def parse_duration(text: str) -> float:
    """siege's -t: '20S', '2M', '1H', or plain seconds."""
    units = {"S": 1, "M": 60, "H": 3600}
    text = text.strip().upper()
    if text and text[-1] in units:
        return float(text[:-1]) * units[text[-1]]
    return float(text)


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m harness.load", description=__doc__.split("\n")[0])
    p.add_argument("--target", default="127.0.0.1:8088", help="host:port (default: the edge)")
    p.add_argument("--protocol", choices=["grpc", "http"], default="http")
    p.add_argument("--mix", choices=MIXES, default="place")
    p.add_argument("-c", "--concurrency", type=int, default=100)
    p.add_argument("-t", "--time", type=parse_duration, default=20.0, help="e.g. 20S, 1M")
    p.add_argument("-n", "--requests", type=int, help="total requests instead of a duration")
    p.add_argument("--rate", type=float, help="cap on requests/s over all clients")
    p.add_argument("-d", "--delay", type=float, default=0.0, help="max pause between requests")
    p.add_argument("--timeout", type=float, default=30.0, help="per-request deadline, seconds")
    p.add_argument("--item", default="cake")
    p.add_argument("--qty", type=int, default=1)
    p.add_argument("--customer", default="load")
    p.add_argument("--health-service", default="")
    p.add_argument("--token", default="", help="bearer token (make token ROLE=operator)")
    p.add_argument("--json", action="store_true", help="print siege's JSON fields (and ours)")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    config = LoadConfig(
        target=args.target,
        protocol=args.protocol,
        mix=args.mix,
        concurrency=args.concurrency,
        duration=args.time,
        requests=args.requests,
        rate=args.rate,
        delay=args.delay,
        timeout=args.timeout,
        item=args.item,
        qty=args.qty,
        customer_id=args.customer,
        health_service=args.health_service,
        token=args.token,
    )
    result = run(config)
    print(json.dumps(result.to_dict(), indent=2) if args.json else result.summary())
    return 0 if result.requests else 1


if __name__ == "__main__":
    sys.exit(main())
