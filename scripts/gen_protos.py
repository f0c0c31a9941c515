"""Generate Python code, mypy stubs and Envoy's descriptor set from protos/."""

import pathlib
import sys

import google.api
from grpc_tools import protoc

ROOT = pathlib.Path(__file__).resolve().parent.parent
PROTOS = ROOT / "protos"
DESCRIPTOR_SET = ROOT / "build" / "bread.pb"


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
    return protoc.main(args)


if __name__ == "__main__":
    sys.exit(main())
