"""What tracing costs per order: the saga with tracing off (TRACE_SAMPLE_RATIO=0), with one
order in twenty traced (0.05, the prod overlay's share) and with every one (1), the edge's
sampling the same, alternating, each on a fresh bread.

    python -m bench.tracing_cost [--orders 1000] [--rate 100] [--rounds 2] [--ratios 0 0.05 1]

Orders are placed at a fixed rate, so both runs do the same work per second, and each run
waits until customer's Mypage shows every order PAID and APPROVED. Reported per run: the
CPU milliseconds per order of each service and Envoy, net of what the same processes spend
idle (measured before, over as long: health checks, polls, checkpoints), and the orders
per second PlaceOrder answers as placed flat out for 5 s afterwards. Traced spans go
to the trace file (the edge's through the OTLP receiver in this process, whose CPU is the
client's and not counted).
"""

from __future__ import annotations

import argparse
import pathlib
import tempfile
import time
from dataclasses import replace

from bench.benchmark import system_pids
from bench.procstat import CpuMeter
from harness.load import LoadConfig, run
from harness.system import BreadSystem, running_system
from servicekit.db import open_database

MEASURED = ("order", "pay", "bakery", "customer", "envoy")
SETTLED = (
    "SELECT COUNT(*) FROM mypages WHERE customer_id = ? AND order_status = 'PAID'"
    " AND payment_status = 'APPROVED'"
)


def settle(system: BreadSystem, customer: str, orders: int, timeout: float = 120) -> None:
    db = open_database(system.urls["customer"])
    try:
        deadline = time.monotonic() + timeout
        while db.execute_sql(SETTLED, (customer,)).fetchone()[0] < orders:
            if time.monotonic() > deadline:
                raise RuntimeError(f"{customer}: not every order reached Mypage")
            time.sleep(0.05)
    finally:
        db.close()


def measure(
    ratio: float, orders: int, rate: float, concurrency: int
) -> tuple[float, dict[str, float]]:
    """Orders per second flat out, and net CPU ms per order of each process."""
    with (
        tempfile.TemporaryDirectory(prefix="bread-tracing-") as tmp,
        running_system(pathlib.Path(tmp), trace_ratio=ratio) as system,
    ):
        base = LoadConfig(
            target=system.gateway,
            protocol="grpc",
            mix="place",
            concurrency=concurrency,
            token=system.token(),
        )
        meter = CpuMeter(system_pids(system))
        warm_up = run(replace(base, requests=200, customer_id="warm-up"))
        settle(system, "warm-up", len(warm_up.placed))
        idle_before, idle_started = meter.snapshot(), time.monotonic()
        time.sleep(5)
        idle_rate = {
            k: (v - idle_before[k]) / (time.monotonic() - idle_started)
            for k, v in meter.snapshot().items()
        }
        before, started = meter.snapshot(), time.monotonic()
        result = run(replace(base, requests=orders, rate=rate, customer_id="paced"))
        settle(system, "paced", len(result.placed))
        after, elapsed = meter.snapshot(), time.monotonic() - started
        cpu = {
            name: 1000 * (after[name] - before[name] - idle_rate[name] * elapsed)
            for name in MEASURED
        }
        flat_out = run(replace(base, duration=5.0, customer_id="flat-out"))
        per_order = {name: cpu[name] / len(result.placed) for name in MEASURED}
        return len(flat_out.placed) / flat_out.elapsed, per_order


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--orders", type=int, default=1000)
    parser.add_argument("--rate", type=float, default=100.0, help="orders per second, paced")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--ratios", type=float, nargs="+", default=[0.0, 0.05, 1.0])
    args = parser.parse_args()
    print(f"| ratio | orders/s flat out | CPU ms per order: {', '.join(MEASURED)} | total |")
    print("|---|---|---|---|")
    for _ in range(args.rounds):
        for ratio in args.ratios:
            flat_out, cpu = measure(ratio, args.orders, args.rate, args.concurrency)
            per = ", ".join(f"{cpu[name]:.2f}" for name in MEASURED)
            print(f"| {ratio:g} | {flat_out:.0f} | {per} | {sum(cpu.values()):.2f} |", flush=True)


if __name__ == "__main__":
    main()
