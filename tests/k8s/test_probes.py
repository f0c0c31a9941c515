"""Each service, started with exactly the environment the dev overlay gives its pod, answers
the kubelet's probes, and stops within its grace period when the kubelet stops it.

The environment is the rendered one (ConfigMaps, Secrets, $(VAR) references resolved) with
only these substitutions, because the cluster is not here:
- a URL naming an in-cluster Service (rabbitmq, postgres, mariadb) points at the local test
  server of the same kind instead: host, port and credentials; a database gets a name unique
  to the run (created, then dropped). Scheme, driver and the rest are the manifests'.
- EVENT_EXCHANGE and QUEUE_PREFIX get names unique to the run: the test broker is shared.
- a path inside one of the pod's volumes points at a temporary directory with the same
  content (a ConfigMap volume's files; empty for claims and emptyDirs).
- GRPC_PORT, after checking the probes use it, is a free port, and the probes follow it.
- PAY_TARGET's host is 127.0.0.1 (no gateway here; pay is not part of order's readiness).
"""

from __future__ import annotations

import os
import pathlib
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from harness.polling import wait_for
from harness.ports import free_port
from harness.system import delete_broker_objects
from ops.databases import drop_database, ensure_database
from servicekit.settings import DEFAULT_AMQP_URL
from tests.k8s.manifests import ROOT, SERVICES, Manifests, containers, pod_spec

SERVING = health_pb2.HealthCheckResponse.SERVING

# The local test servers standing in for the in-cluster Services of the same name; the same
# ones the integration tests use.
LOCAL_SERVERS = {
    "rabbitmq": DEFAULT_AMQP_URL,
    "postgres": "postgresql://postgres@127.0.0.1:5432/",
    "mariadb": "mysql://root@127.0.0.1:3306/",
}


@dataclass
class Pod:
    name: str
    env: dict[str, str]
    container: dict[str, Any]
    grace_seconds: int
    log: pathlib.Path
    process: subprocess.Popen[bytes] | None = None

    @property
    def port(self) -> int:
        return int(self.env["GRPC_PORT"])

    def probe(self, kind: str) -> bool:
        """What the kubelet does for a grpc probe: Health/Check with the probe's service
        name, on the probe's port, within its timeout; success is SERVING."""
        probe = self.container[kind]
        try:
            with grpc.insecure_channel(f"127.0.0.1:{self.port}") as channel:
                response = health_pb2_grpc.HealthStub(channel).Check(
                    health_pb2.HealthCheckRequest(service=probe["grpc"]["service"]),
                    timeout=probe.get("timeoutSeconds", 1),
                )
        except grpc.RpcError:
            return False
        return response.status == SERVING

    def live(self) -> bool:
        return self.running() and self.probe("livenessProbe")

    def ready(self) -> bool:
        return self.running() and self.probe("readinessProbe")

    def unready(self) -> bool:
        return not self.probe("readinessProbe")

    def running(self) -> bool:
        assert self.process is not None
        if self.process.poll() is not None:
            raise AssertionError(f"{self.name} exited {self.process.returncode}:\n{self.tail()}")
        return True

    def tail(self) -> str:
        return "\n".join(self.log.read_text(errors="replace").splitlines()[-30:])


