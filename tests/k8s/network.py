"""Kubernetes NetworkPolicy ingress, as the tests model it: exactly, or not at all.

`allowed(policies, source, target, port)` says whether the policies admit a connection. What
the model interprets, it interprets as the API documents it (networking.k8s.io/v1):
- a pod is isolated for ingress once a policy of its namespace selects it and has Ingress in
  its policyTypes (absent: always Ingress); then only what some rule of those policies admits
  reaches it. No policy selecting it: everything does;
- a rule with `from` absent or empty admits every source, in the cluster or not; a peer admits
  pods only: podSelector alone those of the policy's namespace, namespaceSelector alone every
  pod of the namespaces it selects ({} selects every namespace), both together the pods that
  match the one in the namespaces that match the other;
- a rule with `ports` absent or empty admits every port; an entry admits its protocol (TCP
  unless given) and its port, by number (up to endPort) or by the target's port name, or every
  port of the protocol without one;
- selectors: matchLabels, and matchExpressions with In, NotIn, Exists and DoesNotExist; an
  empty selector selects everything. A namespace carries kubernetes.io/metadata.name.

Anything else in a policy (ipBlock, Egress, an unknown field or operator, a policy without a
namespace) raises Unmodelled before any answer, so a policy the model would misread fails the
test instead of passing it by accident.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

Obj = dict[str, Any]

PROTOCOLS = ("TCP", "UDP", "SCTP")
NAMESPACE_NAME_LABEL = "kubernetes.io/metadata.name"


class Unmodelled(AssertionError):
    """The policy says something the model does not interpret exactly."""


@dataclass(frozen=True)
class Pod:
    """A pod as policies see it: its labels and its namespace's."""

    namespace: str
    labels: Mapping[str, str]
    namespace_labels: Mapping[str, str] = field(default_factory=dict)

    def all_namespace_labels(self) -> dict[str, str]:
        # The API server sets this label on every namespace.
        return {**self.namespace_labels, NAMESPACE_NAME_LABEL: self.namespace}


@dataclass(frozen=True)
class Port:
    """A port the target listens on (a container port)."""

    number: int
    name: str | None = None
    protocol: str = "TCP"

    @classmethod
    def of(cls, container_port: Obj) -> Port:
        return cls(
            container_port["containerPort"],
            container_port.get("name"),
            container_port.get("protocol", "TCP"),
        )


# A connection's source: a pod, or None for a client that is no pod of the cluster (through a
# LoadBalancer, a node port, the nodes themselves).
Source = Pod | None
OUTSIDE: Source = None


def allowed(policies: Iterable[Obj], source: Source, target: Pod, port: Port) -> bool:
    """Whether the ingress policies admit source -> target:port."""
    policies = list(policies)
    for policy in policies:
        check(policy)
    isolating = [
        p
        for p in policies
        if p["metadata"]["namespace"] == target.namespace
        and "Ingress" in _policy_types(p["spec"])
        and selects(p["spec"]["podSelector"], target.labels)
    ]
    if not isolating:
        return True
    return any(
        _admits(rule, policy["metadata"]["namespace"], source, port)
        for policy in isolating
        for rule in policy["spec"].get("ingress") or []
    )


def selects(selector: Obj, labels: Mapping[str, str]) -> bool:
    """A label selector (matchLabels and matchExpressions) against labels."""
    _check_keys(selector, {"matchLabels", "matchExpressions"}, "label selector")
    for key, value in (selector.get("matchLabels") or {}).items():
        if labels.get(key) != value:
            return False
    for expression in selector.get("matchExpressions") or []:
        key, operator = expression["key"], expression["operator"]
        values = expression.get("values") or []
        if operator == "In" and labels.get(key) not in values:
            return False
        if operator == "NotIn" and key in labels and labels[key] in values:
            return False
        if operator == "Exists" and key not in labels:
            return False
        if operator == "DoesNotExist" and key in labels:
            return False
    return True


