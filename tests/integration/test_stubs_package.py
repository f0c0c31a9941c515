"""`pip install .` gives a client the generated `bread` package: code, gRPC stubs and typing
stubs from protos/, importable outside the repository."""

from __future__ import annotations

import pathlib
import subprocess
import sys
import zipfile

ROOT = pathlib.Path(__file__).resolve().parents[2]
PIP = (sys.executable, "-m", "pip", "-q", "--disable-pip-version-check")
CONTEXTS = ("admin", "bakery", "customer", "events", "order", "pay")


def test_the_wheel_holds_the_generated_stubs(tmp_path: pathlib.Path) -> None:
    # This venv has the build requirements already: no download, as offline as the tests.
    subprocess.run(
        [
            *PIP,
            "wheel",
            "--no-build-isolation",
            "--no-deps",
            str(ROOT),
            "-w",
            str(tmp_path / "dist"),
        ],
        check=True,
        capture_output=True,
        timeout=300,
    )
    (wheel,) = (tmp_path / "dist").glob("bread-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    for context in CONTEXTS:
        module = next(
            n for n in names if n.startswith(f"bread/{context}/v1/") and n.endswith("_pb2.py")
        )
        stem = module.removesuffix(".py")
        assert {f"{stem}.pyi", f"{stem}_grpc.py", f"{stem}_grpc.pyi"} <= names
        assert f"bread/{context}/v1/py.typed" in names
    # Only the stubs: the services run from the repository or the image.
    assert {n.split("/")[0] for n in names} == {
        "bread",
        wheel.name.split("-")[0] + "-0.1.0.dist-info",
    }

    # Installed elsewhere, away from the work tree's own bread/, a client can call the API.
    site = tmp_path / "site"
    subprocess.run(
        [*PIP, "install", "--no-deps", "--target", str(site), str(wheel)],
        check=True,
        capture_output=True,
        timeout=120,
    )
    program = (
        f"import sys; sys.path.insert(0, {str(site)!r})\n"
        "from bread.order.v1 import order_pb2, order_pb2_grpc\n"
        f"assert order_pb2.__file__.startswith({str(site)!r}), order_pb2.__file__\n"
        "assert order_pb2_grpc.OrderServiceStub\n"
        "print(order_pb2.PlaceOrderRequest(item='cake', qty=2))\n"
    )
    result = subprocess.run(
        [sys.executable, "-E", "-c", program],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert 'item: "cake"' in result.stdout
