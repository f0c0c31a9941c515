"""buf lint, and buf breaking against main's protos/: the contract checks of `make lint`.

    python scripts/check_contracts.py                  # against main (origin/main without one)
    python scripts/check_contracts.py --against REF    # against another commit or branch

The baseline is protos/ at the merge-base of HEAD and main: a branch is judged on its own
changes, not on what main gained since, and on main itself the working tree is judged against
its last commit. git archive puts that protos/ into a scratch workspace beside this buf.yaml and
build/googleapis (`make proto`), so it works alike in a clone, a worktree (whose .git is a file,
which buf's own `.git#branch=` input cannot read) and before main has a buf.yaml.
"""

from __future__ import annotations

import argparse
import io
import shutil
import subprocess
import sys
import tarfile
import tempfile
from collections.abc import Sequence
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PROTOS = "protos"
GOOGLEAPIS = Path("build") / "googleapis"
MAIN_BRANCHES = ("main", "origin/main")


class NoBaseline(Exception):
    """No commit to compare protos/ with."""


def buf_binary() -> str:
    """The buf next to this Python (the buf-bin wheel), else the one on PATH."""
    beside = Path(sys.executable).parent / "buf"
    if beside.exists():
        return str(beside)
    found = shutil.which("buf")
    if found is None:
        raise FileNotFoundError("no buf binary: run `make setup`")
    return found


def buf(workspace: Path, *args: str) -> int:
    return subprocess.run([buf_binary(), *args], cwd=workspace, check=False).returncode


def lint(workspace: Path = ROOT) -> int:
    return buf(workspace, "lint")


def breaking(workspace: Path, against: Path) -> int:
    """buf breaking of `workspace` against the workspace at `against`; 0 when compatible."""
    return buf(workspace, "breaking", "--against", str(against))


def make_workspace(into: Path, protos: Path | bytes) -> Path:
    """A buf workspace at `into`: this repository's buf.yaml and googleapis copy, and protos/
    from a directory or from a tar archive of it (git archive)."""
    into.mkdir(parents=True, exist_ok=True)
    shutil.copy(ROOT / "buf.yaml", into / "buf.yaml")
    (into / GOOGLEAPIS).parent.mkdir(parents=True, exist_ok=True)
    shutil.copytree(ROOT / GOOGLEAPIS, into / GOOGLEAPIS)
    if isinstance(protos, Path):
        shutil.copytree(protos, into / PROTOS)
    else:
        with tarfile.open(fileobj=io.BytesIO(protos)) as archive:
            archive.extractall(into, filter="data")
    return into


def baseline(ref: str | None) -> str:
    """The merge-base of HEAD and `ref` (main, else origin/main, when None)."""
    for candidate in (ref,) if ref else MAIN_BRANCHES:
        found = git("merge-base", "HEAD", candidate)
        if found.returncode == 0:
            return found.stdout.decode().strip()
    wanted = ref or " or ".join(MAIN_BRANCHES)
    raise NoBaseline(
        f"no merge-base of HEAD and {wanted} to compare protos/ with: "
        "fetch main (git fetch origin main) or name a commit with --against"
    )


def git(*args: str) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(["git", *args], cwd=ROOT, capture_output=True, check=False)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="check_contracts.py", description=__doc__)
    parser.add_argument("--against", help="commit or branch to compare with (default: main)")
    args = parser.parse_args(argv)
    status = lint()
    if status != 0:
        print("buf lint: protos/ break the rules of buf.yaml", file=sys.stderr)
        return status
    try:
        commit = baseline(args.against)
    except NoBaseline as exc:
        print(f"buf breaking: {exc}", file=sys.stderr)
        return 2
    archive = git("archive", "--format=tar", commit, PROTOS)
    if archive.returncode != 0:
        print(f"buf breaking: {archive.stderr.decode().strip()}", file=sys.stderr)
        return 2
    with tempfile.TemporaryDirectory(prefix="bread-contracts-") as scratch:
        against = make_workspace(Path(scratch), archive.stdout)
        status = breaking(ROOT, against)
    if status != 0:
        print(
            f"buf breaking: protos/ are incompatible with those of {commit[:12]} "
            "(README: Contract checks)",
            file=sys.stderr,
        )
        return status
    print(f"buf lint passed; buf breaking: protos/ are compatible with those of {commit[:12]}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
