"""A real Envoy for tests: render bread's config into a directory, start it, wait until ready.

    envoy = start_envoy(EnvoyTopology(edge_port=0, mesh_port=0, admin_port=0, ...), tmp_path)
    envoy.edge_port, envoy.mesh_port, envoy.stats("cluster.pay_mesh."), envoy.host_health("pay")
    envoy.stop()

Ports given as 0 are picked by Envoy itself (no race with other tests) and read back from the
admin API; the admin port is read from --admin-address-path.
"""

from __future__ import annotations

import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType

import httpx

from ops.envoy_config import EnvoyTopology, envoy_binary, render


class EnvoyStartError(RuntimeError):
    pass


@dataclass
class EnvoyProcess:
    process: subprocess.Popen[bytes]
    topology: EnvoyTopology
    config_path: Path
    log_path: Path
    edge_port: int
    mesh_port: int
    admin_port: int

    @property
    def host(self) -> str:
        """Where to reach the listeners from this machine."""
        address = self.topology.listen_address
        return "127.0.0.1" if address in ("0.0.0.0", "::") else address

    @property
    def edge_url(self) -> str:
        return f"http://{self.host}:{self.edge_port}"

    @property
    def edge_target(self) -> str:
        """gRPC target of the edge listener."""
        return f"{self.host}:{self.edge_port}"

    @property
    def mesh_target(self) -> str:
        address = self.topology.mesh_address
        return f"{'127.0.0.1' if address in ('0.0.0.0', '::') else address}:{self.mesh_port}"

    @property
    def admin_url(self) -> str:
        return f"http://{self.topology.admin_address}:{self.admin_port}"

    def admin(self, path: str) -> str:
        return httpx.get(self.admin_url + path, timeout=2).text

    def stats(self, prefix: str = "") -> dict[str, int]:
        """Counters and gauges whose name starts with prefix (histograms left out)."""
        values: dict[str, int] = {}
        for line in self.admin("/stats").splitlines():
            name, _, value = line.partition(": ")
            if name.startswith(prefix) and value.isdigit():
                values[name] = int(value)
        return values

    def host_health(self, cluster: str) -> dict[str, str]:
        """'ip:port' -> health flags ("healthy", "/failed_active_hc", "/failed_outlier_check")."""
        hosts: dict[str, str] = {}
        for line in self.admin("/clusters").splitlines():
            parts = line.split("::")
            if len(parts) == 4 and parts[0] == cluster and parts[2] == "health_flags":
                hosts[parts[1]] = parts[3]
        return hosts

    def wait_healthy(self, cluster: str, timeout: float = 10.0) -> None:
        """Until every host of cluster passes its health check and is not ejected."""
        _poll(
            lambda: (h := self.host_health(cluster)) and all(f == "healthy" for f in h.values()),
            timeout,
            f"{cluster} healthy",
            self,
        )

    def log_tail(self, lines: int = 40) -> str:
        text = self.log_path.read_text(errors="replace") if self.log_path.exists() else ""
        return "\n".join(text.splitlines()[-lines:])

    def stop(self, timeout: float = 5.0) -> None:
        """SIGTERM (Envoy exits at once), SIGKILL if it does not. Safe to call twice."""
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout)

    def __enter__(self) -> EnvoyProcess:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


def start_envoy(
    topology: EnvoyTopology, workdir: Path, *, timeout: float = 15.0, name: str = "envoy"
) -> EnvoyProcess:
    """Render topology to workdir/<name>.yaml, start Envoy, return once admin /ready says LIVE.

    LIVE means listeners are bound and the first round of health checks is done, so a host
    that is down is already known to be down.
    """
    workdir.mkdir(parents=True, exist_ok=True)
    config_path = workdir / f"{name}.yaml"
    config_path.write_text(render(topology))
    log_path = workdir / f"{name}.log"
    admin_path = workdir / f"{name}.admin"
    admin_path.unlink(missing_ok=True)
    with open(log_path, "ab") as log:
        process = subprocess.Popen(
            [
                envoy_binary(),
                *("-c", str(config_path)),
                *("--concurrency", "1"),  # what `make run` uses; fastest on 2 cores
                "--disable-hot-restart",  # no shared memory: several Envoys side by side
                *("--admin-address-path", str(admin_path)),
                *("--log-level", "warn"),
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own session: not killed with a shell, not by Ctrl-C
        )
    envoy = EnvoyProcess(
        process, topology, config_path, log_path, topology.edge_port, topology.mesh_port, 0
    )
    try:
        deadline = time.monotonic() + timeout
        _poll(
            lambda: admin_path.exists() and admin_path.read_text().strip(), timeout, "admin", envoy
        )
        envoy.admin_port = int(admin_path.read_text().strip().rpartition(":")[2])
        _poll(lambda: _ready(envoy), max(deadline - time.monotonic(), 0.1), "/ready", envoy)
        listeners = httpx.get(envoy.admin_url + "/listeners?format=json", timeout=2).json()
        ports = {
            s["name"]: int(s["local_address"]["socket_address"]["port_value"])
            for s in listeners["listener_statuses"]
        }
        envoy.edge_port, envoy.mesh_port = ports["edge"], ports["mesh"]
    except BaseException:
        envoy.stop()
        raise
    return envoy


def _ready(envoy: EnvoyProcess) -> bool:
    try:
        response = httpx.get(envoy.admin_url + "/ready", timeout=1)
    except httpx.HTTPError:
        return False
    return response.status_code == 200


def _poll(probe: Callable[[], object], timeout: float, what: str, envoy: EnvoyProcess) -> None:
    """Deadline-bounded polling that also notices Envoy exiting (bad config, port in use)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if envoy.process.poll() is not None:
            raise EnvoyStartError(f"envoy exited ({envoy.process.returncode}):\n{envoy.log_tail()}")
        if probe():
            return
        time.sleep(0.05)
    raise EnvoyStartError(
        f"envoy: timed out after {timeout}s waiting for {what}\n{envoy.log_tail()}"
    )
