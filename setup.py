"""`pip install .` installs `bread`: the Python code, gRPC stubs and typing stubs generated from
protos/, for programs that call bread (examples/client.py shows how). The services themselves
are not packaged: they run from the repository or the image.

The package exists only once generated, so the build step generates it into the wheel.
"""

import pathlib
import sys

from setuptools import Distribution, setup
from setuptools.command.build_py import build_py

ROOT = pathlib.Path(__file__).resolve().parent
sys.path.insert(0, str(ROOT / "scripts"))

from gen_protos import generate  # noqa: E402 - from scripts/, put on the path above


class BuildWithStubs(build_py):
    def run(self) -> None:
        super().run()
        out = pathlib.Path(self.build_lib)
        out.mkdir(parents=True, exist_ok=True)
        if generate(out) != 0:
            raise RuntimeError("protoc failed on protos/")
        # PEP 561: type checkers use the .pyi stubs beside each generated module.
        for directory in {p.parent for p in (out / "bread").rglob("*_pb2.py")}:
            (directory / "py.typed").touch()


class StubsDistribution(Distribution):
    """No package is in the source tree, yet build_py and install_lib must run."""

    def has_pure_modules(self) -> bool:
        return True


setup(distclass=StubsDistribution, cmdclass={"build_py": BuildWithStubs})
