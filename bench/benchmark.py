"""`make bench`: bread's operations against no-op baselines measured in the same run.

    python -m bench.benchmark [--seconds 6] [--concurrency 32] [--saga-orders 1000]

One whole bread (four services, Envoy; SQLite; harness.system.BreadSystem) on this
machine, loaded by harness.load from this process. Machines here are noisy and shared, so every
figure is also given as a ratio to a baseline of the same run:

- grpc.health.v1 Check straight to order's port: the floor of a Python grpc.aio service;
- GetMenu through the Envoy edge (gRPC, and GET /menu as HTTP/JSON): the same service, no
  database, no pay, no events: the no-op of the gateway path. gRPC rows are compared with the
  gRPC no-op, HTTP/JSON rows with the HTTP one.

Then PlaceOrder (order -> Envoy mesh -> pay, 3 database writes, 2 events) and GetOrder, by
gRPC and HTTP/JSON, and the saga end to end: orders placed until customer's Mypage rows show
them PAID and APPROVED (order -> pay -> RabbitMQ -> customer), polled in its database every
20 ms. CPU ms/op is the CPU time each process spent per operation (utime + stime from /proc),
the load generator included: it shares the two cores with the system.

The table goes to stdout and to bench/results/latest.md.
"""

from __future__ import annotations

import argparse
import datetime
import os
import pathlib
import platform
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import replace

from bench.scenario import run_in_thread
from harness.load import LoadConfig, LoadResult, Row, run
from harness.system import BreadSystem, running_system
from ops.envoy_config import envoy_binary
from servicekit.db import open_database

RESULTS = pathlib.Path(__file__).resolve().parent / "results"
TICK = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    fields = pathlib.Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / TICK  # utime, stime


class CpuMeter:
    """CPU seconds per process of the system (and of this load generator) over a measurement."""

    def __init__(self, system: BreadSystem) -> None:
        self.pids = {name: svc.process.pid for name, svc in system.services.items() if svc.process}
        assert system.envoy is not None
        self.pids["envoy"] = system.envoy.process.pid
        self.pids["client"] = os.getpid()

    def snapshot(self) -> dict[str, float]:
        return {name: cpu_seconds(pid) for name, pid in self.pids.items()}

    def measure(self, work: Callable[[], LoadResult]) -> tuple[LoadResult, dict[str, float]]:
        before = self.snapshot()
        result = work()
        after = self.snapshot()
        return result, {k: after[k] - before[k] for k in after}


def saga(
    system: BreadSystem, meter: CpuMeter, config: LoadConfig, orders: int
) -> tuple[LoadResult, dict[str, float], float, list[float]]:
    """Place `orders` orders; time until each one's Mypage row is PAID and APPROVED."""
    customer = f"saga-{time.time_ns()}"
    db = open_database(system.urls["customer"])
    seen: dict[str, float] = {}
    query = (
        "SELECT order_id FROM mypages WHERE customer_id = ? "
        "AND order_status = 'PAID' AND payment_status = 'APPROVED'"
    )
    before = meter.snapshot()
    thread, box = run_in_thread(replace(config, requests=orders, customer_id=customer))
    deadline = time.perf_counter() + 120
    try:
        while time.perf_counter() < deadline:
            now = time.perf_counter()
            for (order_id,) in db.execute_sql(query, (customer,)).fetchall():
                seen.setdefault(order_id, now)
            if not thread.is_alive() and len(seen) >= len(box["result"].placed):
                break
            time.sleep(0.02)
    finally:
        db.close()
    thread.join()
    after = meter.snapshot()
    result = box["result"]
    missing = set(result.placed) - seen.keys()
    if missing:
        raise RuntimeError(f"{len(missing)} placed orders never showed on Mypage")
    started = dict(zip(result.placed, result.placed_offsets, strict=True))
    latencies = sorted(seen[oid] - (result.started + started[oid]) for oid in result.placed)
    span = max(seen.values()) - result.started
    return result, {k: after[k] - before[k] for k in after}, span, latencies


def rank(values: list[float], q: float) -> float:
    return values[max(int(len(values) * q / 100 + 0.999999) - 1, 0)] if values else 0.0


def table(rows: list[Row]) -> str:
    by_name = {r.name: r for r in rows}
    procs = ["order", "pay", "bakery", "customer", "envoy", "client"]
    head = (
        "| operation | path | ops/s | p50 ms | p95 ms | p99 ms | errors | vs baseline "
        "| ops/s ratio | p50 ratio | CPU ms/op (order, pay, bakery, customer, envoy, client) |"
    )
    lines = [head, "|" + "---|" * 11]
    for r in rows:
        base = by_name.get(r.baseline)
        ratio_rate = f"{r.rate / base.rate:.3f}" if base and base.rate else "1"
        ratio_p50 = f"{r.p50 / base.p50:.1f}" if base and base.p50 else "1"
        cpu = ", ".join(f"{r.cpu.get(p, 0) * 1e3 / r.ops:.2f}" for p in procs) if r.ops else ""
        lines.append(
            f"| {r.name} | {r.path} | {r.rate:,.0f} | {r.p50 * 1e3:.1f} | {r.p95 * 1e3:.1f} "
            f"| {r.p99 * 1e3:.1f} | {r.errors} | {r.baseline or '-'} | {ratio_rate} "
            f"| {ratio_p50} | {cpu} |"
        )
    return "\n".join(lines)


