"""tests/ and bench/ build on harness/ (and ops/, servicekit/), never on each other; harness/
and ops/ on neither. Read from the source, so a new import breaks this at once."""

from __future__ import annotations

import ast
import pathlib

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[2]
# Package -> the top-level packages it must not import.
FORBIDDEN = {
    "tests": {"bench"},
    "bench": {"tests"},
    "harness": {"tests", "bench"},
    "ops": {"tests", "bench"},
}


def imported_packages(path: pathlib.Path) -> set[str]:
    tree = ast.parse(path.read_text(), str(path))
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name.partition(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            names.add(node.module.partition(".")[0])
    return names


@pytest.mark.parametrize("package", sorted(FORBIDDEN))
def test_packages_import_only_what_they_may(package: str) -> None:
    wrong = {
        str(path.relative_to(ROOT)): sorted(imported_packages(path) & FORBIDDEN[package])
        for path in sorted((ROOT / package).rglob("*.py"))
    }
    assert {path: found for path, found in wrong.items() if found} == {}


def test_the_check_sees_an_import() -> None:
    """Guards the guard: both import forms are found."""
    source = ROOT / "bench" / "scenario.py"
    assert "harness" in imported_packages(source)
