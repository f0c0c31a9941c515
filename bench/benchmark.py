"""`make bench`: bread's operations against baselines measured in the same run, by wrk and h2load.

    python -m bench.benchmark [--seconds 6] [--connections 64] [--sustained 60]

One whole bread (four services, Envoy; SQLite; harness.system.BreadSystem) on this
machine. The load comes from C tools that are not the bottleneck (harness/tools.py): wrk for
HTTP/JSON through the Envoy edge, h2load for gRPC; each row also shows the tool's own CPU.
Machines here are noisy and shared, so every row is also a ratio to a baseline of its run:

- GET /menu through the edge (wrk): the gateway path with no database, pay or events; the
  baseline of the HTTP rows;
- grpc.health.v1 Check straight to order's port (h2load): the floor of a Python grpc.aio
  service; the baseline of the gRPC rows.

Then POST /orders (the headline: order -> Envoy mesh -> pay, three database writes, two
events), PlaceOrder by gRPC, and the reads GetOrder, GetMypage and a ListOrders page of 20.
CPU ms/op is each process's CPU time (utime + stime from /proc) over the operations. A
sustained run (bench/sustained.py) then holds POST /orders for --sustained seconds, printing
the queues' depths, and measures how long a placed order takes to show PAID on Mypage. The
money invariants are checked over every order of the run at the end.

The report goes to stdout and to bench/results/latest.md.
"""

from __future__ import annotations

import argparse
import datetime
import functools
import json
import os
import pathlib
import platform
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass

import grpc
from grpc_health.v1 import health_pb2

from bench.edge_log import EdgeLog
from bench.procstat import CpuMeter, Memory, calibration_ms, memory_mb
from bench.sustained import Sustained, run_sustained
from bread.order.v1 import order_pb2
from harness.invariants import wait_settled
from harness.load import LoadConfig, run
from harness.queues import wait_drained
from harness.system import BreadSystem, running_system
from harness.tools import ToolRun, grpc_frame, h2load, require, wrk
from ops.envoy_config import envoy_binary
from servicekit.db import open_database

RESULTS = pathlib.Path(__file__).resolve().parent / "results"
SERVICES = ("order", "pay", "bakery", "customer")
PROCESSES = (*SERVICES, "envoy")
SEED_ORDERS = 200  # the orders the read rows cycle through, all of one customer
AGAIN = ", again"  # a baseline's second run, after the other rows


@dataclass
class Row:
    name: str
    how: str  # what drove it
    baseline: str  # name of the row it is compared with ("" for a baseline)
    run: ToolRun
    cpu: dict[str, float]  # process -> CPU seconds during the measurement
    grpc_failed: int = 0  # answered HTTP 200 with a grpc-status other than OK

    @property
    def ok(self) -> int:
        return max(self.run.ok - self.grpc_failed, 0)

    @property
    def rate(self) -> float:
        return self.ok / self.run.elapsed if self.run.elapsed else 0.0

    @property
    def not_ok(self) -> int:
        return self.run.non_2xx + self.grpc_failed

    def cpu_ms(self, process: str) -> float:
        return self.cpu.get(process, 0.0) * 1e3 / self.run.requests if self.run.requests else 0.0


def system_pids(system: BreadSystem) -> dict[str, int]:
    pids = {name: svc.process.pid for name, svc in system.services.items() if svc.process}
    assert system.envoy is not None
    pids["envoy"] = system.envoy.process.pid
    return pids


def verify_grpc(url: str, message: bytes, token: str) -> None:
    """One call of exactly the message h2load will send, by a real gRPC client: h2load sees
    HTTP statuses only, so a wrong body would pass there as 2xx."""
    target, _, method = url.removeprefix("http://").partition("/")
    metadata = (("authorization", f"Bearer {token}"),) if token else None
    with grpc.insecure_channel(target) as channel:
        # No serializers: the message goes out as the bytes given.
        channel.unary_unary(f"/{method}")(message, timeout=10, metadata=metadata)


def settle(system: BreadSystem) -> None:
    """Until every service queue is empty, and a moment for the deliveries in hand."""
    queues = [f"{system.queue_prefix}.{name}" for name in SERVICES]
    if wait_drained(system.amqp_url, queues) is None:
        raise RuntimeError("the service queues did not drain within a minute")
    time.sleep(1.0)


def seed_orders(system: BreadSystem, token: str) -> tuple[str, list[str]]:
    """SEED_ORDERS paid orders of one customer, once each shows PAID on Mypage."""
    customer = f"bench-seed-{time.time_ns()}"
    placed = run(
        LoadConfig(
            target=system.gateway,
            protocol="grpc",
            mix="place",
            concurrency=16,
            requests=SEED_ORDERS,
            customer_id=customer,
            token=token,
        )
    ).placed
    db = open_database(system.urls["customer"])
    query = "SELECT COUNT(*) FROM mypages WHERE customer_id = ? AND order_status = 'PAID'"
    deadline = time.monotonic() + 60
    try:
        while db.execute_sql(query, (customer,)).fetchone()[0] < len(placed):
            if time.monotonic() > deadline:
                raise RuntimeError("the seed orders never all showed PAID on Mypage")
            time.sleep(0.1)
    finally:
        db.close()
    return customer, placed