def check(policy: Obj) -> None:
    """Raise Unmodelled unless every part of the policy is one the model interprets."""
    if (policy.get("apiVersion"), policy.get("kind")) != ("networking.k8s.io/v1", "NetworkPolicy"):
        raise Unmodelled(f"not a networking.k8s.io/v1 NetworkPolicy: {policy.get('kind')}")
    _check_keys(policy, {"apiVersion", "kind", "metadata", "spec"}, "NetworkPolicy")
    metadata = policy.get("metadata") or {}
    name = str(metadata.get("name"))
    if not metadata.get("namespace"):
        raise Unmodelled(f"{name}: no namespace (it would be the applier's current one)")
    spec = policy.get("spec")
    if not isinstance(spec, dict) or "podSelector" not in spec:
        raise Unmodelled(f"{name}: a spec with a podSelector is required")
    _check_keys(spec, {"podSelector", "policyTypes", "ingress", "egress"}, name)
    _check_selector(spec["podSelector"], f"{name}: podSelector")
    types = _policy_types(spec)
    if not set(types) <= {"Ingress", "Egress"}:
        raise Unmodelled(f"{name}: policyTypes {types}")
    if "Egress" in types or "egress" in spec:
        # Egress rules could refuse a connection the ingress rules admit.
        raise Unmodelled(f"{name}: egress is not modelled")
    for rule in spec.get("ingress") or []:
        _check_keys(rule, {"from", "ports"}, f"{name}: ingress rule")
        for peer in rule.get("from") or []:
            _check_peer(peer, name)
        for rule_port in rule.get("ports") or []:
            _check_port(rule_port, name)


def _policy_types(spec: Obj) -> list[str]:
    if "policyTypes" in spec:
        return list(spec["policyTypes"])
    # The API's default: Ingress always, Egress when there are egress rules.
    return ["Ingress", *(["Egress"] if "egress" in spec else [])]


def _admits(rule: Obj, namespace: str, source: Source, port: Port) -> bool:
    peers = rule.get("from") or []
    rule_ports = rule.get("ports") or []
    from_ok = not peers or any(_peer_matches(peer, namespace, source) for peer in peers)
    port_ok = not rule_ports or any(_port_matches(p, port) for p in rule_ports)
    return from_ok and port_ok


def _peer_matches(peer: Obj, namespace: str, source: Source) -> bool:
    if source is None:
        return False  # pod and namespace selectors select pods only
    if "namespaceSelector" in peer:
        in_namespace = selects(peer["namespaceSelector"], source.all_namespace_labels())
    else:
        in_namespace = source.namespace == namespace
    return in_namespace and selects(peer.get("podSelector", {}), source.labels)


def _port_matches(rule_port: Obj, port: Port) -> bool:
    if rule_port.get("protocol", "TCP") != port.protocol:
        return False
    wanted: int | str | None = rule_port.get("port")
    if wanted is None:
        return True
    if isinstance(wanted, str):
        return wanted == port.name
    return bool(wanted <= port.number <= rule_port.get("endPort", wanted))


def _check_peer(peer: Obj, name: str) -> None:
    if "ipBlock" in peer:
        raise Unmodelled(f"{name}: ipBlock peers are not modelled")
    _check_keys(peer, {"podSelector", "namespaceSelector"}, f"{name}: peer")
    if not peer:
        raise Unmodelled(f"{name}: an empty peer is not valid")
    for kind in ("podSelector", "namespaceSelector"):
        if kind in peer:
            _check_selector(peer[kind], f"{name}: {kind}")


def _check_port(rule_port: Obj, name: str) -> None:
    _check_keys(rule_port, {"port", "endPort", "protocol"}, f"{name}: port")
    if rule_port.get("protocol", "TCP") not in PROTOCOLS:
        raise Unmodelled(f"{name}: protocol {rule_port['protocol']}")
    wanted = rule_port.get("port")
    if isinstance(wanted, str) and (wanted.isdigit() or "endPort" in rule_port):
        raise Unmodelled(f"{name}: port {wanted!r} with {rule_port}")
    if wanted is not None and not isinstance(wanted, int | str):
        raise Unmodelled(f"{name}: port {wanted!r}")
    if "endPort" in rule_port and not (isinstance(wanted, int) and rule_port["endPort"] >= wanted):
        raise Unmodelled(f"{name}: endPort without a lower numeric port: {rule_port}")


def _check_selector(selector: Obj, where: str) -> None:
    if not isinstance(selector, dict):
        raise Unmodelled(f"{where}: {selector!r}")
    _check_keys(selector, {"matchLabels", "matchExpressions"}, where)
    for expression in selector.get("matchExpressions") or []:
        _check_keys(expression, {"key", "operator", "values"}, where)
        operator, values = expression.get("operator"), expression.get("values") or []
        if operator in ("In", "NotIn") and values:
            continue
        if operator in ("Exists", "DoesNotExist") and not values:
            continue
        raise Unmodelled(f"{where}: expression {expression}")


def _check_keys(obj: Obj, known: set[str], where: object) -> None:
    unknown = set(obj) - known
    if unknown:
        raise Unmodelled(f"{where}: {sorted(unknown)} not modelled")
