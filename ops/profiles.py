"""Where each service keeps its data when run locally."""

from __future__ import annotations

SERVICES = ("order", "pay", "bakery", "customer")


def database_urls(profile: str, var_dir: str, server_db_prefix: str = "bread") -> dict[str, str]:
    """default: SQLite files only; polyglot: order on PostgreSQL, pay on MariaDB
    (databases `<server_db_prefix>_order` and `<server_db_prefix>_pay`)."""
    urls = {name: f"sqlite:///{var_dir}/{name}.db" for name in SERVICES}
    if profile == "polyglot":
        urls["order"] = f"postgresql://postgres@127.0.0.1:5432/{server_db_prefix}_order"
        urls["pay"] = f"mysql://root@127.0.0.1:3306/{server_db_prefix}_pay"
    elif profile != "default":
        raise ValueError(f"unknown profile {profile!r}: use default or polyglot")
    return urls
