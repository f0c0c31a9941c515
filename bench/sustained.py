"""The sustained run of `make bench`: POST /orders held for a minute, and whether the events
of those orders are consumed at the same rate.

wrk places orders through the edge at full speed for `seconds`. Beside it two Python clients
(harness.load, in place of two of wrk's connections) place up to LAG_RATE orders per second of
their own customer, whose Mypage rows are polled in customer's database: the time from each
such order's answer until its row shows PAID is the Mypage lag, a sample of what every order
goes through under the same load. The queues' depths are printed every 5 s, and after the
load how long they take to drain.
"""

from __future__ import annotations

import json
import math
import sys
import time
from dataclasses import dataclass

from bench.procstat import CpuMeter
from bench.scenario import run_in_thread
from harness.load import LoadConfig
from harness.queues import QueueMonitor, Sample, growing, wait_drained
from harness.system import BreadSystem
from harness.tools import ToolRun, parse_wrk, start_wrk
from servicekit.db import open_database

LAG_RATE = 10.0  # sampled orders per second, beside wrk's
# The sampler's clients take their places from wrk's connections: at 64 orders in flight the
# edge's PlaceOrder breaker (pay_max_requests) is full, and more would be refused (503).
SAMPLER_CLIENTS = 2
SERVICES = ("order", "pay", "bakery", "customer")
PROCESSES = (*SERVICES, "envoy")
POLL = 0.05  # seconds between two reads of the sampled Mypage rows


@dataclass
class Sustained:
    seconds: int
    connections: int
    run: ToolRun
    cpu: dict[str, float]  # process -> CPU seconds from wrk's start until the queues drained
    sampled: int  # orders the lag sampler placed
    lags: list[float]  # seconds, ascending, one per sampled order that showed PAID
    samples: list[Sample]
    drained: float | None  # seconds after the load until every queue was empty
    growing: list[str]  # queues that grew through the run

    @property
    def orders(self) -> int:
        return self.run.ok + self.sampled

    def lag(self, q: int) -> float:
        """Nearest-rank percentile of the sampled lags (there is at least one)."""
        return self.lags[max(math.ceil(len(self.lags) * q / 100) - 1, 0)]

    def report(self) -> list[str]:
        per_order = {p: self.cpu[p] * 1e3 / self.orders for p in PROCESSES if self.orders}
        queues = sorted({q for _, depths in self.samples for q in depths})
        depth_rows = [
            f"| {at:.0f} | " + " | ".join(str(depths.get(q, "")) for q in queues) + " |"
            for at, depths in self.samples
        ]
        missing = self.sampled - len(self.lags)
        return [
            f"## Sustained: POST /orders for {self.seconds} s (`{self.run.tool}`)",
            "",
            f"{self.run.rate:,.0f} orders/s through the edge, p50 {self.run.p50 * 1e3:.0f} ms, "
            f"p99 {self.run.p99 * 1e3:.0f} ms, {self.run.errors} errors, "
            f"{self.run.non_2xx} not 2xx; wrk used {100 * self.run.cpu / self.run.elapsed:.0f} % "
            f"of a core. CPU ms per placed order ({self.orders:,} placed by wrk and the "
            "sampler; until the queues drained; the work of the requests not placed is counted "
            "in): "
            + ", ".join(f"{p} {ms:.2f}" for p, ms in per_order.items())
            + f", Σ {sum(per_order.values()):.2f}.",
            "",
            f"Mypage lag (placed, i.e. the client has its answer → Mypage row PAID, "
            f"{len(self.lags)} orders sampled at "
            f"up to {LAG_RATE:g}/s by {SAMPLER_CLIENTS} clients beside wrk's "
            f"{self.connections - SAMPLER_CLIENTS}, polled every {POLL * 1e3:.0f} ms): "
            + (
                f"p50 {self.lag(50) * 1e3:.0f} ms, p95 {self.lag(95) * 1e3:.0f} ms, "
                f"p99 {self.lag(99) * 1e3:.0f} ms, max {self.lag(100) * 1e3:.0f} ms"
                if self.lags
                else "none, no sampled order was placed"
            )
            + (f"; {missing} never showed PAID" if missing else "")
            + ".",
            "",
            "Queues drained "
            + (f"{self.drained:.1f} s after the load" if self.drained is not None else "NEVER")
            + "; "
            + (
                f"**growing without bound: {', '.join(self.growing)}**"
                if self.growing
                else "no queue grew without bound"
            )
            + " (ready messages by passive queue.declare, every 5 s from the load's start):",
            "",
            "| s | " + " | ".join(q.rsplit(".", 1)[-1] for q in queues) + " |",
            "|" + "---|" * (len(queues) + 1),
            *depth_rows,
            "",
        ]


