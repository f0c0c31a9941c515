"""Real faults for the chaos scenarios (ops/chaos.py) and the fault tests: stop and start the
broker and the database servers, close broker connections, kill -9 a process; and what they
act on, a running bread (Target: a test system or `make run`).

Every stop is undone in a `finally` and waits until the server accepts connections again;
`ensure_servers_up()` restores anything found down (the tests call it after every chaos test,
`make chaos` before it exits). The commands are the ones this machine runs the servers with:

    RabbitMQ    rabbitmqctl stop_app / start_app (the node stays up; rabbitmq-server -detached
                starts a node that is gone)
    PostgreSQL  pg_ctlcluster --skip-systemctl-redirect <version> main stop / start
    MariaDB     start-stop-daemon --stop --exec /usr/sbin/mariadbd --retry 30 (graceful), then
                start-stop-daemon --start --oknodo --background --exec /usr/sbin/mariadbd
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import pathlib
import re
import signal
import subprocess
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, Protocol

import aio_pika
import psycopg2
import pymysql

from ops.tokens import DevIssuer
from servicekit.settings import DEFAULT_AMQP_URL

CONNECTION_NAME = re.compile(r'\{"connection_name","([^"]*)"\}')
BACK_TIMEOUT = 90.0  # seconds a restarted server gets to accept connections again


def _run(*command: str, timeout: float = 60.0) -> str:
    result = subprocess.run(command, capture_output=True, text=True, timeout=timeout, check=False)
    if result.returncode != 0:
        raise RuntimeError(
            f"{' '.join(command)} exited {result.returncode}: {result.stderr or result.stdout}"
        )
    return result.stdout


def wait_until(condition: Callable[[], bool], timeout: float, what: str) -> float:
    """Poll condition until it holds; return when it did (time.perf_counter())."""
    deadline = time.monotonic() + timeout
    while True:
        if condition():
            return time.perf_counter()
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {timeout:.0f}s waiting for {what}")
        time.sleep(0.1)


# ------------------------------------------------------------------------------ targets


@dataclass(frozen=True)
class Replica:
    service: str
    port: int
    pid: int

    def __str__(self) -> str:
        return f"{self.service} :{self.port} (pid {self.pid})"


class Target(Protocol):
    """A running bread: a test system (harness/system.py) or `make run`."""

    @property
    def http(self) -> str: ...  # the edge, "http://host:port"

    @property
    def admin_url(self) -> str: ...  # Envoy's admin API

    @property
    def issuer(self) -> DevIssuer: ...  # signs tokens the edge accepts

    @property
    def urls(self) -> dict[str, str]: ...  # each service's DATABASE_URL

    @property
    def amqp_url(self) -> str: ...

    @property
    def exchange(self) -> str: ...

    @property
    def queue_prefix(self) -> str: ...

    def running(self) -> list[Replica]:
        """Every running service process."""
        ...

    def revive(self, replica: Replica) -> Replica:
        """After replica was killed: its successor, once ready and routed to by Envoy."""
        ...


# ------------------------------------------------------------------------------ servers


@dataclass(frozen=True)
class Server:
    name: str
    stop: Callable[[], None]
    start: Callable[[], None]
    accepts: Callable[[], bool]  # a new client connects and is answered


def _broker_accepts(url: str = DEFAULT_AMQP_URL) -> bool:
    async def connect() -> None:
        connection = await aio_pika.connect(url, timeout=2)
        await connection.close()

    try:
        asyncio.run(connect())
    except Exception:
        return False
    return True


def _broker_start() -> None:
    try:
        _run("rabbitmqctl", "-q", "start_app", timeout=120)
    except RuntimeError:  # the node itself is down, not just the app
        _run("rabbitmq-server", "-detached")
        wait_until(
            lambda: (
                subprocess.run(["rabbitmqctl", "-q", "ping"], capture_output=True).returncode == 0
            ),
            BACK_TIMEOUT,
            "the RabbitMQ node",
        )
        _run("rabbitmqctl", "-q", "start_app", timeout=120)


def _postgres_cluster() -> list[str]:
    versions = sorted(os.listdir("/etc/postgresql"))
    return ["pg_ctlcluster", "--skip-systemctl-redirect", versions[-1], "main"]


def _answers(connect: Callable[[], Any], error: type[Exception]) -> bool:
    """Whether a database server takes a connection and answers a query."""
    try:
        conn = connect()
    except error:
        return False
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT 1")
        return True
    except error:
        return False
    finally:
        conn.close()


def _postgres_accepts() -> bool:
    return _answers(
        lambda: psycopg2.connect(
            host="127.0.0.1", port=5432, user="postgres", dbname="postgres", connect_timeout=2
        ),
        psycopg2.Error,
    )


def _postgres_start() -> None:
    if not _postgres_accepts():
        with contextlib.suppress(RuntimeError):  # "already running" while it starts up
            _run(*_postgres_cluster(), "start")


MARIADBD = "/usr/sbin/mariadbd"


def _mariadb_accepts() -> bool:
    return _answers(
        lambda: pymysql.connect(host="127.0.0.1", port=3306, user="root", connect_timeout=2),
        pymysql.MySQLError,
    )


def _mariadb_start() -> None:
    _run("start-stop-daemon", "--start", "--oknodo", "--background", "--exec", MARIADBD)


def _broker_stop() -> None:
    _run("rabbitmqctl", "-q", "stop_app", timeout=120)


def _postgres_stop() -> None:
    _run(*_postgres_cluster(), "stop", "-m", "fast")


def _mariadb_stop() -> None:
    _run("start-stop-daemon", "--stop", "--exec", MARIADBD, "--retry", "30")


BROKER = Server("RabbitMQ", _broker_stop, _broker_start, _broker_accepts)
POSTGRESQL = Server("PostgreSQL", _postgres_stop, _postgres_start, _postgres_accepts)
MARIADB = Server("MariaDB", _mariadb_stop, _mariadb_start, _mariadb_accepts)
SERVERS = (BROKER, POSTGRESQL, MARIADB)


def database_server(url: str) -> Server | None:
    """The server a DATABASE_URL lives on; None for SQLite."""
    if url.startswith("postgres"):
        return POSTGRESQL
    if url.startswith("mysql"):
        return MARIADB
    return None


def bring_up(server: Server, timeout: float = BACK_TIMEOUT) -> float:
    """Start server unless it accepts connections; return when it does (perf_counter)."""
    if server.accepts():
        return time.perf_counter()
    server.start()
    return wait_until(server.accepts, timeout, f"{server.name} accepting connections")


def ensure_servers_up(servers: Iterable[Server] = SERVERS) -> list[str]:
    """Start whichever of the servers does not accept connections; the names of those
    that had to be started."""
    started = []
    for server in servers:
        if not server.accepts():
            started.append(server.name)
            bring_up(server)
    return started


@dataclass
class Outage:
    """When a server was down, on time.perf_counter()'s clock."""

    server: str
    began: float = 0.0  # just before the stop command
    stopped: float = 0.0  # the stop command returned
    restarting: float = 0.0  # just before the start command
    back: float = 0.0  # accepting connections again

    def offsets(self, origin: float) -> str:
        return (
            f"{self.server} stopping at {self.began - origin:.1f} s, down at"
            f" {self.stopped - origin:.1f} s, starting at {self.restarting - origin:.1f} s,"
            f" back at {self.back - origin:.1f} s"
        )


