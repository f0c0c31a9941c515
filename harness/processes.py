"""Real service processes for tests: start, wait until ready, stop or kill."""

from __future__ import annotations

import os
import pathlib
import signal
import subprocess
import sys

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from harness.polling import wait_for
from servicekit import registry

ROOT = pathlib.Path(__file__).resolve().parents[1]
SERVING = health_pb2.HealthCheckResponse.SERVING


def health_status(port: int, service: str, timeout: float = 1.0) -> int:
    with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
        stub = health_pb2_grpc.HealthStub(channel)
        response = stub.Check(health_pb2.HealthCheckRequest(service=service), timeout=timeout)
        return int(response.status)


class ServiceProcess:
    """`python -m <name>_svc` with its own environment and log file."""

    def __init__(self, name: str, port: int, env: dict[str, str], log_dir: pathlib.Path) -> None:
        self.name = name
        self.port = port
        self.env = {**os.environ, **env, "GRPC_PORT": str(port), "PYTHONUNBUFFERED": "1"}
        self.log_path = log_dir / f"{name}-{port}.log"
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def readiness_name(self) -> str:
        return registry.service(self.name).readiness_name

    def start(self) -> ServiceProcess:
        log = open(self.log_path, "ab")  # noqa: SIM115 - owned by the child
        self.process = subprocess.Popen(
            [sys.executable, "-m", registry.service(self.name).package],
            cwd=ROOT,
            env=self.env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        return self

    def is_ready(self) -> bool:
        try:
            return health_status(self.port, self.readiness_name) == SERVING
        except grpc.RpcError:
            return False

    def wait_ready(self, timeout: float = 30.0) -> ServiceProcess:
        def ready() -> bool:
            if self.process is not None and self.process.poll() is not None:
                raise RuntimeError(f"{self.name} exited: {self.log_tail()}")
            return self.is_ready()

        wait_for(ready, timeout=timeout, what=f"{self.name} ready")
        return self

    def terminate(self, timeout: float = 40.0) -> int:
        """SIGTERM (graceful drain) and wait for the exit code."""
        assert self.process is not None
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        return self.process.wait(timeout)

    def kill(self) -> None:
        """SIGKILL: the crash a graceful stop never sees."""
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(10)

    def log_tail(self, lines: int = 30) -> str:
        if not self.log_path.exists():
            return ""
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
