"""Create and drop a service's database on a PostgreSQL or MariaDB server."""

from __future__ import annotations

from urllib.parse import urlparse

import psycopg2
import pymysql


def _server_and_name(url: str) -> tuple[str, str, str, int, str]:
    parts = urlparse(url)
    return (
        parts.scheme,
        parts.username or "",
        parts.password or "",
        parts.port or 0,
        parts.path.lstrip("/"),
    )


def ensure_database(url: str) -> None:
    """Create the database named by url if it is missing (SQLite needs nothing)."""
    _run(url, create=True)


def drop_database(url: str) -> None:
    _run(url, create=False)


def _run(url: str, create: bool) -> None:
    scheme, user, password, port, name = _server_and_name(url)
    host = urlparse(url).hostname or "127.0.0.1"
    if scheme.startswith("postgres"):
        conn = psycopg2.connect(
            host=host, port=port or 5432, user=user or "postgres", password=password,
            dbname="postgres",
        )
        conn.autocommit = True  # CREATE DATABASE cannot run in a transaction
        with conn, conn.cursor() as cur:
            cur.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,))
            exists = cur.fetchone() is not None
            if create and not exists:
                cur.execute(f'CREATE DATABASE "{name}"')
            elif not create and exists:
                cur.execute(f'DROP DATABASE "{name}" WITH (FORCE)')
        conn.close()
    elif scheme.startswith("mysql"):
        conn = pymysql.connect(
            host=host, port=port or 3306, user=user or "root", password=password, autocommit=True
        )
        with conn.cursor() as cur:
            verb = "CREATE DATABASE IF NOT EXISTS" if create else "DROP DATABASE IF EXISTS"
            cur.execute(f"{verb} `{name}`")
        conn.close()