def pod_environment(
    manifests: Manifests, name: str, tmp: pathlib.Path, run_id: str, databases: list[str]
) -> Pod:
    deployment = manifests.get("Deployment", name)
    (container,) = containers(deployment)
    env = manifests.container_env(deployment, container)

    # The pod's volumes, materialised.
    volumes = {v["name"]: v for v in pod_spec(deployment).get("volumes", [])}
    mounts = {}
    for mount in container.get("volumeMounts", []):
        directory = tmp / name / mount["name"]
        directory.mkdir(parents=True)
        if "configMap" in volumes[mount["name"]]:
            data = manifests.configmap_data(volumes[mount["name"]]["configMap"]["name"])
            for key, value in data.items():
                (directory / key).write_text(value)
        mounts[mount["mountPath"].rstrip("/") + "/"] = f"{directory}/"

    for key, value in env.items():
        for mount_path, directory in mounts.items():
            value = value.replace(mount_path, directory)
        parts = urlsplit(value)
        if parts.hostname in LOCAL_SERVERS:
            # The URL names a Service of the manifests, on a port it has.
            service = manifests.get("Service", parts.hostname)
            assert parts.port in {p["port"] for p in service["spec"]["ports"]}, value
            local = urlsplit(LOCAL_SERVERS[parts.hostname])
            path = local.path if parts.hostname == "rabbitmq" else f"/bread_k8s_{run_id}_{name}"
            value = urlunsplit((parts.scheme, local.netloc, path, parts.query, parts.fragment))
            if key == "DATABASE_URL":
                ensure_database(value)
                databases.append(value)
        env[key] = value

    probe_port = container["readinessProbe"]["grpc"]["port"]
    assert int(env["GRPC_PORT"]) == probe_port == container["livenessProbe"]["grpc"]["port"]
    env["GRPC_PORT"] = str(free_port())
    container = {
        **container,
        **{
            kind: {
                **container[kind],
                "grpc": {**container[kind]["grpc"], "port": int(env["GRPC_PORT"])},
            }
            for kind in ("readinessProbe", "livenessProbe")
        },
    }
    env["EVENT_EXCHANGE"] = f"{env['EVENT_EXCHANGE']}.k8s-test-{run_id}"
    env["QUEUE_PREFIX"] = f"{env['QUEUE_PREFIX']}.k8s-test-{run_id}"
    if "PAY_TARGET" in env:
        env["PAY_TARGET"] = "127.0.0.1:" + env["PAY_TARGET"].rsplit(":", 1)[1]
    return Pod(
        name=name,
        env=env,
        container=container,
        grace_seconds=pod_spec(deployment)["terminationGracePeriodSeconds"],
        log=tmp / f"{name}.log",
    )


@pytest.fixture(scope="module")
def pods(dev: Manifests, tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Pod]]:
    """The four services at once, as the dev overlay would run them."""
    tmp = tmp_path_factory.mktemp("pods")
    run_id = uuid.uuid4().hex[:10]
    databases: list[str] = []
    started: dict[str, Pod] = {}
    try:
        for name in SERVICES:
            pod = pod_environment(dev, name, tmp, run_id, databases)
            # The image's environment (Dockerfile ENV), then exactly the manifests'.
            base = {"PATH": os.environ["PATH"], "PYTHONUNBUFFERED": "1", "HOME": str(tmp)}
            python, *args = pod.container["command"]
            assert python == "python"
            with open(pod.log, "wb") as log:
                pod.process = subprocess.Popen(
                    [sys.executable, *args],
                    cwd=ROOT,
                    env={**base, **pod.env},
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,
                )
            started[name] = pod
        yield started
    finally:
        for pod in started.values():
            if pod.process is not None and pod.process.poll() is None:
                pod.process.kill()
                pod.process.wait(10)
        for url in databases:
            drop_database(url)
        if started:
            env = next(iter(started.values())).env
            delete_broker_objects(env["EVENT_EXCHANGE"], env["QUEUE_PREFIX"])


@pytest.mark.parametrize("name", SERVICES)
def test_service_answers_liveness_then_readiness(pods: dict[str, Pod], name: str) -> None:
    pod = pods[name]
    wait_for(pod.live, 30, what=f"{name} live")
    # Ready once its database and the broker are connected and its consumer runs.
    wait_for(pod.ready, 60, what=f"{name} ready")
    assert pod.live()


def test_sigterm_drains_then_stops_within_the_grace_period(pods: dict[str, Pod]) -> None:
    """What the kubelet does after preStop: SIGTERM, then SIGKILL at the end of the grace
    period. Readiness drops at once, liveness holds through the drain, the exit is clean."""
    for pod in pods.values():
        wait_for(pod.ready, 60, what=f"{pod.name} ready")
    pre_stop = {
        p.name: p.container["lifecycle"]["preStop"]["sleep"]["seconds"] for p in pods.values()
    }
    stopped_at = time.monotonic()
    for pod in pods.values():
        assert pod.process is not None
        pod.process.send_signal(signal.SIGTERM)
    for pod in pods.values():
        wait_for(pod.unready, 5, what=f"{pod.name} unready")
        if float(pod.env["DRAIN_SECONDS"]) > 1:
            assert pod.probe("livenessProbe"), f"{pod.name} must keep answering while it drains"
    for pod in pods.values():
        assert pod.process is not None
        budget = pod.grace_seconds - pre_stop[pod.name] - (time.monotonic() - stopped_at)
        assert pod.process.wait(max(budget, 0.1)) == 0, pod.tail()
