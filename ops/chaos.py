"""Chaos: real faults under steady order load through the edge, then an audit of every order.

    make chaos                                   # against a running `make run`
    make chaos DB=polyglot REPLICAS=2            # the DB and REPLICAS `make run` got
    make chaos SCENARIOS="broker-outage races"   # some of them

The scenarios (one implementation, also run by tests/chaos against a test system):

    broker-outage      RabbitMQ stopped 10 s (rabbitmqctl stop_app ... start_app)
    broker-connections every connection of this bread closed from the broker side, twice
    database-restart   the servers of order's and pay's databases restarted, one after another
    kill-replica       kill -9 of an order replica, then of a pay replica, mid-load
    races              40 cancel/deliver races, each pair sent at the same moment
    poison             an undecodable event published: dead-lettered with its error

Each runs a steady load of PlaceOrder over HTTP/JSON through the edge (harness.load, the
project's one load generator), causes its fault, then drives some paid orders to each end
(accept + deliver, reject, cancel) and audits every order in every service's database
(ops.audit), the dead-letter queues and every replica's readiness. It fails when a figure is
out of bounds or the audit finds anything; each prints what it measured.

The scenarios live here, in ops/, because both `make chaos` and the tests run them: tests
and bench must not import each other, and both may import ops. Every server a scenario stops
is started again in a `finally` (ops.faults), and this runner checks all of them are up
before it exits.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import re
import subprocess
import sys
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field

import aio_pika
import grpc
import httpx

from bread.admin.v1 import faults_pb2, faults_pb2_grpc
from harness.load import LoadConfig, LoadResult
from harness.load import run as run_load
from ops.audit import Expectations, Report, audit, is_ready, read_snapshot
from ops.faults import (
    BROKER,
    Outage,
    Replica,
    Target,
    alive,
    close_broker_connections,
    connection_pids,
    database_server,
    ensure_servers_up,
    kill9,
    take_down,
    wait_until,
)
from ops.profiles import PROFILES, describe
from ops.run import VAR, run_database_urls, slot_ports
from ops.tokens import DevIssuer
from servicekit.events import Topology
from servicekit.registry import NAMES
from servicekit.settings import DEFAULT_AMQP_URL

Say = Callable[[str], None]

# The steady load: a few HTTP clients placing orders through the edge.
LOAD_RATE = 60.0  # orders/s over all clients
LOAD_CLIENTS = 6
REFUSED_LIMIT = 1.0  # % of order requests refused during a broker fault
CONSISTENT_WITHIN = 60.0  # seconds after the fault ended
DATABASE_RECOVERY = 5.0  # seconds after the database is back until orders succeed again
PER_END = 12  # paid orders driven to each end (delivered, rejected, canceled) per scenario
RACES = 40


# ------------------------------------------------------------------------------ the target


def by_service(replicas: Iterable[Replica]) -> dict[str, list[int]]:
    ports: dict[str, list[int]] = {}
    for replica in replicas:
        ports.setdefault(replica.service, []).append(replica.port)
    return ports


def connection_names(target: Target) -> list[str]:
    """What each service names its broker connection (its queue)."""
    return [f"{target.queue_prefix}.{name}" for name in NAMES]


def health_flags(admin_url: str) -> dict[int, set[str]]:
    """Per upstream port: Envoy's health flags for it over every cluster that lists it
    ("healthy", "/failed_active_hc", "/failed_outlier_check", ...)."""
    text = httpx.get(f"{admin_url}/clusters", timeout=2).text
    flags: dict[int, set[str]] = {}
    for line in text.splitlines():
        parts = line.split("::")
        if len(parts) == 4 and parts[2] == "health_flags":
            flags.setdefault(int(parts[1].rpartition(":")[2]), set()).add(parts[3])
    return flags


def routed_ports(admin_url: str) -> dict[int, bool]:
    """Per upstream port: whether every Envoy cluster listing it finds it healthy."""
    return {port: found == {"healthy"} for port, found in health_flags(admin_url).items()}


# ------------------------------------------------------------------------------ outcome


@dataclass
class Outcome:
    name: str
    measured: dict[str, str] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)
    report: Report | None = None
    skipped: str = ""
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        return not self.problems and (self.report is None or self.report.ok)

    def measure(self, what: str, value: str) -> None:
        self.measured[what] = value

    def text(self) -> str:
        if self.skipped:
            return f"== {self.name}: SKIPPED ({self.skipped})"
        verdict = "OK" if self.ok else "FAILED"
        lines = [f"== {self.name}: {verdict} ({self.seconds:.0f} s)"]
        lines += [f"  {what}: {value}" for what, value in self.measured.items()]
        lines += [f"  PROBLEM: {problem}" for problem in self.problems]
        if self.report is not None:
            lines += ["  audit:"] + [f"    {line}" for line in self.report.summary(15).splitlines()]
        return "\n".join(lines)


def signed_in(target: Target) -> httpx.Client:
    """An HTTP client of the edge, signed in as an operator (who may act for any customer)."""
    token = target.issuer.token("chaos", "operator")
    return httpx.Client(
        base_url=target.http, headers={"authorization": f"Bearer {token}"}, timeout=10
    )


# ------------------------------------------------------------------------------ load


class SteadyLoad:
    """harness.load placing orders through the edge, in a thread, for a bounded time."""

    def __init__(
        self, target: Target, seconds: float, rate: float = LOAD_RATE, customer: str = "chaos"
    ) -> None:
        self.config = LoadConfig(
            target=target.http,
            token=target.issuer.token("chaos", "operator"),
            protocol="http",
            mix="place",
            concurrency=LOAD_CLIENTS,
            duration=seconds,
            rate=rate,
            timeout=10.0,
            item="croissant",
            customer_id=customer,
        )
        self.results: list[LoadResult] = []
        self.thread = threading.Thread(target=lambda: self.results.append(run_load(self.config)))
        self.t0 = 0.0

    def start(self) -> SteadyLoad:
        self.t0 = time.perf_counter()
        self.thread.start()
        return self

    def at(self, offset: float) -> None:
        """Wait until offset seconds into the load (when the next fault is due)."""
        time.sleep(max(self.t0 + offset - time.perf_counter(), 0))

    def join(self) -> LoadResult:
        self.thread.join()
        if not self.results:
            raise RuntimeError("the load generator failed")
        return self.results[0]


def measure_refused(out: Outcome, result: LoadResult, limit: float | None) -> None:
    """Orders not answered 2xx; a problem above limit %."""
    share = result.not_ok_share
    codes = ", ".join(f"{k} x{v}" for k, v in result.codes.most_common())
    out.measure(
        "order requests",
        f"{result.requests} in {result.elapsed:.1f} s ({result.request_rate:.0f}/s); "
        f"refused {result.not_ok} = {share:.2f} % ({codes})",
    )
    if limit is not None and share > limit:
        out.problems.append(f"{share:.2f} % of order requests refused (limit {limit} %)")


class RotationWatch:
    """Notes every moment a replica drops out of Envoy's rotation (health checks)."""

    def __init__(self, target: Target, replicas: Sequence[Replica]) -> None:
        self.admin_url = target.admin_url
        self.ports = {r.port: str(r) for r in replicas}
        self.dropped: Counter[str] = Counter()
        self.flags: dict[str, set[str]] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._watch, daemon=True)

    def _watch(self) -> None:
        while not self._stop.wait(0.5):
            try:
                flags = health_flags(self.admin_url)
            except httpx.HTTPError:
                continue
            for port, name in self.ports.items():
                found = flags.get(port, {"not listed"})
                if found != {"healthy"}:
                    self.dropped[name] += 1
                    self.flags.setdefault(name, set()).update(found - {"healthy"})

    def __enter__(self) -> RotationWatch:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def check(self, out: Outcome) -> None:
        if self.dropped:
            out.problems.append(
                "out of Envoy's rotation: "
                + ", ".join(
                    f"{name} ~{n * 0.5:.1f} s ({' '.join(sorted(self.flags[name]))})"
                    for name, n in self.dropped.items()
                )
            )
        else:
            out.measure("rotation", "every replica stayed in Envoy's rotation")


