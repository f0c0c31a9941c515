"""Generate from protos/: Python code, mypy stubs, Envoy's descriptor set, the OpenAPI
description of the HTTP/JSON API, and buf's copy of the googleapis files protos/ import.

`make proto` writes them into the work tree (bread/, build/); setup.py's build step writes
the same `bread` package into a wheel, for clients: `pip install .`.
"""

import pathlib
import shutil
import subprocess
import sys

import google.api
from google.protobuf import descriptor_pb2
from grpc_tools import protoc

ROOT = pathlib.Path(__file__).resolve().parent.parent
PROTOS = ROOT / "protos"
DESCRIPTOR_SET = ROOT / "build" / "bread.pb"
OPENAPI = ROOT / "build" / "openapi.json"
# buf.yaml's second module: buf cannot fetch googleapis from its registry here, and this way it
# checks protos/ against exactly the files protoc compiled them with.
BUF_GOOGLEAPIS = ROOT / "build" / "googleapis"
# googleapis-common-protos ships google/api/*.proto beside its Python code.
GOOGLEAPIS = pathlib.Path(google.api.__path__[0]).parent.parent


def _plugin(name: str) -> str:
    """A protoc plugin's path: on PATH, else beside this Python (a venv not activated)."""
    found = shutil.which(name) or shutil.which(name, path=str(pathlib.Path(sys.executable).parent))
    if found is None:
        raise FileNotFoundError(f"{name} not found: install mypy-protobuf")
    return found


def generate(out: pathlib.Path, descriptor_set: pathlib.Path | None = None) -> int:
    """The `bread` package (code, gRPC stubs, typing stubs) under out, and the descriptor set
    if asked for; protoc's exit status."""
    # grpc_tools bundles google/protobuf/*.proto; main() does not add it itself.
    well_known = pathlib.Path(protoc.__file__).parent / "_proto"
    sources = sorted(str(p.relative_to(PROTOS)) for p in PROTOS.rglob("*.proto"))
    args = [
        "protoc",
        f"-I{PROTOS}",
        f"-I{GOOGLEAPIS}",
        f"-I{well_known}",
        f"--plugin=protoc-gen-mypy={_plugin('protoc-gen-mypy')}",
        f"--plugin=protoc-gen-mypy_grpc={_plugin('protoc-gen-mypy_grpc')}",
        f"--python_out={out}",
        f"--grpc_python_out={out}",
        f"--mypy_out={out}",
        f"--mypy_grpc_out={out}",
    ]
    if descriptor_set is not None:
        descriptor_set.parent.mkdir(exist_ok=True)
        args += ["--include_imports", "--include_source_info"]
        args.append(f"--descriptor_set_out={descriptor_set}")
    return protoc.main([*args, *sources])


def main() -> int:
    status = generate(ROOT, DESCRIPTOR_SET)
    if status != 0:
        return status
    copy_googleapis_imports(GOOGLEAPIS)
    # A program of its own (it also runs alone), so this file needs no import path beside it.
    openapi = ROOT / "scripts" / "gen_openapi.py"
    return subprocess.run(
        [sys.executable, str(openapi), str(DESCRIPTOR_SET), str(OPENAPI)]
    ).returncode


def copy_googleapis_imports(googleapis: pathlib.Path) -> None:
    """The googleapis files in the descriptor set (imports; buf has the well-known types)."""
    files = descriptor_pb2.FileDescriptorSet.FromString(DESCRIPTOR_SET.read_bytes()).file
    shutil.rmtree(BUF_GOOGLEAPIS, ignore_errors=True)
    for name in (f.name for f in files if f.name.startswith("google/api/")):
        target = BUF_GOOGLEAPIS / name
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(googleapis / name, target)


if __name__ == "__main__":
    sys.exit(main())
