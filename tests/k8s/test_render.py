"""Both overlays render, and every object is valid for a current Kubernetes, strictly."""

from __future__ import annotations

import kubernetes_validate

from tests.k8s.manifests import SERVICES, Manifests

# The newest schemas kubernetes-validate ships (offline, inside the wheel).
KUBERNETES_VERSION = "1.37.0"


def test_every_object_validates_strictly(manifests: Manifests) -> None:
    errors = []
    for obj in manifests.objects:
        try:
            # strict: a misspelt or misplaced field is an error, not silently dropped.
            kubernetes_validate.validate(obj, KUBERNETES_VERSION, strict=True)
        except kubernetes_validate.ValidationError as exc:
            path = "/".join(str(p) for p in exc.path)
            errors.append(f"{obj['kind']}/{obj['metadata']['name']}: {path}: {exc.message}")
    assert not errors, "\n".join(errors)


def test_overlay_has_the_whole_application(manifests: Manifests) -> None:
    kinds = {(o["kind"], o["metadata"]["name"]) for o in manifests.objects}
    for name in (*SERVICES, "gateway"):
        assert ("Deployment", name) in kinds
        assert ("Service", name) in kinds
        assert ("PodDisruptionBudget", name) in kinds
    for name in ("rabbitmq", "postgres", "mariadb"):
        assert ("StatefulSet", name) in kinds
    # Every object lands in the overlay's namespace, which the overlay creates.
    (namespace,) = manifests.all("Namespace")
    for obj in manifests.objects:
        if obj["kind"] != "Namespace":
            assert obj["metadata"]["namespace"] == namespace["metadata"]["name"]


def test_prod_autoscales_every_service_and_clusters_the_broker(prod: Manifests) -> None:
    hpas = {
        h["spec"]["scaleTargetRef"]["name"]: h["spec"] for h in prod.all("HorizontalPodAutoscaler")
    }
    assert set(hpas) == set(SERVICES)
    assert hpas["pay"]["maxReplicas"] == 10
    for spec in hpas.values():
        (metric,) = spec["metrics"]
        assert metric["resource"]["name"] == "cpu"
        assert metric["resource"]["target"] == {"type": "Utilization", "averageUtilization": 50}
    assert prod.get("StatefulSet", "rabbitmq")["spec"]["replicas"] == 3


def test_dev_runs_one_replica_of_everything(dev: Manifests) -> None:
    assert not dev.all("HorizontalPodAutoscaler")
    for workload in dev.workloads():
        assert workload["spec"].get("replicas", 1) == 1, workload["metadata"]["name"]
