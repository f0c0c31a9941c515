"""Where each service keeps its data when run locally."""

from __future__ import annotations

SERVICES = ("order", "pay", "bakery", "customer")


def database_urls(profile: str, var_dir: str) -> dict[str, str]:
    """default: SQLite files only; polyglot: order on PostgreSQL, pay on MariaDB."""
    urls = {name: f"sqlite:///{var_dir}/{name}.db" for name in SERVICES}
    if profile == "polyglot":
        urls["order"] = "postgresql://postgres@127.0.0.1:5432/bread_order"
        urls["pay"] = "mysql://root@127.0.0.1:3306/bread_pay"
    elif profile != "default":
        raise ValueError(f"unknown profile {profile!r}: use default or polyglot")
    return urls
