"""The menu: item name → unit price in won, from configuration."""

from __future__ import annotations

import json
import os
from collections.abc import Mapping

DEFAULT_MENU = {"cake": 25000, "donut": 3000, "baguette": 4500, "croissant": 3500}


def load_menu(environ: Mapping[str, str] = os.environ) -> dict[str, int]:
    """MENU (inline JSON) wins over MENU_FILE (a JSON file); else the default."""
    if inline := environ.get("MENU"):
        menu = json.loads(inline)
    elif path := environ.get("MENU_FILE"):
        with open(path, encoding="utf-8") as menu_file:
            menu = json.load(menu_file)
    else:
        menu = DEFAULT_MENU
    if not isinstance(menu, dict) or not all(
        isinstance(name, str) and isinstance(price, int) and price > 0
        for name, price in menu.items()
    ):
        raise ValueError("the menu must map item names to positive integer prices in won")
    return dict(menu)