def rows(system: BreadSystem, meter: CpuMeter, args: argparse.Namespace) -> list[Row]:
    token = system.token()  # an operator: may order for and read any customer
    assert system.envoy is not None
    edge = EdgeLog(system.envoy.log_path)
    customer, ids = seed_orders(system, token)
    http, grpc_edge = system.http, f"http://{system.gateway}"
    order_port = system.services["order"].port
    place_body = json.dumps(
        {"item": "cake", "qty": 1, "customerId": "bench-wrk"}, separators=(",", ":")
    )
    place_message = order_pb2.PlaceOrderRequest(item="cake", qty=1, customer_id="bench-h2load")
    menu, health = "GET /menu (baseline)", "health Check (baseline)"
    c, s = args.connections, args.seconds

    def http_row(paths: list[str], **options: object) -> Callable[[float], ToolRun]:
        return lambda seconds: wrk(
            http, paths, token=token, connections=c, seconds=seconds, **options
        )

    def grpc_row(url: str, message: bytes, signed: bool) -> Callable[[float], ToolRun]:
        verify_grpc(url, message, token if signed else "")
        streams = max(c // 8, 1)
        return lambda seconds: h2load(
            url,
            grpc_frame(message),
            token=token if signed else "",
            connections=8,
            streams=streams,
            seconds=seconds,
        )

    plan: list[tuple[str, str, str, str, Callable[[float], ToolRun]]] = [
        # name, how, baseline, gRPC path at the edge to check grpc-status of ("" for none), run
        (
            health,
            "gRPC straight to order, h2load",
            "",
            "",
            grpc_row(
                f"http://127.0.0.1:{order_port}/grpc.health.v1.Health/Check",
                health_pb2.HealthCheckRequest().SerializeToString(),
                signed=False,
            ),
        ),
        (menu, "HTTP/JSON via edge, wrk", "", "", http_row(["/menu"])),
        (
            "POST /orders",
            "HTTP/JSON via edge, mesh to pay, wrk",
            menu,
            "",
            http_row(["/orders"], method="POST", body=place_body),
        ),
        (
            "PlaceOrder",
            "gRPC via edge, mesh to pay, h2load",
            health,
            "/bread.order.v1.OrderService/PlaceOrder",
            grpc_row(
                f"{grpc_edge}/bread.order.v1.OrderService/PlaceOrder",
                place_message.SerializeToString(),
                signed=True,
            ),
        ),
        (
            "GetOrder",
            "GET /orders/{id} via edge, wrk",
            menu,
            "",
            http_row([f"/orders/{i}" for i in ids]),
        ),
        (
            "GetMypage",
            "GET /mypages/{id} via edge, wrk",
            menu,
            "",
            http_row([f"/mypages/{i}" for i in ids]),
        ),
        (
            "ListOrders, page of 20",
            "GET /orders?customer_id=…&page_size=20 via edge, wrk",
            menu,
            "",
            http_row([f"/orders?customer_id={customer}&page_size=20"]),
        ),
    ]
    # The baselines once more at the end: how far they moved shows the machine's noise, and
    # the rows are compared with their mean.
    plan += [(f"{name}{AGAIN}", how, "", "", work) for name, how, _, _, work in plan[:2]]
    done: list[Row] = []
    for name, how, baseline, grpc_path, work in plan:
        writes = name in ("POST /orders", "PlaceOrder")
        work(1.0)  # warm-up: connections, caches, the first calls of each code path
        if writes:
            settle(system)
        before = meter.snapshot()
        edge.start()
        result = work(s)
        edge.stop()
        if writes:
            settle(system)  # the events of these orders are part of their cost
        cpu = meter.spent(before, meter.snapshot())
        failed = 0
        if grpc_path:
            statuses = edge.grpc_statuses(grpc_path, expected=result.requests)
            failed = sum(n for status, n in statuses.items() if status not in ("0", "-"))
        done.append(Row(name, how, baseline, result, cpu, failed))
        print(f"  {name}: {done[-1].rate:,.0f} ops/s", file=sys.stderr, flush=True)
    return done


# Sampling shares the tracing rows run at: make run's, and the prod overlay's.
TRACE_RATIOS = (1.0, 0.05)


def traced_rows(args: argparse.Namespace, untraced: Row) -> list[Row]:
    """POST /orders on a system of its own per sampling share, as the untraced row ran."""
    body = json.dumps(
        {"item": "cake", "qty": 1, "customerId": "bench-traced"}, separators=(",", ":")
    )
    done = []
    for ratio in TRACE_RATIOS:
        with (
            tempfile.TemporaryDirectory(prefix="bread-bench-traced-") as tmp,
            running_system(pathlib.Path(tmp), trace_ratio=ratio) as system,
        ):
            meter = CpuMeter(system_pids(system))
            place = functools.partial(
                wrk,
                system.http,
                ["/orders"],
                token=system.token(),
                connections=args.connections,
                method="POST",
                body=body,
            )
            place(seconds=1.0)  # warm-up
            settle(system)
            before = meter.snapshot()
            result = place(seconds=args.seconds)
            settle(system)  # the events of these orders are part of their cost
            cpu = meter.spent(before, meter.snapshot())
            done.append(
                Row(f"POST /orders, tracing at {ratio:g}", untraced.how, untraced.name, result, cpu)
            )
            print(f"  {done[-1].name}: {done[-1].rate:,.0f} ops/s", file=sys.stderr, flush=True)
    return done


def baseline_rate(done: list[Row], name: str) -> float:
    """The mean rate of a baseline's runs (at the start and at the end)."""
    rates = [r.rate for r in done if r.name in (name, name + AGAIN)]
    return sum(rates) / len(rates) if rates else 0.0


def table(done: list[Row]) -> str:
    lines = [
        "| operation | driven by | ops/s | p50 ms | p99 ms | errors | not OK | vs baseline "
        "| ratio | CPU ms/op: order, pay, bakery, customer, envoy | Σ "
        "| tool CPU ms/op (% of a core) |",
        "|" + "---|" * 12,
    ]
    for r in done:
        base = baseline_rate(done, r.baseline) if r.baseline else 0.0
        ratio = f"{r.rate / base:.3f}" if base else "1"
        cpu = ", ".join(f"{r.cpu_ms(p):.2f}" for p in PROCESSES)
        total = sum(r.cpu_ms(p) for p in PROCESSES)
        tool_ms = r.run.cpu * 1e3 / r.run.requests if r.run.requests else 0.0
        tool_share = 100 * r.run.cpu / r.run.elapsed if r.run.elapsed else 0.0
        lines.append(
            f"| {r.name} | {r.how} (`{r.run.tool}`) | {r.rate:,.0f} | {r.run.p50 * 1e3:.1f} "
            f"| {r.run.p99 * 1e3:.1f} | {r.run.errors} | {r.not_ok} | {r.baseline or '-'} "
            f"| {ratio} | {cpu} | {total:.2f} | {tool_ms:.3f} ({tool_share:.0f} %) |"
        )
    return "\n".join(lines)


def tracing_report(untraced: Row, traced: list[Row]) -> list[str]:
    lines = [
        "## What tracing costs",
        "",
        "POST /orders as in the table (tracing off, TRACE_SAMPLE_RATIO=0), then on a fresh "
        "system per sampling share: 1 is `make run`'s, 0.05 the prod overlay's (spans to a "
        "local file).",
        "",
        "| tracing | orders/s | p99 ms | not OK | CPU ms per order: order, pay, bakery, "
        "customer, envoy | Σ | vs off |",
        "|---|---|---|---|---|---|---|",
    ]
    base = sum(untraced.cpu_ms(p) for p in PROCESSES)
    for r in [untraced, *traced]:
        total = sum(r.cpu_ms(p) for p in PROCESSES)
        label = "off" if r is untraced else r.name.rpartition(" at ")[2]
        vs = "—" if r is untraced else f"{100 * (total / base - 1):+.0f} %"
        cpu = ", ".join(f"{r.cpu_ms(p):.2f}" for p in PROCESSES)
        lines.append(
            f"| {label} | {r.rate:,.0f} | {r.run.p99 * 1e3:.0f} | {r.not_ok} | {cpu} "
            f"| {total:.2f} | {vs} |"
        )
    return [*lines, ""]


def memory_table(memory: dict[str, Memory]) -> str:
    lines = [
        "| process | RSS idle MB | peak RSS MB (VmHWM) | RSS at the end MB |",
        "|---|---|---|---|",
    ]
    for name, m in memory.items():
        lines.append(f"| {name} | {m.idle:.0f} | {m.peak:.0f} | {m.end:.0f} |")
    return "\n".join(lines)


def environment(calibration: float) -> str:
    def out(*cmd: str) -> str:
        done = subprocess.run(cmd, capture_output=True, text=True, check=False)
        return done.stdout.strip()

    commit = out("git", "rev-parse", "--short", "HEAD")
    dirty = " (uncommitted changes)" if out("git", "status", "--porcelain") else ""
    envoy = out(envoy_binary(), "--version").split("version:")[-1].strip().split("/")[1:2]
    wrk_version = out("wrk", "-v").split()[1:2] or ["?"]
    h2load_version = out("h2load", "--version").split()[-1:] or ["?"]
    return (
        f"{datetime.datetime.now(datetime.UTC):%Y-%m-%d %H:%M} UTC, commit {commit}{dirty}, "
        f"{os.cpu_count()} cores, Python {platform.python_version()}, "
        f"Envoy {envoy[0] if envoy else '?'} (--concurrency 1), wrk {wrk_version[0]}, "
        f"{h2load_version[0]}. Machine speed: a fixed pure-Python loop (bench/procstat.py "
        f"calibration_ms) takes {calibration:.0f} ms of CPU here (lower is faster)."
    )


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        prog="python -m bench.benchmark", description=__doc__.split("\n")[0]
    )
    p.add_argument("--seconds", type=int, default=6, help="per row (after a 1 s warm-up)")
    p.add_argument("--connections", type=int, default=64, help="wrk -c; h2load: 8 x c/8 streams")
    p.add_argument(
        "--sustained", type=int, default=60, help="seconds of the sustained run (0: none)"
    )
    p.add_argument(
        "--no-tracing",
        dest="tracing",
        action="store_false",
        help="skip POST /orders with tracing on (two more systems, ~30 s)",
    )
    p.add_argument("--no-save", action="store_true")
    args = p.parse_args(argv)
    require("wrk", "h2load")

    started = time.monotonic()
    calibration = calibration_ms()
    load_before = os.getloadavg()[0]
    with (
        tempfile.TemporaryDirectory(prefix="bread-bench-") as tmp,
        running_system(pathlib.Path(tmp)) as system,
    ):
        pids = system_pids(system)
        idle = {name: memory_mb(pid)[0] for name, pid in pids.items()}
        meter = CpuMeter(pids)
        done = rows(system, meter, args)
        sustained: Sustained | None = None
        if args.sustained:
            print(f"  sustained POST /orders, {args.sustained} s:", file=sys.stderr, flush=True)
            sustained = run_sustained(system, meter, args.sustained, args.connections)
        audit = wait_settled(system.urls, timeout=60)
        memory = {}
        for name, pid in pids.items():
            rss, peak = memory_mb(pid)
            memory[name] = Memory(idle=idle[name], peak=peak, end=rss)
    if args.tracing:
        [untraced] = [r for r in done if r.name == "POST /orders"]
        traced = traced_rows(args, untraced)

    text = "\n".join(
        [
            "# bread benchmark",
            "",
            environment(calibration)
            + f" Load average {load_before:.2f} before, {os.getloadavg()[0]:.2f} after; "
            f"wrk -t2 -c{args.connections}, h2load 8 connections x {max(args.connections // 8, 1)}"
            f" streams, {args.seconds} s per row after a 1 s warm-up; whole run "
            f"{time.monotonic() - started:.0f} s. **The edge's per-caller rate limit is off** "
            "(test systems run without it; one operator token drives every row, which the "
            "limit would hold to EDGE_RATE_LIMIT requests per second).",
            "",
            table(done),
            "",
            "The baselines run first and again last; each row's ratio is to the mean of its "
            "baseline's two runs, and how far they differ shows how much the machine moved during"
            " the run. ops/s counts OK answers only (HTTP 2xx; for gRPC also grpc-status 0, "
            "counted from Envoy's access log for calls through the edge); p50/p99 are of every "
            "response, as the tool measured them. errors: no answer (connect, read, write errors,"
            " timeouts); not OK: answered, but not 2xx / not grpc-status 0. CPU ms/op divides "
            "each process's CPU time over the row by its responses; for the two rows that place "
            "orders, until the queues have drained, so their events' consumers count too. Σ sums "
            "the four services and Envoy. The tool's CPU is the load generator's own (wait4 "
            "rusage): its share of a core shows it is not the bottleneck. RabbitMQ's CPU is not "
            "counted (one broker serves every test on this machine).",
            "",
            *(tracing_report(untraced, traced) if args.tracing else []),
            *(sustained.report() if sustained else []),
            "## Memory",
            "",
            memory_table(memory),
            "",
            "Idle: after start-up, before any request; peak: VmHWM at the end of the run.",
            "",
            "## Money invariants over every order of the run",
            "",
            "OK: " + audit.summary().replace("\n", "; ")
            if audit.ok
            else "VIOLATED:\n\n" + "\n".join(f"- {v}" for v in audit.violations[:20]),
            "",
        ]
    )
    print(text)
    if not args.no_save:
        RESULTS.mkdir(exist_ok=True)
        (RESULTS / "latest.md").write_text(text)
    return 0 if audit.ok else 1


if __name__ == "__main__":
    sys.exit(main())
