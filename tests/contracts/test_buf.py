"""The contract checks bite: buf breaking refuses a copy of protos/ that changes a stored
event's wire contract and accepts one that only adds; buf lint refuses a badly named message;
the baseline is a merge-base with main."""

from __future__ import annotations

import re
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest

from scripts.check_contracts import (
    ROOT,
    NoBaseline,
    baseline,
    breaking,
    buf_binary,
    lint,
    make_workspace,
)

EVENTS = Path("protos/bread/events/v1/events.proto")
ORDER_PLACED = re.compile(r"message OrderPlaced \{.*?\n\}", re.DOTALL)

Edit = Callable[[str], str]


def in_order_placed(old: str, new: str) -> Edit:
    def edit(text: str) -> str:
        block = ORDER_PLACED.search(text)
        assert block is not None and old in block.group(), old
        return text.replace(block.group(), block.group().replace(old, new))

    return edit


def edited_workspace(tmp_path: Path, edit: Edit) -> Path:
    workspace = make_workspace(tmp_path / "changed", ROOT / "protos")
    events = workspace / EVENTS
    events.write_text(edit(events.read_text()))
    return workspace


BREAKING: dict[str, tuple[Edit, str]] = {
    "field removed": (in_order_placed("  int64 price = 5;\n", ""), 'field "5" with name "price"'),
    "field renumbered": (in_order_placed("int64 price = 5;", "int64 price = 7;"), '"5"'),
    "field type changed": (
        in_order_placed("int64 price = 5;", "int32 price = 5;"),
        'changed type from "int64" to "int32"',
    ),
    "field renamed": (
        in_order_placed("string payment_id = 6;", "string charge_id = 6;"),
        'changed name from "payment_id" to "charge_id"',
    ),
    "event removed": (lambda text: ORDER_PLACED.sub("", text), 'message "OrderPlaced"'),
}


@pytest.mark.parametrize("change", BREAKING)
def test_buf_breaking_refuses_a_changed_event(
    change: str, tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    edit, reported = BREAKING[change]
    assert breaking(edited_workspace(tmp_path, edit), against=ROOT) != 0
    assert reported in capfd.readouterr().out


ADDITIVE: dict[str, Edit] = {
    "unchanged": lambda text: text,
    "field added": in_order_placed(
        "  string payment_id = 6;\n", "  string payment_id = 6;\n  string note = 7;\n"
    ),
    "event added": lambda text: text + "\nmessage OrderBaked {\n  string order_id = 1;\n}\n",
}


@pytest.mark.parametrize("change", ADDITIVE)
def test_buf_breaking_accepts_an_additive_change(change: str, tmp_path: Path) -> None:
    assert breaking(edited_workspace(tmp_path, ADDITIVE[change]), against=ROOT) == 0


def test_buf_lint_passes_here_and_refuses_a_badly_named_message(
    tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    assert lint(ROOT) == 0
    workspace = edited_workspace(tmp_path, lambda text: text + "\nmessage order_baked {}\n")
    assert lint(workspace) != 0
    assert 'Message name "order_baked" should be PascalCase' in capfd.readouterr().out


def git(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True, check=False)


def test_the_baseline_is_main_where_this_branch_left_it() -> None:
    """In a clone of main, HEAD; on a branch, where it left main: an ancestor of both."""
    found = baseline(None)
    assert git("merge-base", "--is-ancestor", found, "HEAD").returncode == 0
    main = "main" if git("rev-parse", "--verify", "main").returncode == 0 else "origin/main"
    assert git("merge-base", "--is-ancestor", found, main).returncode == 0
    assert baseline("HEAD") == git("rev-parse", "HEAD").stdout.strip()
    with pytest.raises(NoBaseline):
        baseline("no-such-branch-anywhere")


def test_buf_is_the_pinned_wheel() -> None:
    pin = re.search(r"^buf-bin==(\S+)$", (ROOT / "requirements-dev.txt").read_text(), re.M)
    assert pin is not None
    version = subprocess.run(
        [buf_binary(), "--version"], capture_output=True, text=True, check=True
    ).stdout
    assert version.strip() == pin.group(1)
