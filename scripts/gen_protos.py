"""Generate from protos/: Python code, mypy stubs, Envoy's descriptor set, the OpenAPI
description of the HTTP/JSON API, and buf's copy of the googleapis files protos/ import."""

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


def main() -> int:
    # googleapis-common-protos ships google/api/*.proto beside its Python code.
    googleapis = pathlib.Path(google.api.__path__[0]).parent.parent
    # grpc_tools bundles google/protobuf/*.proto; main() does not add it itself.
    well_known = pathlib.Path(protoc.__file__).parent / "_proto"
    sources = sorted(str(p.relative_to(PROTOS)) for p in PROTOS.rglob("*.proto"))
    DESCRIPTOR_SET.parent.mkdir(exist_ok=True)
    args = [
        "protoc",
        f"-I{PROTOS}",
        f"-I{googleapis}",
        f"-I{well_known}",
        f"--python_out={ROOT}",
        f"--grpc_python_out={ROOT}",
        f"--mypy_out={ROOT}",
        f"--mypy_grpc_out={ROOT}",
        "--include_imports",
        "--include_source_info",
        f"--descriptor_set_out={DESCRIPTOR_SET}",
        *sources,
    ]
    status = protoc.main(args)
    if status != 0:
        return status
    copy_googleapis_imports(googleapis)
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