def take_down(server: Server, hold: float, on_down: Callable[[], None] = lambda: None) -> Outage:
    """Stop server, keep it down `hold` seconds (the fault's length), start it again and wait
    until it accepts connections. It is started again whatever happens in between."""
    outage = Outage(server.name)
    try:
        outage.began = time.perf_counter()
        server.stop()
        outage.stopped = time.perf_counter()
        on_down()
        time.sleep(max(hold - (outage.stopped - outage.began), 0))
    finally:
        outage.restarting = time.perf_counter()
        outage.back = bring_up(server)
    return outage


# ------------------------------------------------------------------------------ broker


def connection_pids(names: Iterable[str]) -> list[str]:
    """Broker-side pids of the AMQP connections named exactly one of names (services name
    theirs after their queue, e.g. "bread.order")."""
    wanted = set(names)
    # rabbitmqctl's JSON output gives pids close_connection does not take: read the table.
    listing = _run("rabbitmqctl", "-q", "list_connections", "pid", "client_properties")
    pids = []
    for line in listing.splitlines():
        pid, _, properties = line.partition("\t")
        found = CONNECTION_NAME.search(properties)
        if found and found.group(1) in wanted:
            pids.append(pid)
    return pids


def close_broker_connections(names: Iterable[str], why: str = "chaos: broker restart") -> int:
    """Close the named connections from the broker side, as a broker restart would; how many."""
    pids = connection_pids(names)
    for pid in pids:
        with contextlib.suppress(RuntimeError):  # it may have gone meanwhile
            _run("rabbitmqctl", "-q", "close_connection", pid, why)
    return len(pids)


# ------------------------------------------------------------------------------ processes


def kill9(pid: int) -> None:
    """SIGKILL: the crash no graceful stop sees."""
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGKILL)


def alive(pid: int) -> bool:
    try:
        status = pathlib.Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return status.rpartition(")")[2].split()[0] != "Z"  # a zombie is dead too
