"""Create and drop a service's database on a PostgreSQL or MariaDB server
(SQLite files need nothing)."""

from __future__ import annotations

from urllib.parse import urlparse

import psycopg2
import pymysql


def ensure_database(url: str) -> None:
    """Create the database named by url if it is missing."""
    _run(url, create=True)


def drop_database(url: str) -> None:
    _run(url, create=False)


def _run(url: str, create: bool) -> None:
    parts = urlparse(url)
    name = parts.path.lstrip("/")
    host = parts.hostname or "127.0.0.1"
    if parts.scheme.startswith("postgres"):
        conn = psycopg2.connect(
            host=host,
            port=parts.port or 5432,
            user=parts.username or "postgres",
            password=parts.password or "",
            dbname="postgres",
        )
        conn.autocommit = True  # CREATE DATABASE cannot run in a transaction
        with conn.cursor() as cur:
            cur.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,))
            exists = cur.fetchone() is not None
            if create and not exists:
                cur.execute(f'CREATE DATABASE "{name}"')
            elif not create and exists:
                cur.execute(f'DROP DATABASE "{name}" WITH (FORCE)')
        conn.close()
    elif parts.scheme.startswith("mysql"):
        conn = pymysql.connect(
            host=host,
            port=parts.port or 3306,
            user=parts.username or "root",
            password=parts.password or "",
            autocommit=True,
        )
        with conn.cursor() as cur:
            verb = "CREATE DATABASE IF NOT EXISTS" if create else "DROP DATABASE IF EXISTS"
            cur.execute(f"{verb} `{name}`")
        conn.close()
