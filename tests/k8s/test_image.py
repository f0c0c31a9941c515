"""The image, without Docker: its build context holds what the Dockerfile copies, code
generation works from that context alone, and the runtime layout imports every module.

The context is what .dockerignore lets through (an allow-list); the runtime layout is what
the Dockerfile's final stage copies. A module that needs a file the image lacks fails here.
"""

from __future__ import annotations

import os
import pathlib
import re
import shutil
import subprocess
import sys

from servicekit.registry import SERVICES
from tests.k8s.manifests import ROOT

DOCKERFILE = (ROOT / "Dockerfile").read_text()
FINAL_STAGE = re.split(r"^FROM ", DOCKERFILE, flags=re.MULTILINE)[-1]
PACKAGES = ("servicekit", *(s.package for s in SERVICES))


def context_paths() -> list[str]:
    """The allow-listed paths of .dockerignore ("*" first, then "!path" lines)."""
    lines = [x.strip() for x in (ROOT / ".dockerignore").read_text().splitlines()]
    rules = [x for x in lines if x and not x.startswith("#")]
    assert rules[0] == "*", "the .dockerignore is an allow-list"
    return [x[1:].rstrip("/") for x in rules if x.startswith("!")]


def copy_context(into: pathlib.Path) -> None:
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
    for path in context_paths():
        source, target = ROOT / path, into / path
        target.parent.mkdir(parents=True, exist_ok=True)
        if source.is_dir():
            shutil.copytree(source, target, ignore=ignore)
        else:
            shutil.copy(source, target)


def copies(dockerfile: str = DOCKERFILE) -> list[tuple[str | None, list[str], str]]:
    """(stage or None for the context, sources, destination) of every COPY."""
    found = []
    for match in re.finditer(r"^COPY\s+(--from=(\S+)\s+)?(.+)$", dockerfile, re.MULTILINE):
        *sources, dest = match.group(3).split()
        found.append((match.group(2), sources, dest))
    return found


def test_dockerfile_copies_only_what_the_context_has() -> None:
    allowed = context_paths()
    for stage, sources, _ in copies():
        if stage is None:
            for source in sources:
                assert any(source == p or source.startswith(p + "/") for p in allowed), source
                assert (ROOT / source).exists(), source
    # Every service package and the kit are in the image.
    copied = {s for stage, sources, _ in copies() if stage is None for s in sources}
    assert set(PACKAGES) <= copied


def test_the_image_exposes_every_registered_port() -> None:
    (exposed,) = re.findall(r"^EXPOSE (.+)$", FINAL_STAGE, re.MULTILINE)
    assert sorted(int(port) for port in exposed.split()) == sorted(s.port for s in SERVICES)


def test_generator_pins_exist() -> None:
    """The build stage installs the code generators at the versions requirements pin."""
    pins = (ROOT / "requirements-dev.txt").read_text() + (ROOT / "requirements.txt").read_text()
    (pattern,) = re.findall(r"grep -hE '([^']+)'", DOCKERFILE)
    assert len(re.findall(pattern, pins, re.MULTILINE)) == 3


def test_the_runtime_layout_imports_every_module(tmp_path: pathlib.Path) -> None:
    src, app = tmp_path / "src", tmp_path / "app"
    copy_context(src)
    # protoc finds its mypy plugins on PATH, as in the image (pip's bin directory).
    path = f"{pathlib.Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"
    subprocess.run(
        [sys.executable, "scripts/gen_protos.py"],
        cwd=src,
        env={**os.environ, "PATH": path},
        check=True,
        timeout=120,
    )

    # The final stage: generated code from the build stage, the rest from the context.
    for stage, sources, dest in copies(FINAL_STAGE):
        for source in sources:
            origin = (src if stage == "build" else ROOT) / source.removeprefix("/src/")
            if not origin.exists():
                continue  # /opt/venv: this test runs in a venv with the same requirements
            target = app / dest
            if origin.is_dir():
                shutil.copytree(origin, target, ignore=shutil.ignore_patterns("__pycache__"))
            else:
                target.parent.mkdir(parents=True, exist_ok=True)
                shutil.copy(origin, target)
    assert (app / "build" / "bread.pb").is_file()
    assert (app / "build" / "openapi.json").is_file()

    # Import every module (a __main__ only defines things unless run as the program).
    program = (
        "import importlib, pkgutil\n"
        f"for package in {PACKAGES!r}:\n"
        "    importlib.import_module(package)\n"
        "    for module in pkgutil.walk_packages([package], package + '.'):\n"
        "        importlib.import_module(module.name)\n"
    )
    result = subprocess.run(
        [sys.executable, "-E", "-c", program],  # -E: no PYTHONPATH of the caller
        cwd=app,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr
