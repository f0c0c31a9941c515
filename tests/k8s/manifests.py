"""Render the kustomize overlays and answer questions about the objects.

Rendering uses the kubectl from requirements-dev.txt (`kubectl kustomize`), offline, on the
kustomization `make k8s-render` writes (ops.k8s_build), from a copy of k8s/:
- the prod overlay reads its credentials and its JWKS from uncommitted files (credentials.env,
  jwks.json): the committed examples take their place;
- the dev overlay gets its JWKS Secret from the development key, as with make: a throwaway key
  made for the run stands in for the one under var/keys.
"""

from __future__ import annotations

import base64
import pathlib
import re
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from functools import cache
from typing import Any

import yaml

from ops import k8s_build
from ops.tokens import DevIssuer
from servicekit import registry

ROOT = pathlib.Path(__file__).resolve().parents[2]
K8S = ROOT / "k8s"
KUBECTL = str(pathlib.Path(sys.executable).parent / "kubectl")
OVERLAYS = ("dev", "prod")
WORKLOADS = ("Deployment", "StatefulSet")
# Every registered service has its manifest (tests/unit/test_registry.py); these tests hold each
# one to the policies.
SERVICES = registry.NAMES

Obj = dict[str, Any]


@cache
def render(overlay: str) -> tuple[tuple[Obj, ...], str | None]:
    """The overlay's objects, and the JWKS the build added (None: the overlay has its own)."""
    with tempfile.TemporaryDirectory() as tmp:
        k8s = pathlib.Path(tmp) / "k8s"
        shutil.copytree(K8S, k8s)
        directory = k8s / "overlays" / overlay
        for example in directory.glob("*.example"):
            if not example.with_suffix("").exists():
                shutil.copy(example, example.with_suffix(""))
        jwks = None
        if overlay in k8s_build.DEV_KEY_OVERLAYS:
            jwks = DevIssuer(pathlib.Path(tmp) / "keys").ensure_keys().jwks_path
        out = pathlib.Path(tmp) / "build" / overlay
        k8s_build.write(directory, out, "bread:dev", jwks)
        result = subprocess.run(
            [KUBECTL, "kustomize", str(out)],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        jwks_text = jwks.read_text() if jwks else None
    assert result.returncode == 0, result.stderr
    return tuple(doc for doc in yaml.safe_load_all(result.stdout) if doc), jwks_text


class Manifests:
    """One rendered overlay."""

    def __init__(self, overlay: str) -> None:
        self.overlay = overlay
        self.objects, self.build_jwks = render(overlay)

    def all(self, kind: str) -> list[Obj]:
        return [o for o in self.objects if o["kind"] == kind]

    def get(self, kind: str, name: str) -> Obj:
        found = [o for o in self.all(kind) if o["metadata"]["name"] == name]
        assert len(found) == 1, f"{kind}/{name}: {len(found)} objects in {self.overlay}"
        return found[0]

    def workloads(self) -> list[Obj]:
        return [o for o in self.objects if o["kind"] in WORKLOADS]

    def configmap_data(self, name: str) -> dict[str, str]:
        return dict(self.get("ConfigMap", name).get("data", {}))

    def secret_data(self, name: str) -> dict[str, str]:
        secret = self.get("Secret", name)
        data = {k: base64.b64decode(v).decode() for k, v in secret.get("data", {}).items()}
        return {**data, **secret.get("stringData", {})}

    def container_env(self, workload: Obj, container: Obj) -> dict[str, str]:
        """The environment the kubelet gives the container: envFrom, then env in order,
        with $(VAR) references expanded like Kubernetes does."""
        env: dict[str, str] = {}
        for source in container.get("envFrom", []):
            prefix = source.get("prefix", "")
            if "configMapRef" in source:
                data = self.configmap_data(source["configMapRef"]["name"])
            else:
                data = self.secret_data(source["secretRef"]["name"])
            env.update({prefix + k: v for k, v in data.items()})
        for var in container.get("env", []):
            if "value" in var:
                env[var["name"]] = expand(var["value"], env)
                continue
            ref = var["valueFrom"]
            if "configMapKeyRef" in ref:
                key = ref["configMapKeyRef"]
                env[var["name"]] = self.configmap_data(key["name"])[key["key"]]
            elif "secretKeyRef" in ref:
                key = ref["secretKeyRef"]
                env[var["name"]] = self.secret_data(key["name"])[key["key"]]
            elif "fieldRef" in ref:  # a stand-in for the first pod
                path = ref["fieldRef"]["fieldPath"]
                env[var["name"]] = {
                    "metadata.name": f"{workload['metadata']['name']}-0",
                    "metadata.namespace": workload["metadata"].get("namespace", "default"),
                }[path]
            else:
                raise AssertionError(f"unsupported valueFrom {ref}")
        return env

    def pod_labels(self) -> Iterator[tuple[Obj, dict[str, str]]]:
        for workload in self.workloads():
            yield workload, workload["spec"]["template"]["metadata"]["labels"]


def pod_spec(workload: Obj) -> Obj:
    return dict(workload["spec"]["template"]["spec"])


def containers(workload: Obj, init: bool = False) -> list[Obj]:
    spec = pod_spec(workload)
    return list(spec.get("containers", [])) + (list(spec.get("initContainers", [])) if init else [])


def matches(selector: dict[str, str], labels: dict[str, str]) -> bool:
    return all(labels.get(k) == v for k, v in selector.items())


_REFERENCE = re.compile(r"\$\$|\$\(([A-Za-z_][A-Za-z0-9_.-]*)\)")


def expand(value: str, env: dict[str, str]) -> str:
    """Kubernetes' dependent environment variables: $(VAR) if defined, $$ escapes."""

    def replace(match: re.Match[str]) -> str:
        if match.group(0) == "$$":
            return "$"
        return env.get(match.group(1), match.group(0))

    return _REFERENCE.sub(replace, value)


def envoy_config_text(manifests: Manifests) -> str:
    """The gateway's envoy.yaml, from the ConfigMap its Deployment mounts."""
    return manifests.configmap_data(_volume_configmap(manifests, "gateway", "config"))["envoy.yaml"]


def envoy_config(manifests: Manifests) -> Obj:
    config: Obj = yaml.safe_load(envoy_config_text(manifests))
    return config


def _volume_configmap(manifests: Manifests, deployment: str, volume: str) -> str:
    spec = pod_spec(manifests.get("Deployment", deployment))
    (found,) = [v for v in spec["volumes"] if v["name"] == volume]
    return str(found["configMap"]["name"])