def same_processes(out: Outcome, before: Sequence[Replica], after: Sequence[Replica]) -> None:
    if sorted(map(str, before)) != sorted(map(str, after)):
        out.problems.append(
            f"service processes changed: before {sorted(map(str, before))}, "
            f"after {sorted(map(str, after))}"
        )
    else:
        out.measure("processes", f"the same {len(before)} PIDs before and after")


# ------------------------------------------------------------------------------ endings


def wait_tickets(target: Target, order_ids: Sequence[str], timeout: float) -> bool:
    """Until the bakery has a ticket for each order (OrderPlaced reached it)."""
    urls = {"order": target.urls["order"], "bakery": target.urls["bakery"]}
    try:
        wait_until(
            lambda: set(order_ids) <= (read_snapshot(urls).tickets or {}).keys(),
            timeout,
            "tickets",
        )
    except TimeoutError:
        return False
    return True


ENDINGS: list[tuple[tuple[str, ...], str]] = [
    (("/bakeries/{}:accept", "/bakeries/{}:deliver"), "DELIVERED"),
    (("/bakeries/{}:reject",), "REJECTED"),
    (("/orders/{}:cancel",), "CANCELED"),
]


def drive_endings(
    target: Target,
    out: Outcome,
    placed: Sequence[str],
    per_end: int | None = PER_END,
    threads: int = 4,
) -> dict[str, set[str]]:
    """Take paid orders (up to per_end to each end; None: all of them) to an end through the
    edge, by turns: accept + deliver, reject, cancel. Their expected ends."""
    paid = {
        oid
        for oid, order in read_snapshot({"order": target.urls["order"]}).orders.items()
        if order.status == "PAID"
    }
    chosen = [oid for oid in placed if oid in paid]
    if per_end is not None:
        chosen = chosen[: per_end * len(ENDINGS)]
    if not wait_tickets(target, chosen, CONSISTENT_WITHIN):
        out.problems.append("the bakery has no ticket for some paid orders after 60 s")
        return {}
    expected: dict[str, set[str]] = {}
    refused: list[str] = []

    def drive(share: Sequence[tuple[int, str]]) -> None:
        with signed_in(target) as http:
            for n, oid in share:
                calls, end = ENDINGS[n % len(ENDINGS)]
                for call in calls:
                    response = http.post(call.format(oid), json={})
                    if response.status_code != 200:
                        refused.append(
                            f"{call.format(oid)}: {response.status_code} {response.text}"
                        )
                expected[oid] = {end}

    numbered = list(enumerate(chosen))
    workers = [threading.Thread(target=drive, args=(numbered[i::threads],)) for i in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    ends = Counter(end for ends in expected.values() for end in ends)
    out.measure("driven to an end", ", ".join(f"{k} {v}" for k, v in sorted(ends.items())))
    if refused:
        out.problems.append(f"{len(refused)} baker/customer calls refused: {refused[:3]}")
    return expected


def audit_target(
    target: Target, expect: Expectations | None = None, timeout: float = CONSISTENT_WITHIN
) -> Report:
    return audit(
        target.urls,
        amqp_url=target.amqp_url,
        queue_prefix=target.queue_prefix,
        replicas=by_service(target.running()),
        expect=expect,
        timeout=timeout,
    )


def settle_and_finish(
    target: Target, out: Outcome, result: LoadResult, since: float, say: Say
) -> None:
    """Every order consistent within CONSISTENT_WITHIN of `since` (perf_counter: when the
    fault ended), then some driven to each end and the whole audit again."""
    told = Expectations(placed=result.placed, failed=result.failed_orders)
    say("auditing the orders of the load")
    remaining = CONSISTENT_WITHIN - (time.perf_counter() - since)
    first = audit_target(target, told, timeout=max(remaining, 1.0))
    if not first.ok:
        out.problems.append(
            f"not consistent within {CONSISTENT_WITHIN:.0f} s of the fault's end"
            f" ({len(first.violations)} violations)"
        )
        out.report = first
        return
    out.measure(
        "consistent after the fault ended",
        f"{time.perf_counter() - since - 0:.1f} s (every order, dead letters, readiness)",
    )
    say("driving paid orders to each end")
    ends = drive_endings(target, out, result.placed)
    expect = Expectations(ends=ends, placed=result.placed, failed=result.failed_orders)
    out.report = audit_target(target, expect)
    out.measure("final audit settled in", f"{out.report.settle_seconds:.1f} s")


# ------------------------------------------------------------------------------ scenarios


def broker_outage(target: Target, say: Say, hold: float = 10.0) -> Outcome:
    """(a) RabbitMQ stopped `hold` seconds under load: at most 1 % refused, no process
    restarted, every replica ready and in rotation, every order consistent within 60 s."""
    out = Outcome("broker-outage")
    before = target.running()
    with RotationWatch(target, before) as watch:
        load = SteadyLoad(target, seconds=hold + 16).start()
        load.at(4.0)
        say(f"stopping RabbitMQ for {hold:.0f} s")
        outage = take_down(BROKER, hold)
        say(f"RabbitMQ back after {outage.back - outage.began:.1f} s")
        connected = reconnected(len(before), connection_names(target), outage.back)
        result = load.join()
    out.measure("outage", outage.offsets(result.started))
    out.measure(
        "every service connected again", f"{connected - outage.back:.1f} s after the broker"
    )
    measure_refused(out, result, REFUSED_LIMIT)
    watch.check(out)
    settle_and_finish(target, out, result, outage.back, say)
    same_processes(out, before, target.running())
    return out


def broker_connections(target: Target, say: Say) -> Outcome:
    """(b) Every connection of this bread closed from the broker side, twice (the second time
    once all are back), under load."""
    out = Outcome("broker-connections")
    before = target.running()
    names = connection_names(target)
    closed, back_after = [], []
    with RotationWatch(target, before) as watch:
        load = SteadyLoad(target, seconds=24).start()
        for at in (4.0, 5.0):
            load.at(at)
            closed.append(close_broker_connections(names))
            cut = time.perf_counter()
            say(f"closed {closed[-1]} broker connections")
            back_after.append(reconnected(len(before), names, cut) - cut)
        last = time.perf_counter()
        result = load.join()
    out.measure("connections closed", " then ".join(map(str, closed)))
    out.measure(
        "every service connected again after", " and ".join(f"{s:.1f} s" for s in back_after)
    )
    if min(closed) < len(before):
        out.problems.append(f"only {min(closed)} connections found for {len(before)} processes")
    measure_refused(out, result, REFUSED_LIMIT)
    watch.check(out)
    settle_and_finish(target, out, result, last, say)
    same_processes(out, before, target.running())
    return out


def reconnected(count: int, names: Iterable[str], since: float, timeout: float = 30.0) -> float:
    """When (perf_counter) `count` connections with these names were open again (a new
    connection each: the broker lists it as soon as it is open)."""
    wanted = list(names)
    try:
        return wait_until(lambda: len(connection_pids(wanted)) >= count, timeout, "reconnected")
    except TimeoutError:
        return since + timeout


def database_restart(target: Target, say: Say, hold: float = 3.0) -> Outcome:
    """(c) The servers of order's and of pay's database restarted, one after the other, under
    load: orders fail only while a database they need is down, with a clean 503 (never a
    500; a 504, a call that waited on the database past its timeout, is reported but
    allowed: the order is FAILED and compensated like any other), succeed again within 5 s
    of it being back, and end consistent."""
    out = Outcome("database-restart")
    servers = []
    for name in ("order", "pay"):
        server = database_server(target.urls[name])
        if server is not None and server not in servers:
            servers.append(server)
    if not servers:
        out.skipped = "order and pay are on SQLite (use DB=polyglot or REPLICAS=2)"
        return out
    out.measure(
        "databases", ", ".join(f"{n} on {describe(target.urls[n])}" for n in ("order", "pay"))
    )
    before = target.running()
    outages: list[Outage] = []
    load = SteadyLoad(target, seconds=12 + 11 * len(servers)).start()
    next_at = 3.0
    for server in servers:
        load.at(next_at)
        say(f"restarting {server.name} (down {hold:.0f} s)")
        outages.append(take_down(server, hold))
        say(f"{server.name} back after {outages[-1].back - outages[-1].began:.1f} s")
        next_at = outages[-1].back - load.t0 + 6.0
    last_back = outages[-1].back
    result = load.join()
    for outage in outages:
        out.measure(f"{outage.server} outage", outage.offsets(result.started))
    measure_refused(out, result, None)
    _check_database_windows(out, result, outages)
    settle_and_finish(target, out, result, last_back, say)
    same_processes(out, before, target.running())
    return out


def _check_database_windows(out: Outcome, result: LoadResult, outages: Sequence[Outage]) -> None:
    origin = result.started
    windows = [(o.began - origin, o.back - origin) for o in outages]
    down_for_sure = [(o.stopped - origin, o.restarting - origin) for o in outages]
    requests = sorted(zip(result.offsets, result.latencies, result.statuses, strict=True))
    bad_status: list[str] = []
    timed_out: list[str] = []
    outside: list[str] = []
    for start, latency, status in requests:
        if 200 <= status < 300:
            continue
        when = f"{status or 'no answer'} at {start:.1f} s after {latency * 1e3:.0f} ms"
        if status == 504:
            timed_out.append(when)
        elif status != 503:
            bad_status.append(when)
        if not any(start + latency >= a and start <= b + DATABASE_RECOVERY for a, b in windows):
            outside.append(when)
    if bad_status:
        out.problems.append(
            f"{len(bad_status)} refused other than with a clean 503 or 504: {bad_status[:5]}"
        )
    if timed_out:
        # DEADLINE_EXCEEDED is clean too (the order is FAILED and compensated), but it means
        # a call waited on the database until a timeout instead of failing at once.
        out.measure("504 (a call outlived its timeout)", ", ".join(timed_out[:5]))
    if outside:
        out.problems.append(f"{len(outside)} orders refused outside any outage: {outside[:5]}")
    if result.elapsed < windows[-1][1] + DATABASE_RECOVERY + 1:
        out.problems.append("the load ended too soon after the last outage to see recovery")
    for n, (outage, (_, back)) in enumerate(zip(outages, windows, strict=True)):
        end = windows[n + 1][0] if n + 1 < len(windows) else result.elapsed
        down, up = down_for_sure[n]
        during = [r for r in requests if down <= r[0] and r[0] + r[1] < up]
        # Requests still running when the next outage began belong to that one.
        after = [r for r in requests if back <= r[0] and r[0] + r[1] < end]
        failures = [r[0] for r in after if not 200 <= r[2] < 300]
        resumed_from = max(failures, default=back)
        first_ok = next((r[0] for r in after if r[0] >= resumed_from and 200 <= r[2] < 300), None)
        refused_during = sum(1 for r in during if not 200 <= r[2] < 300)
        if first_ok is None:
            out.problems.append(f"no order succeeded after {outage.server} was back")
            continue
        recovered = first_ok - back
        out.measure(
            f"{outage.server}",
            f"{refused_during} of {len(during)} orders refused while it was surely down"
            f" ({up - down:.1f} s); succeeding again {recovered:.2f} s after it was back",
        )
        if recovered > DATABASE_RECOVERY:
            out.problems.append(
                f"orders succeeded again only {recovered:.1f} s after {outage.server} was back"
                f" (limit {DATABASE_RECOVERY:.0f} s)"
            )


def kill_replica(target: Target, say: Say) -> Outcome:
    """(d) kill -9 of an order replica, then of a pay replica, under load, in the middle of
    their transactions: pay answers after 50-150 ms (its fault injection), so each replica
    always has Pay calls in flight and orders PENDING. The audit stays clean."""
    out = Outcome("kill-replica")
    pay_ports = [r.port for r in target.running() if r.service == "pay"]
    if not set_pay_delay(pay_ports, 50, 150):
        out.measure(
            "pay delay", "refused (no FAULT_INJECTION=on?): killing without Pay calls held open"
        )
    try:
        load = SteadyLoad(target, seconds=20).start()
        last = time.perf_counter()
        for at, service in ((4.0, "order"), (11.0, "pay")):
            load.at(at)
            victim = next(r for r in target.running() if r.service == service)
            pending = read_snapshot({"order": target.urls["order"]}).orders.values()
            in_flight = sum(1 for order in pending if order.status == "PENDING")
            kill9(victim.pid)
            killed_at = time.perf_counter()
            say(f"killed {victim} with {in_flight} orders PENDING")
            successor = target.revive(victim)
            last = time.perf_counter()
            out.measure(
                f"{service} replica killed",
                f"{victim} at {killed_at - load.t0:.1f} s with {in_flight} orders PENDING;"
                f" {successor} ready and routed {last - killed_at:.1f} s later",
            )
            if alive(victim.pid):
                out.problems.append(f"{victim} survived kill -9")
        result = load.join()
    finally:
        set_pay_delay([r.port for r in target.running() if r.service == "pay"], 0, 0)
    measure_refused(out, result, None)
    settle_and_finish(target, out, result, last, say)
    return out


def set_pay_delay(ports: Iterable[int], low_ms: int, high_ms: int) -> bool:
    """Pay's own fault injection (bread.admin.v1, on pay's port; off unless FAULT_INJECTION=on):
    every Pay call waits low_ms..high_ms first. False if a replica refused."""
    faults = faults_pb2.Faults(delay_min_ms=low_ms, delay_max_ms=high_ms)
    accepted = True
    for port in ports:
        with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
            try:
                faults_pb2_grpc.FaultInjectionStub(channel).SetFaults(faults, timeout=5)
            except grpc.RpcError:
                accepted = False
    return accepted


def races(target: Target, say: Say, count: int = RACES) -> Outcome:
    """(e) `count` paid, accepted orders; for each, deliver and cancel sent at the same moment.
    Never canceled (or refunded) and delivered; no 5xx from either call; Mypage agrees."""
    out = Outcome("races")
    load = SteadyLoad(target, seconds=18, rate=30, customer="chaos-race-load").start()
    with signed_in(target) as http:
        ids: list[str] = []
        attempts = 0
        while len(ids) < count and attempts < 3 * count:
            attempts += 1
            response = http.post(
                "/orders", json={"item": "baguette", "qty": 2, "customerId": "chaos-race"}
            )
            if response.status_code == 200:
                ids.append(response.json()["id"])
        if len(ids) < count:
            out.problems.append(f"placed only {len(ids)} of {count} orders")
        if not wait_tickets(target, ids, CONSISTENT_WITHIN):
            out.problems.append("the bakery has no ticket for some race orders after 60 s")
        accepted = [http.post(f"/bakeries/{oid}:accept", json={}).status_code for oid in ids]
        if set(accepted) != {200}:
            out.problems.append(f"accept answered {Counter(accepted)}")
    urls = {"order": target.urls["order"]}

    def all_confirmed() -> bool:
        orders = read_snapshot(urls).orders
        return all(oid in orders and orders[oid].status == "CONFIRMED" for oid in ids)

    try:
        wait_until(all_confirmed, CONSISTENT_WITHIN, "race orders CONFIRMED")
    except TimeoutError:
        out.problems.append("not every race order CONFIRMED after 60 s")
    say(f"racing deliver against cancel for {len(ids)} orders")
    unclean: list[str] = []
    answers = _race(target, ids, unclean)
    result = load.join()
    measure_refused(out, result, None)
    delivered = {oid for oid, (deliver, _) in answers.items() if deliver == 200}
    deliver_codes = Counter(deliver for deliver, _ in answers.values())
    cancel_codes = Counter(cancel for _, cancel in answers.values())
    out.measure(
        "answers",
        f"deliver {dict(sorted(deliver_codes.items()))},"
        f" cancel {dict(sorted(cancel_codes.items()))}",
    )
    if unclean:
        out.problems.append(
            f"{len(unclean)} calls answered other than 200 or a clean 400 FAILED_PRECONDITION:"
            f" {unclean[:5]}"
        )
    expect = Expectations(
        ends={oid: {"DELIVERED", "CANCELED"} for oid in ids},
        placed=result.placed,
        failed=result.failed_orders,
    )
    out.report = audit_target(target, expect)
    final = read_snapshot({"order": target.urls["order"]}).orders
    ends = Counter(final[oid].status for oid in ids if oid in final)
    out.measure("race ends", ", ".join(f"{k} {v}" for k, v in sorted(ends.items())))
    wrong = [
        oid
        for oid in ids
        if oid in final and (final[oid].status == "DELIVERED") != (oid in delivered)
    ]
    if wrong:
        out.problems.append(
            f"{len(wrong)} orders whose end disagrees with the deliver call's answer: {wrong[:3]}"
        )
    return out


def _failed_precondition(response: httpx.Response) -> bool:
    """A clean refusal: 400 with the JSON error of FAILED_PRECONDITION (gRPC code 9)."""
    try:
        return response.status_code == 400 and response.json().get("code") == 9
    except ValueError:
        return False


def _race(
    target: Target, ids: Sequence[str], unclean: list[str], parallel: int = 4
) -> dict[str, tuple[int, int]]:
    """For each order: POST :deliver and POST :cancel released together by a barrier.
    (deliver status, cancel status) per order, 0 when there was no answer; a refusal other
    than FAILED_PRECONDITION is added to unclean."""
    answers: dict[str, tuple[int, int]] = {}
    clients = [signed_in(target) for _ in range(2 * parallel)]
    try:
        for client in clients:  # connected before the race: no connect time on one side
            client.get("/menu")
        for first in range(0, len(ids), parallel):
            batch = ids[first : first + parallel]
            codes: dict[tuple[str, str], int] = {}
            threads = []
            for n, oid in enumerate(batch):
                barrier = threading.Barrier(2)
                for side, (path, client) in enumerate(
                    (
                        (f"/bakeries/{oid}:deliver", clients[2 * n]),
                        (f"/orders/{oid}:cancel", clients[2 * n + 1]),
                    )
                ):

                    def call(
                        oid: str = oid,
                        path: str = path,
                        client: httpx.Client = client,
                        side: int = side,
                        barrier: threading.Barrier = barrier,
                        codes: dict[tuple[str, str], int] = codes,
                    ) -> None:
                        barrier.wait(10)
                        try:
                            response = client.post(path, json={"reason": "race"})
                        except httpx.HTTPError as error:
                            codes[(oid, "deliver" if side == 0 else "cancel")] = 0
                            unclean.append(f"{path}: {error!r}")
                            return
                        codes[(oid, "deliver" if side == 0 else "cancel")] = response.status_code
                        if response.status_code != 200 and not _failed_precondition(response):
                            unclean.append(f"{path}: {response.status_code} {response.text}")

                    threads.append(threading.Thread(target=call))
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join()
            for oid in batch:
                answers[oid] = (codes.get((oid, "deliver"), 0), codes.get((oid, "cancel"), 0))
    finally:
        for client in clients:
            client.close()
    return answers


POISON_CONSUMERS = ("bakery", "customer")  # the services that consume OrderPlaced


def poison(target: Target, say: Say) -> Outcome:
    """(f) An undecodable OrderPlaced published to the exchange: every consumer of it
    dead-letters it with its error and carries on consuming."""
    out = Outcome("poison")
    load = SteadyLoad(target, seconds=10, rate=40).start()
    load.at(2.0)
    message_id = f"poison-{uuid.uuid4().hex[:8]}"
    say(f"publishing {message_id}")
    published = time.perf_counter()
    found = asyncio.run(_publish_poison_and_take_dead_letters(target, message_id))
    dead_lettered = time.perf_counter()
    result = load.join()
    for service in POISON_CONSUMERS:
        error = found.get(service)
        if error is None:
            out.problems.append(f"{service} did not dead-letter the poison message within 30 s")
        elif "Error" not in error:
            out.problems.append(f"{service}'s dead letter carries no error: {error!r}")
        else:
            out.measure(f"{service} dead-lettered it", error[:100])
    out.measure("dead-lettered within", f"{dead_lettered - published:.1f} s")
    after = [t for t in result.placed_offsets if t + result.started > dead_lettered]
    out.measure("orders placed after it was dead-lettered", str(len(after)))
    measure_refused(out, result, REFUSED_LIMIT)
    # Consumers carried on: every paid order, those placed after the poison too, has its
    # ticket and Mypage row (the audit), and the DLQs are empty again.
    out.report = audit_target(
        target, Expectations(placed=result.placed, failed=result.failed_orders)
    )
    return out


async def _publish_poison_and_take_dead_letters(target: Target, message_id: str) -> dict[str, str]:
    """Publish the poison; take it out of each consumer's DLQ again. x-error per service."""
    topology = Topology(target.exchange)
    found: dict[str, str] = {}
    connection = await aio_pika.connect(target.amqp_url)
    async with connection:
        channel = await connection.channel()
        exchange = await channel.get_exchange(topology.exchange)
        await exchange.publish(
            aio_pika.Message(
                b"\xff not protobuf",
                message_id=message_id,
                type="bread.events.v1.OrderPlaced",
                correlation_id="poison",
            ),
            routing_key="bread.events.v1.OrderPlaced",
        )
        others: list[aio_pika.abc.AbstractIncomingMessage] = []
        deadline = time.monotonic() + 30
        for service in POISON_CONSUMERS:
            dlq = await channel.get_queue(f"{target.queue_prefix}.{service}.dlq")
            while service not in found and time.monotonic() < deadline:
                message = await dlq.get(no_ack=False, fail=False)
                if message is None:
                    await asyncio.sleep(0.1)
                elif message.message_id == message_id:
                    found[service] = str((message.headers or {}).get("x-error"))
                    await message.ack()
                else:
                    others.append(message)  # not ours: back where it was, afterwards
        for message in others:
            await message.nack(requeue=True)
    return found


SCENARIOS: dict[str, Callable[[Target, Say], Outcome]] = {
    "broker-outage": broker_outage,
    "broker-connections": broker_connections,
    "database-restart": database_restart,
    "kill-replica": kill_replica,
    "races": races,
    "poison": poison,
}


def run_scenario(name: str, target: Target, say: Say = print) -> Outcome:
    started = time.perf_counter()
    try:
        outcome = SCENARIOS[name](target, say)
    finally:
        ensure_servers_up()
    outcome.seconds = time.perf_counter() - started
    return outcome


# ------------------------------------------------------------------------------ make run


class RunningBread:
    """`make run`'s bread: supervisord's programs, Envoy on 8088/9901, queue prefix bread."""

    SUPERVISED = re.compile(r"^bread:(\w+)-(\d+)\s+RUNNING\s+pid (\d+)", re.MULTILINE)

    def __init__(self, profile: str, replicas: int) -> None:
        self.conf = VAR / "supervisord.conf"
        if not self.conf.exists():
            raise SystemExit(f"{self.conf} is missing: start `make run` first")
        self.slot_ports = {name: slot_ports(name) for name in NAMES}
        self._urls = run_database_urls(profile, replicas)
        text = self.conf.read_text()
        for name, url in self._urls.items():
            if f'DATABASE_URL="{url}"' not in text:
                raise SystemExit(
                    f"`make run` was not started with DB={profile} REPLICAS={replicas}:"
                    f" {name} does not use {url} ({self.conf}); give make chaos the same"
                )
        # The load and the races are one caller each, far above a caller's fair share.
        if "filter_enabled: {default_value: {numerator: 0," not in (VAR / "envoy.yaml").read_text():
            raise SystemExit(
                "the edge's rate limit is on: start `make run EDGE_RATE_LIMIT=0` for make chaos"
            )

    http = "http://127.0.0.1:8088"
    admin_url = "http://127.0.0.1:9901"
    # The key `make run`'s edge verifies tokens with.
    issuer = DevIssuer()
    exchange = "bread.events"
    queue_prefix = "bread"

    @property
    def amqp_url(self) -> str:
        return os.environ.get("AMQP_URL", DEFAULT_AMQP_URL)

    @property
    def urls(self) -> dict[str, str]:
        return dict(self._urls)

    def _status(self) -> str:
        return subprocess.run(
            [sys.executable, "-m", "supervisor.supervisorctl", "-c", str(self.conf), "status"],
            capture_output=True,
            text=True,
            check=False,
        ).stdout

    def running(self) -> list[Replica]:
        return [
            Replica(name, self.slot_ports[name][int(slot) - 1], int(pid))
            for name, slot, pid in self.SUPERVISED.findall(self._status())
        ]

    def revive(self, replica: Replica) -> Replica:
        """supervisord restarts a program that exits: wait for it, ready and routed."""

        def successor() -> Replica | None:
            return next(
                (r for r in self.running() if r.port == replica.port and r.pid != replica.pid),
                None,
            )

        wait_until(lambda: successor() is not None, 30, f"supervisord restarting {replica}")
        wait_until(
            lambda: (
                is_ready(replica.service, replica.port)
                and routed_ports(self.admin_url).get(replica.port, False)
            ),
            30,
            f"{replica.service} :{replica.port} ready and routed",
        )
        new = successor()
        assert new is not None
        return new


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m ops.chaos", description=__doc__.split("\n")[0])
    parser.add_argument("--profile", default="default", choices=PROFILES)
    parser.add_argument("--replicas", type=int, default=1)
    parser.add_argument(
        "--only", nargs="*", choices=list(SCENARIOS), help="scenarios to run (default: all)"
    )
    args = parser.parse_args(argv)
    # aiormq logs every refused connect while the broker is down on purpose: not news here.
    logging.getLogger("aiormq").setLevel(logging.CRITICAL)
    target = RunningBread(args.profile, args.replicas)
    if not target.running():
        print("no bread service is running: start `make run` first", file=sys.stderr)
        return 2
    print(
        "chaos against `make run`: "
        + ", ".join(f"{n} on {describe(u)}" for n, u in target.urls.items()),
        flush=True,
    )
    outcomes = []
    try:
        for name in args.only or list(SCENARIOS):
            print(f"-- {name}", flush=True)
            outcomes.append(run_scenario(name, target, lambda s: print(f"   {s}", flush=True)))
            print(outcomes[-1].text(), flush=True)
    finally:
        restarted = ensure_servers_up()
        if restarted:
            print(f"restarted {', '.join(restarted)}", flush=True)
    print()
    for outcome in outcomes:
        verdict = "SKIPPED" if outcome.skipped else "OK" if outcome.ok else "FAILED"
        print(f"{outcome.name:20s} {verdict}")
    return 0 if all(o.ok for o in outcomes) else 1


if __name__ == "__main__":
    sys.exit(main())
