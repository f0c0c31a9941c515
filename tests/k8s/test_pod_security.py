"""Pod Security: the namespace enforces the restricted profile, and every pod template meets
it, so no pod is refused at admission. The checker below is the restricted profile of the
Pod Security Standards (baseline included) as of Kubernetes 1.30, written out; a field of a
securityContext it does not know is a violation too, so a new field gets looked at, not passed.
"""

from __future__ import annotations

import re
from typing import Any

import pytest

from tests.k8s.manifests import Manifests, Obj

# The oldest Kubernetes docs/kubernetes.md supports: the profile is enforced as of that one.
ENFORCE_VERSION = "v1.30"
PSA = "pod-security.kubernetes.io"

# Volume types the restricted profile allows.
VOLUME_TYPES = {
    "configMap",
    "csi",
    "downwardAPI",
    "emptyDir",
    "ephemeral",
    "persistentVolumeClaim",
    "projected",
    "secret",
}
SECCOMP_TYPES = {"RuntimeDefault", "Localhost"}
SELINUX_TYPES = {"", "container_t", "container_init_t", "container_kvm_t", "container_engine_t"}
SAFE_SYSCTLS = {
    "kernel.shm_rmid_forced",
    "net.ipv4.ip_local_port_range",
    "net.ipv4.ip_unprivileged_port_start",
    "net.ipv4.tcp_syncookies",
    "net.ipv4.ping_group_range",
    "net.ipv4.ip_local_reserved_ports",
    "net.ipv4.tcp_keepalive_time",
    "net.ipv4.tcp_fin_timeout",
    "net.ipv4.tcp_keepalive_intvl",
    "net.ipv4.tcp_keepalive_probes",
}
POD_SECURITY_FIELDS = {
    "fsGroup",
    "fsGroupChangePolicy",
    "runAsGroup",
    "runAsNonRoot",
    "runAsUser",
    "seLinuxOptions",
    "seccompProfile",
    "supplementalGroups",
    "supplementalGroupsPolicy",
    "sysctls",
    "windowsOptions",
    "appArmorProfile",
}
CONTAINER_SECURITY_FIELDS = {
    "allowPrivilegeEscalation",
    "capabilities",
    "privileged",
    "procMount",
    "readOnlyRootFilesystem",
    "runAsGroup",
    "runAsNonRoot",
    "runAsUser",
    "seLinuxOptions",
    "seccompProfile",
    "windowsOptions",
    "appArmorProfile",
}


def restricted_violations(template: Obj) -> list[str]:
    """What in a pod template the restricted profile refuses; empty if it admits it."""
    spec: Obj = template["spec"]
    found: list[str] = []
    for host in ("hostNetwork", "hostPID", "hostIPC"):
        if spec.get(host):
            found.append(f"{host}")
    for volume in spec.get("volumes", []):
        kinds = set(volume) - {"name"}
        if not kinds <= VOLUME_TYPES:
            found.append(f"volume {volume['name']}: {sorted(kinds)}")
    pod: Obj = spec.get("securityContext", {})
    found += [f"pod securityContext.{k}: not checked" for k in set(pod) - POD_SECURITY_FIELDS]
    found += _common(pod, "pod")
    for sysctl in pod.get("sysctls", []):
        if sysctl["name"] not in SAFE_SYSCTLS:
            found.append(f"sysctl {sysctl['name']}")
    for key, value in template.get("metadata", {}).get("annotations", {}).items():
        if key.startswith("container.apparmor.security.beta.kubernetes.io/") and not (
            value == "runtime/default" or value.startswith("localhost/")
        ):
            found.append(f"annotation {key}: {value}")
    for kind in ("initContainers", "containers", "ephemeralContainers"):
        for container in spec.get(kind, []):
            where = f"{kind} {container['name']}"
            own: Obj = container.get("securityContext", {})
            found += [
                f"{where} securityContext.{k}: not checked"
                for k in set(own) - CONTAINER_SECURITY_FIELDS
            ]
            found += _common(own, where)
            if own.get("privileged"):
                found.append(f"{where}: privileged")
            if own.get("allowPrivilegeEscalation") is not False:
                found.append(f"{where}: allowPrivilegeEscalation must be false")
            if own.get("procMount", "Default") != "Default":
                found.append(f"{where}: procMount {own['procMount']}")
            capabilities: Obj = own.get("capabilities", {})
            if "ALL" not in capabilities.get("drop", []):
                found.append(f"{where}: capabilities must drop ALL")
            if not set(capabilities.get("add", [])) <= {"NET_BIND_SERVICE"}:
                found.append(f"{where}: capabilities add {capabilities['add']}")
            # Either the container's own, or the pod's for all of them.
            if own.get("runAsNonRoot", pod.get("runAsNonRoot")) is not True:
                found.append(f"{where}: runAsNonRoot must be true")
            profile: Obj = own.get("seccompProfile") or pod.get("seccompProfile") or {}
            if profile.get("type") not in SECCOMP_TYPES:
                found.append(f"{where}: seccompProfile must be RuntimeDefault or Localhost")
            for port in container.get("ports", []):
                if port.get("hostPort"):
                    found.append(f"{where}: hostPort {port['hostPort']}")
    return found