def _print_sample(sample: Sample) -> None:
    at, depths = sample
    line = "  ".join(f"{q.rsplit('.', 1)[-1]} {n:6d}" for q, n in depths.items())
    print(f"    {at:5.0f} s  {line}", file=sys.stderr, flush=True)


def run_sustained(
    system: BreadSystem, meter: CpuMeter, seconds: int, connections: int
) -> Sustained:
    token = system.token()
    queues = [f"{system.queue_prefix}.{name}" for name in SERVICES]
    lag_customer = f"bench-lag-{time.time_ns()}"
    body = json.dumps(
        {"item": "cake", "qty": 1, "customerId": "bench-sustained"}, separators=(",", ":")
    )
    db = open_database(system.urls["customer"])
    query = "SELECT order_id FROM mypages WHERE customer_id = ? AND order_status = 'PAID'"
    seen: dict[str, float] = {}

    def poll() -> None:
        now = time.perf_counter()
        for (order_id,) in db.execute_sql(query, (lag_customer,)).fetchall():
            seen.setdefault(order_id, now)

    try:
        with QueueMonitor(system.amqp_url, queues, report=_print_sample) as monitor:
            before = meter.snapshot()
            wrk = start_wrk(
                system.http,
                ["/orders"],
                method="POST",
                body=body,
                token=token,
                connections=connections - SAMPLER_CLIENTS,
                seconds=seconds,
            )
            sampler, box = run_in_thread(
                LoadConfig(
                    target=system.gateway,
                    protocol="grpc",
                    mix="place",
                    concurrency=SAMPLER_CLIENTS,
                    rate=LAG_RATE,
                    duration=seconds,
                    customer_id=lag_customer,
                    token=token,
                )
            )
            while sampler.is_alive():
                poll()
                time.sleep(POLL)
            output, wrk_cpu = wrk.finish()
            load_ended = time.monotonic()
            sampled = box["result"]
            deadline = time.perf_counter() + 60
            while len(seen) < len(sampled.placed) and time.perf_counter() < deadline:
                poll()
                time.sleep(POLL)
            drained = wait_drained(system.amqp_url, queues, since=load_ended)
            cpu = meter.spent(before, meter.snapshot())  # the consumers' catching up included
            samples = list(monitor.samples)
    finally:
        db.close()
    # Placed: when the client had its answer (pay is called within PlaceOrder, so the order
    # is PAID by then); offsets identify a request's latency among all of them.
    latency = dict(zip(sampled.offsets, sampled.latencies, strict=True))
    lags = sorted(
        seen[oid] - (sampled.started + offset + latency[offset])
        for oid, offset in zip(sampled.placed, sampled.placed_offsets, strict=True)
        if oid in seen
    )
    # Only the samples taken while wrk ran tell whether a queue kept up.
    during = [s for s in samples if s[0] <= seconds + 1]
    return Sustained(
        seconds=seconds,
        connections=connections,
        run=parse_wrk(output, wrk_cpu, " ".join(["wrk", *wrk.command[1:4]])),
        cpu=cpu,
        sampled=len(sampled.placed),
        lags=lags,
        samples=samples,
        drained=drained,
        growing=[q.rsplit(".", 1)[-1] for q in queues if growing(during, q)],
    )
