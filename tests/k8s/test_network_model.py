"""The NetworkPolicy model of tests/k8s/network.py on small hand-written policies: each case
that a naive reading gets wrong is either modelled as the API documents it or refused."""

from __future__ import annotations

from typing import Any

import pytest

from tests.k8s.network import OUTSIDE, Obj, Pod, Port, Unmodelled, allowed

NS = "shop"
WEB = Pod(NS, {"app": "web"}, {"team": "shop"})
API = Pod(NS, {"app": "api", "tier": "backend"}, {"team": "shop"})
# The same labels as API, in another namespace.
API_ELSEWHERE = Pod("other", {"app": "api", "tier": "backend"}, {"team": "other"})
HTTP = Port(8080, "http")
METRICS = Port(9090, "metrics")
DNS_UDP = Port(8080, "dns", "UDP")


def policy(spec: Obj, namespace: str | None = NS, **extra: Any) -> Obj:
    metadata = {"name": "p", **({"namespace": namespace} if namespace else {})}
    return {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": metadata,
        "spec": spec,
        **extra,
    }


def to_api(*ingress: Obj, **spec: Any) -> Obj:
    return policy(
        {"podSelector": {"matchLabels": {"app": "api"}}, "ingress": list(ingress), **spec}
    )


EVERY_SOURCE = (WEB, API, API_ELSEWHERE, OUTSIDE)


def test_no_policy_selecting_the_pod_admits_everything() -> None:
    other = policy({"podSelector": {"matchLabels": {"app": "web"}}})
    for source in EVERY_SOURCE:
        assert allowed([other], source, API, HTTP)


def test_a_policy_without_rules_isolates() -> None:
    for isolating in (to_api(), policy({"podSelector": {}})):
        for source in EVERY_SOURCE:
            assert not allowed([isolating], source, API, HTTP)


def test_a_policy_of_another_namespace_does_not_apply() -> None:
    assert allowed([policy({"podSelector": {}}, namespace="other")], WEB, API, HTTP)


@pytest.mark.parametrize("rule", [{"from": []}, {}, {"ports": [{"port": 8080}]}])
def test_absent_or_empty_from_admits_every_source(rule: Obj) -> None:
    for source in EVERY_SOURCE:
        assert allowed([to_api(rule)], source, API, HTTP)


@pytest.mark.parametrize("rule", [{"ports": []}, {}, {"from": [{"podSelector": {}}]}])
def test_absent_or_empty_ports_admits_every_port(rule: Obj) -> None:
    for port in (HTTP, METRICS, DNS_UDP):
        assert allowed([to_api(rule)], WEB, API, port)


def test_pod_selector_alone_admits_pods_of_the_policys_namespace_only() -> None:
    rule = {"from": [{"podSelector": {"matchLabels": {"app": "api"}}}]}
    target = Pod(NS, {"app": "api"})
    assert allowed([to_api(rule)], API, target, HTTP)
    assert not allowed([to_api(rule)], API_ELSEWHERE, target, HTTP)
    assert not allowed([to_api(rule)], WEB, target, HTTP)
    assert not allowed([to_api(rule)], OUTSIDE, target, HTTP)


def test_empty_namespace_selector_admits_every_pod_of_every_namespace_but_no_outsider() -> None:
    rule: Obj = {"from": [{"namespaceSelector": {}}]}
    for source in (WEB, API, API_ELSEWHERE):
        assert allowed([to_api(rule)], source, API, HTTP)
    assert not allowed([to_api(rule)], OUTSIDE, API, HTTP)


def test_namespace_and_pod_selector_in_one_peer_must_both_match() -> None:
    rule = {
        "from": [
            {
                "namespaceSelector": {"matchLabels": {"team": "other"}},
                "podSelector": {"matchLabels": {"app": "api"}},
            }
        ]
    }
    assert allowed([to_api(rule)], API_ELSEWHERE, API, HTTP)
    assert not allowed([to_api(rule)], API, API, HTTP)  # right pod, wrong namespace
    assert not allowed([to_api(rule)], Pod("other", {"app": "web"}, {"team": "other"}), API, HTTP)