def _common(context: Obj, where: str) -> list[str]:
    """The checks a pod's and a container's securityContext share."""
    found = []
    if context.get("runAsUser") == 0:
        found.append(f"{where}: runAsUser 0")
    if "seccompProfile" in context and context["seccompProfile"]["type"] not in SECCOMP_TYPES:
        found.append(f"{where}: seccompProfile {context['seccompProfile']['type']}")
    if "appArmorProfile" in context and context["appArmorProfile"]["type"] not in SECCOMP_TYPES:
        found.append(f"{where}: appArmorProfile {context['appArmorProfile']['type']}")
    selinux: Obj = context.get("seLinuxOptions", {})
    if selinux.get("type", "") not in SELINUX_TYPES or selinux.get("user") or selinux.get("role"):
        found.append(f"{where}: seLinuxOptions {selinux}")
    if context.get("windowsOptions", {}).get("hostProcess"):
        found.append(f"{where}: hostProcess")
    return found


def test_the_namespace_enforces_the_restricted_profile(manifests: Manifests) -> None:
    (namespace,) = manifests.all("Namespace")
    labels = namespace["metadata"].get("labels", {})
    assert labels[f"{PSA}/enforce"] == "restricted"
    # Pinned: a cluster upgrade with a stricter profile must not start refusing pods.
    assert re.fullmatch(r"v1\.\d+", labels[f"{PSA}/enforce-version"])
    assert labels[f"{PSA}/enforce-version"] == ENFORCE_VERSION
    for mode in ("warn", "audit"):
        assert labels[f"{PSA}/{mode}"] == "restricted"


def test_every_pod_template_meets_the_restricted_profile(manifests: Manifests) -> None:
    """Every workload, the databases and the broker included."""
    found = {
        f"{w['kind']}/{w['metadata']['name']}": restricted_violations(w["spec"]["template"])
        for w in manifests.workloads()
    }
    assert manifests.workloads()
    assert not {k: v for k, v in found.items() if v}


def good_pod(**changes: Any) -> Obj:
    container: Obj = {
        "name": "app",
        "securityContext": {
            "allowPrivilegeEscalation": False,
            "capabilities": {"drop": ["ALL"]},
        },
    }
    spec: Obj = {
        "securityContext": {"runAsNonRoot": True, "seccompProfile": {"type": "RuntimeDefault"}},
        "containers": [container],
        "volumes": [{"name": "tmp", "emptyDir": {}}],
    }
    for path, value in changes.items():
        *parents, last = path.split("__")
        node = spec
        for part in parents:
            node = node[int(part)] if isinstance(node, list) else node.setdefault(part, {})
        node[last] = value
    return {"metadata": {}, "spec": spec}


def test_the_checker_admits_a_minimal_restricted_pod() -> None:
    assert restricted_violations(good_pod()) == []


@pytest.mark.parametrize(
    "changes",
    [
        {"hostNetwork": True},
        {"hostPID": True},
        {"hostIPC": True},
        {"volumes": [{"name": "h", "hostPath": {"path": "/"}}]},
        {"securityContext__runAsNonRoot": False},
        {"securityContext__runAsUser": 0},
        {"securityContext__seccompProfile": {"type": "Unconfined"}},
        {"securityContext__sysctls": [{"name": "kernel.msgmax", "value": "1"}]},
        {"securityContext__shareProcessNamespace": True},
        {"containers__0__securityContext__privileged": True},
        {"containers__0__securityContext__allowPrivilegeEscalation": True},
        {"containers__0__securityContext__capabilities": {"drop": ["NET_RAW"]}},
        {"containers__0__securityContext__capabilities": {"drop": ["ALL"], "add": ["NET_ADMIN"]}},
        {"containers__0__securityContext__runAsNonRoot": False},
        {"containers__0__securityContext__seccompProfile": {"type": "Unconfined"}},
        {"containers__0__securityContext__procMount": "Unmasked"},
        {"containers__0__securityContext__seLinuxOptions": {"user": "root"}},
        {"containers__0__ports": [{"containerPort": 80, "hostPort": 80}]},
        {"containers__0__securityContext__newField": True},
    ],
)
def test_the_checker_refuses_what_the_profile_refuses(changes: dict[str, Any]) -> None:
    assert restricted_violations(good_pod(**changes))