def environment() -> str:
    def out(*cmd: str) -> str:
        done = subprocess.run(cmd, capture_output=True, text=True, check=False)
        return done.stdout.strip()

    commit = out("git", "rev-parse", "--short", "HEAD")
    dirty = " (uncommitted changes)" if out("git", "status", "--porcelain") else ""
    envoy = out(envoy_binary(), "--version").split("version:")[-1].strip().split("/")[1:2]
    return (
        f"{datetime.datetime.now(datetime.UTC):%Y-%m-%d %H:%M} UTC, commit {commit}{dirty}, "
        f"{os.cpu_count()} cores, Python {platform.python_version()}, "
        f"Envoy {envoy[0] if envoy else '?'} (--concurrency 1)"
    )


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        prog="python -m bench.benchmark", description=__doc__.split("\n")[0]
    )
    p.add_argument("--seconds", type=float, default=6.0, help="per measurement (after 1 s warm-up)")
    p.add_argument("--concurrency", type=int, default=32)
    p.add_argument("--saga-orders", type=int, default=1000)
    p.add_argument("--no-save", action="store_true")
    args = p.parse_args(argv)

    started = time.monotonic()
    load_before = os.getloadavg()[0]
    rows: list[Row] = []
    with (
        tempfile.TemporaryDirectory(prefix="bread-bench-") as tmp,
        running_system(pathlib.Path(tmp)) as system,
    ):
        meter = CpuMeter(system)
        # An operator's token: it may order for any customer. The edge's rate limit is off
        # in test systems (BreadSystem.rate_limit), so it does not cap the benchmark.
        base = LoadConfig(
            target=system.gateway,
            concurrency=args.concurrency,
            duration=args.seconds,
            token=system.token(),
        )
        order_port = f"127.0.0.1:{system.services['order'].port}"
        seed = run(replace(base, protocol="grpc", requests=200, customer_id="bench-seed"))
        ids = tuple(seed.placed)
        plan: list[tuple[str, str, str, LoadConfig]] = [
            (
                "health Check (no-op floor)",
                "gRPC, straight to order",
                "",
                replace(base, target=order_port, protocol="grpc", mix="health"),
            ),
            (
                "GetMenu (no-op, gRPC)",
                "gRPC via edge",
                "health Check (no-op floor)",
                replace(base, protocol="grpc", mix="menu"),
            ),
            (
                "GET /menu (no-op, HTTP)",
                "HTTP/JSON via edge",
                "health Check (no-op floor)",
                replace(base, protocol="http", mix="menu"),
            ),
            (
                "PlaceOrder",
                "gRPC via edge, mesh to pay",
                "GetMenu (no-op, gRPC)",
                replace(base, protocol="grpc", mix="place", customer_id="bench-grpc"),
            ),
            (
                "POST /orders",
                "HTTP/JSON via edge, mesh to pay",
                "GET /menu (no-op, HTTP)",
                replace(base, protocol="http", mix="place", customer_id="bench-http"),
            ),
            (
                "GetOrder",
                "gRPC via edge",
                "GetMenu (no-op, gRPC)",
                replace(base, protocol="grpc", mix="get", order_ids=ids),
            ),
            (
                "GET /orders/{id}",
                "HTTP/JSON via edge",
                "GET /menu (no-op, HTTP)",
                replace(base, protocol="http", mix="get", order_ids=ids),
            ),
        ]
        for name, path, baseline, config in plan:
            run(replace(config, duration=1.0))  # warm-up: connections, caches, JIT-less Python
            result, cpu = meter.measure(lambda c=config: run(c))  # type: ignore[misc]
            rows.append(Row(name, path, baseline, result, cpu, result.requests))
            print(f"  {name}: {rows[-1].rate:,.0f} ops/s", file=sys.stderr, flush=True)

        result, cpu, span, latencies = saga(
            system, meter, replace(base, protocol="grpc", mix="place"), args.saga_orders
        )
        row = Row(
            "saga end to end",
            "PlaceOrder until Mypage shows PAID + APPROVED",
            "PlaceOrder",
            result,
            cpu,
            len(result.placed),
            rate=len(result.placed) / span,
            p50=rank(latencies, 50),
            p95=rank(latencies, 95),
            p99=rank(latencies, 99),
        )
        rows.append(row)
        print(f"  saga: {row.rate:,.0f} orders/s", file=sys.stderr, flush=True)

    text = "\n".join(
        [
            "# bread benchmark",
            "",
            environment()
            + f"; load average {load_before:.2f} before, {os.getloadavg()[0]:.2f} after; "
            f"{args.concurrency} clients, {args.seconds:g} s per row; "
            f"whole run {time.monotonic() - started:.0f} s. The edge's per-caller rate limit"
            " is off (one operator token drives every row; with it on, that caller would be"
            " held to EDGE_RATE_LIMIT requests per second).",
            "",
            table(rows),
            "",
            "ops/s counts successful operations only; latencies are of every request. The saga "
            "row's ops/s is orders per second from the first request until the last Mypage row "
            f"showed ({args.saga_orders} orders), its latencies from each order's request until "
            "its row showed (20 ms polling). CPU ms/op divides each process's CPU time by the "
            "operations (the load generator is the `client`). RabbitMQ's CPU is not counted "
            "(one broker serves every test on this machine).",
            "",
        ]
    )
    print(text)
    if not args.no_save:
        RESULTS.mkdir(exist_ok=True)
        (RESULTS / "latest.md").write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
