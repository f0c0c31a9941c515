"""Generate Python code, mypy stubs and Envoy's descriptor set from protos/.

`make proto` writes them into the work tree (bread/, build/bread.pb); setup.py's build step
writes the same `bread` package into a wheel, for clients: `pip install .`.
"""

import pathlib
import shutil
import sys

import google.api
from grpc_tools import protoc

ROOT = pathlib.Path(__file__).resolve().parent.parent
PROTOS = ROOT / "protos"
DESCRIPTOR_SET = ROOT / "build" / "bread.pb"


def _plugin(name: str) -> str:
    """A protoc plugin's path: on PATH, else beside this Python (a venv not activated)."""
    found = shutil.which(name) or shutil.which(name, path=str(pathlib.Path(sys.executable).parent))
    if found is None:
        raise FileNotFoundError(f"{name} not found: install mypy-protobuf")
    return found


def generate(out: pathlib.Path, descriptor_set: pathlib.Path | None = None) -> int:
    """The `bread` package (code, gRPC stubs, typing stubs) under out; protoc's exit status."""
    # googleapis-common-protos ships google/api/*.proto beside its Python code.
    googleapis = pathlib.Path(google.api.__path__[0]).parent.parent
    # grpc_tools bundles google/protobuf/*.proto; main() does not add it itself.
    well_known = pathlib.Path(protoc.__file__).parent / "_proto"
    sources = sorted(str(p.relative_to(PROTOS)) for p in PROTOS.rglob("*.proto"))
    args = [
        "protoc",
        f"-I{PROTOS}",
        f"-I{googleapis}",
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


if __name__ == "__main__":
    sys.exit(generate(ROOT, DESCRIPTOR_SET))