def test_namespaces_are_selected_by_their_name_label() -> None:
    by_name = {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "other"}}}
    assert allowed([to_api({"from": [by_name]})], API_ELSEWHERE, API, HTTP)
    assert not allowed([to_api({"from": [by_name]})], WEB, API, HTTP)


def test_match_expressions() -> None:
    def admits(*expressions: Obj) -> set[str]:
        rule = {"from": [{"podSelector": {"matchExpressions": list(expressions)}}]}
        pods = {
            "web": WEB,
            "api": API,
            "bare": Pod(NS, {}),
        }
        return {name for name, pod in pods.items() if allowed([to_api(rule)], pod, API, HTTP)}

    assert admits({"key": "app", "operator": "In", "values": ["web", "x"]}) == {"web"}
    # NotIn also selects pods without the label.
    assert admits({"key": "app", "operator": "NotIn", "values": ["web"]}) == {"api", "bare"}
    assert admits({"key": "tier", "operator": "Exists"}) == {"api"}
    assert admits({"key": "tier", "operator": "DoesNotExist"}) == {"web", "bare"}
    # Expressions are ANDed, with matchLabels too.
    both = {"key": "app", "operator": "Exists"}, {"key": "tier", "operator": "DoesNotExist"}
    assert admits(*both) == {"web"}


def test_ports_by_number_range_name_and_protocol() -> None:
    def admits(*ports: Obj) -> set[str]:
        rule = {"ports": list(ports)}
        candidates = {"http": HTTP, "metrics": METRICS, "dns": DNS_UDP}
        return {
            name for name, port in candidates.items() if allowed([to_api(rule)], WEB, API, port)
        }

    assert admits({"port": 8080}) == {"http"}  # TCP unless told
    assert admits({"port": 8080, "protocol": "UDP"}) == {"dns"}
    assert admits({"port": "metrics"}) == {"metrics"}
    assert admits({"port": 8000, "endPort": 9090}) == {"http", "metrics"}
    assert admits({"protocol": "TCP"}) == {"http", "metrics"}  # every TCP port


def test_any_isolating_policy_may_admit() -> None:
    """Policies add up: one admitting is enough."""
    web_only = to_api({"from": [{"podSelector": {"matchLabels": {"app": "web"}}}]})
    deny = policy({"podSelector": {}})
    assert allowed([deny, web_only], WEB, API, HTTP)
    assert not allowed([deny, web_only], API, API, HTTP)


@pytest.mark.parametrize(
    "unmodelled",
    [
        to_api({"from": [{"ipBlock": {"cidr": "10.0.0.0/8"}}]}),
        to_api({"from": [{}]}),
        to_api(policyTypes=["Ingress", "Egress"]),
        to_api(egress=[{}]),
        policy({"podSelector": {}, "policyTypes": ["Egress"]}),
        to_api({"from": [{"podSelector": {"matchExpressions": [{"key": "a", "operator": "Gt"}]}}]}),
        to_api({"from": [{"podSelector": {"matchExpressions": [{"key": "a", "operator": "In"}]}}]}),
        to_api({"from": [{"podSelector": {"matchLabels": {}, "matchFields": {}}}]}),
        to_api({"from": [{"podSelector": {}}], "to": []}),
        to_api({"ports": [{"port": "8080"}]}),
        to_api({"ports": [{"port": "http", "endPort": 9000}]}),
        to_api({"ports": [{"port": 8080, "endPort": 80}]}),
        to_api({"ports": [{"port": 8080, "protocol": "ICMP"}]}),
        policy({"podSelector": {}}, namespace=None),
        policy({"ingress": [{}]}),
        policy({"podSelector": {}}, status={}),
        # Unmodelled parts are refused even where a rule before them already admits.
        to_api({}, {"from": [{"ipBlock": {"cidr": "0.0.0.0/0"}}]}),
    ],
)
def test_what_is_not_modelled_is_refused(unmodelled: Obj) -> None:
    with pytest.raises(Unmodelled):
        allowed([unmodelled], WEB, API, HTTP)
    # Also when it does not select the target.
    with pytest.raises(Unmodelled):
        allowed([unmodelled], WEB, Pod("elsewhere", {}), HTTP)
