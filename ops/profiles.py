"""Where each service keeps its data, for `make run` and the tests alike."""

from __future__ import annotations

from collections.abc import Mapping

from servicekit.registry import NAMES, SERVICES

PROFILES = ("default", "polyglot")

POSTGRESQL = "postgresql://postgres@127.0.0.1:5432/{database}"
MARIADB = "mysql://root@127.0.0.1:3306/{database}"
SERVERS = {"postgresql": POSTGRESQL, "mariadb": MARIADB}


def database_urls(
    profile: str,
    var_dir: str,
    server_db_prefix: str = "bread",
    replicas: Mapping[str, int] | None = None,
) -> dict[str, str]:
    """Each service's DATABASE_URL.

    default: SQLite files only; polyglot: each service on its registered polyglot_database
    (servicekit/registry.py: order on PostgreSQL, pay on MariaDB, bakery and customer on
    SQLite). A service given more than one replica moves from SQLite to
    PostgreSQL: two writer processes on one SQLite file fail with "database is locked".
    Server databases are named `<server_db_prefix>_<service>`.
    """
    if profile not in PROFILES:
        raise ValueError(f"unknown profile {profile!r}: use {' or '.join(PROFILES)}")
    urls = {name: f"sqlite:///{var_dir}/{name}.db" for name in NAMES}
    if profile == "polyglot":
        for service in SERVICES:
            if server := SERVERS.get(service.polyglot_database):
                urls[service.name] = server.format(database=f"{server_db_prefix}_{service.name}")
    for name, count in (replicas or {}).items():
        if count > 1 and urls[name].startswith("sqlite"):
            urls[name] = POSTGRESQL.format(database=f"{server_db_prefix}_{name}")
    return urls


def describe(url: str) -> str:
    """A database URL as an operator reads it: 'SQLite var/order.db', 'PostgreSQL bread_pay'."""
    scheme, _, rest = url.partition("://")
    if scheme.startswith("sqlite"):
        return f"SQLite {rest[1:]}"
    kind = "PostgreSQL" if scheme.startswith("postgres") else "MariaDB"
    host, _, database = rest.rpartition("@")[2].partition("/")
    return f"{kind} {database} at {host}"
