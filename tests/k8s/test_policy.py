"""What a reviewer checks by hand in a deployment, checked on every run.

Ports and health service names come from the services' own specs (order_svc.spec etc.), the
settings from the rendered ConfigMaps and Secrets: nothing here repeats a value it checks.
"""

from __future__ import annotations

import importlib
import re
from urllib.parse import unquote, urlsplit

import pytest
import yaml

from servicekit.settings import Settings
from servicekit.spec import ServiceSpec
from tests.k8s.manifests import (
    SERVICES,
    Manifests,
    Obj,
    containers,
    envoy_config,
    matches,
    pod_spec,
)
from tests.k8s.network import OUTSIDE, Pod, Port, Source, allowed


def spec_of(service: str) -> ServiceSpec:
    spec: ServiceSpec = importlib.import_module(f"{service}_svc.spec").SPEC
    return spec


def name_of(obj: Obj) -> str:
    return f"{obj['kind']}/{obj['metadata']['name']}"


# ------------------------------------------------------------------ every container


def test_every_container_has_requests_limits_and_probes(manifests: Manifests) -> None:
    for workload in manifests.workloads():
        for container in containers(workload, init=True):
            where = f"{name_of(workload)} {container['name']}"
            resources = container.get("resources", {})
            for kind in ("requests", "limits"):
                assert {"cpu", "memory"} <= set(resources.get(kind, {})), f"{where}: {kind}"
        for container in containers(workload):
            where = f"{name_of(workload)} {container['name']}"
            assert "readinessProbe" in container, where
            assert "livenessProbe" in container, where


def test_every_container_runs_unprivileged_on_a_read_only_root(manifests: Manifests) -> None:
    """Beyond the restricted profile (test_pod_security.py): a read-only root filesystem and
    no service account token."""
    for workload in manifests.workloads():
        pod = pod_spec(workload).get("securityContext", {})
        assert pod.get("seccompProfile") == {"type": "RuntimeDefault"}, name_of(workload)
        assert pod_spec(workload).get("automountServiceAccountToken") is False
        for container in containers(workload, init=True):
            where = f"{name_of(workload)} {container['name']}"
            own = container.get("securityContext", {})
            assert own.get("runAsNonRoot", pod.get("runAsNonRoot")) is True, where
            assert own.get("runAsUser", pod.get("runAsUser", 1)) != 0, where
            assert own.get("readOnlyRootFilesystem") is True, where
            assert own.get("allowPrivilegeEscalation") is False, where
            assert own.get("capabilities", {}).get("drop") == ["ALL"], where


# ------------------------------------------------------------------ the bread services


@pytest.mark.parametrize("service", SERVICES)
def test_service_runs_its_module_with_probes_where_it_serves(
    manifests: Manifests, service: str
) -> None:
    spec = spec_of(service)
    deployment = manifests.get("Deployment", service)
    (container,) = containers(deployment)
    assert container["command"] == ["python", "-m", f"{service}_svc"]
    env = manifests.container_env(deployment, container)
    port = int(env.get("GRPC_PORT", spec.default_port))
    assert port == spec.default_port, "the documented port"

    # The kubelet asks readiness by the service's own name, liveness by "" (overall).
    assert container["readinessProbe"]["grpc"] == {"port": port, "service": spec.readiness_name}
    assert container["livenessProbe"]["grpc"] == {"port": port, "service": ""}
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    metrics = Settings.from_env(service, spec.default_port, env).metrics_port
    assert ports == {"grpc": port, "metrics": metrics}

    # The Service forwards to that port.
    (service_port,) = manifests.get("Service", service)["spec"]["ports"]
    assert service_port["targetPort"] in ("grpc", port)

    # Docker-link variables would add to (or clash with) the settings.
    assert pod_spec(deployment)["enableServiceLinks"] is False


@pytest.mark.parametrize("service", SERVICES)
def test_gateway_reaches_each_service_where_it_serves(manifests: Manifests, service: str) -> None:
    spec = spec_of(service)
    config = envoy_config(manifests)
    (cluster,) = [c for c in config["static_resources"]["clusters"] if c["name"] == service]
    ((endpoint,),) = [e["lb_endpoints"] for e in cluster["load_assignment"]["endpoints"]]
    address = endpoint["endpoint"]["address"]["socket_address"]
    target = manifests.get("Service", address["address"])
    # Headless, so that Envoy sees (health-checks, ejects) every pod.
    assert target["spec"]["clusterIP"] == "None"
    assert matches(target["spec"]["selector"], _pod_labels(manifests, service))
    (service_port,) = target["spec"]["ports"]
    assert service_port["port"] == address["port_value"] == spec.default_port
    (check,) = cluster["health_checks"]
    assert check["grpc_health_check"]["service_name"] == spec.readiness_name


def test_order_calls_pay_through_the_gateway_mesh_listener(manifests: Manifests) -> None:
    deployment = manifests.get("Deployment", "order")
    (container,) = containers(deployment)
    host, port = manifests.container_env(deployment, container)["PAY_TARGET"].rsplit(":", 1)
    mesh = manifests.get("Service", host)
    (service_port,) = mesh["spec"]["ports"]
    assert service_port["port"] == int(port)
    assert matches(mesh["spec"]["selector"], _pod_labels(manifests, "gateway"))
    (envoy,) = containers(manifests.get("Deployment", "gateway"))
    mesh_port = {p["name"]: p["containerPort"] for p in envoy["ports"]}[service_port["targetPort"]]
    config = envoy_config(manifests)
    (listener,) = [x for x in config["static_resources"]["listeners"] if x["name"] == "mesh"]
    assert listener["address"]["socket_address"]["port_value"] == mesh_port


# Grace beyond what preStop and the settings add up to, for closing connections and exiting:
# at the deadline the kubelet sends SIGKILL.
GRACE_MARGIN_SECONDS = 5


def test_grace_period_covers_prestop_drain_and_stop(manifests: Manifests) -> None:
    """After preStop, SIGTERM: DRAIN_SECONDS NOT_SERVING, then STOP_GRACE_SECONDS for the
    consumer and the accepted calls, then exit. The settings are those the process reads from
    its rendered environment, defaults included."""
    running = set()
    for deployment in manifests.all("Deployment"):
        for container in containers(deployment):
            service = _bread_service(container)
            if service is None:
                continue
            running.add(service)
            env = manifests.container_env(deployment, container)
            settings = Settings.from_env(service, spec_of(service).default_port, env)
            pre_stop = container["lifecycle"]["preStop"]["sleep"]["seconds"]
            needed = pre_stop + settings.drain_seconds + settings.stop_grace_seconds
            grace = pod_spec(deployment)["terminationGracePeriodSeconds"]
            assert grace >= needed + GRACE_MARGIN_SECONDS, (
                f"{name_of(deployment)}: {grace} s < preStop {pre_stop} + drain "
                f"{settings.drain_seconds} + stop {settings.stop_grace_seconds} + "
                f"{GRACE_MARGIN_SECONDS}"
            )
    assert running == set(SERVICES)


def test_gateway_grace_period_covers_its_drain(manifests: Manifests) -> None:
    """Envoy exits at once on SIGTERM, so its drain happens in preStop: unlisted for a while,
    then drain_listeners and a wait as long as --drain-time-s, all within the grace period."""
    gateway = manifests.get("Deployment", "gateway")
    (envoy,) = containers(gateway)
    script = " ".join(envoy["lifecycle"]["preStop"]["exec"]["command"])
    _, asked, after = script.partition("/drain_listeners?graceful")
    assert asked, "preStop asks Envoy to drain"
    (drain_time,) = [int(a.split("=")[1]) for a in envoy["args"] if a.startswith("--drain-time-s=")]
    assert sum(_sleeps(after)) >= drain_time
    grace = pod_spec(gateway)["terminationGracePeriodSeconds"]
    assert grace >= sum(_sleeps(script)) + GRACE_MARGIN_SECONDS


@pytest.mark.parametrize("service", SERVICES)
def test_gateway_notices_not_serving_within_the_drain(manifests: Manifests, service: str) -> None:
    deployment = manifests.get("Deployment", service)
    (container,) = containers(deployment)
    env = manifests.container_env(deployment, container)
    settings = Settings.from_env(service, spec_of(service).default_port, env)
    config = envoy_config(manifests)
    (cluster,) = [c for c in config["static_resources"]["clusters"] if c["name"] == service]
    (check,) = cluster["health_checks"]
    noticed = _seconds(check["interval"]) * check["unhealthy_threshold"]
    assert noticed < settings.drain_seconds


def test_replicated_services_use_a_server_database_and_surge(manifests: Manifests) -> None:
    """Pods of one service share its data, so more than one (replicas or an autoscaler) needs a
    database server: a SQLite file belongs to one pod. And they roll surge-first, so a deploy
    never lowers the count."""
    autoscaled = {
        h["spec"]["scaleTargetRef"]["name"] for h in manifests.all("HorizontalPodAutoscaler")
    }
    for service in SERVICES:
        deployment = manifests.get("Deployment", service)
        if deployment["spec"].get("replicas", 1) <= 1 and service not in autoscaled:
            continue
        (container,) = containers(deployment)
        env = manifests.container_env(deployment, container)
        url = urlsplit(Settings.from_env(service, spec_of(service).default_port, env).database_url)
        # servicekit.db's own test for SQLite; the default URL (none set) is SQLite too.
        assert not url.scheme.startswith("sqlite"), f"{service}: {url.scheme} with replicas"
        server = manifests.get("Service", str(url.hostname))
        assert url.port in {p["port"] for p in server["spec"]["ports"]}, url.geturl()
        strategy = deployment["spec"]["strategy"]
        assert strategy["type"] == "RollingUpdate", service
        assert strategy["rollingUpdate"]["maxUnavailable"] in (0, "0%"), service


def test_prod_autoscales_every_service_with_a_disruption_budget(prod: Manifests) -> None:
    """Two pods at least, and evictions (node drains) take one at a time: never the last."""
    hpas = {
        h["spec"]["scaleTargetRef"]["name"]: h["spec"] for h in prod.all("HorizontalPodAutoscaler")
    }
    for service in SERVICES:
        assert service in hpas, f"{service}: no HorizontalPodAutoscaler"
        floor = hpas[service]["minReplicas"]
        assert floor >= 2, service
        labels = _pod_labels(prod, service)
        (budget,) = [
            p["spec"]
            for p in prod.all("PodDisruptionBudget")
            if matches(p["spec"]["selector"]["matchLabels"], labels)
        ]
        # Absolute numbers: a percentage of a changing count is rounded.
        if "maxUnavailable" in budget:
            assert isinstance(budget["maxUnavailable"], int), service
            assert 1 <= budget["maxUnavailable"] < floor, service
        else:
            assert isinstance(budget["minAvailable"], int), service
            assert 1 <= budget["minAvailable"] < floor, service


# A database server's image: (role, database, password) of the accounts it creates on its
# first boot, from its container's environment.
_ACCOUNTS = {
    "postgres": lambda env: {
        (
            env["POSTGRES_USER"],
            env.get("POSTGRES_DB", env["POSTGRES_USER"]),
            env["POSTGRES_PASSWORD"],
        ),
        # k8s/base/postgres/databases.sh
        *((n, n, env[f"{n.upper()}_PASSWORD"]) for n in env.get("SERVICE_DATABASES", "").split()),
    },
    "mariadb": lambda env: {
        (env["MARIADB_USER"], env["MARIADB_DATABASE"], env["MARIADB_PASSWORD"]),
    },
}


def test_each_service_has_a_database_of_its_own_that_its_server_creates(
    manifests: Manifests,
) -> None:
    databases: dict[tuple[str, str], str] = {}
    for service in SERVICES:
        deployment = manifests.get("Deployment", service)
        (container,) = containers(deployment)
        env = manifests.container_env(deployment, container)
        url = urlsplit(Settings.from_env(service, spec_of(service).default_port, env).database_url)
        if url.scheme.startswith("sqlite"):
            continue
        server_service = manifests.get("Service", str(url.hostname))
        (server,) = [
            w
            for w, labels in manifests.pod_labels()
            if matches(server_service["spec"]["selector"], labels)
        ]
        (server_container,) = containers(server)
        server_env = manifests.container_env(server, server_container)
        accounts = _ACCOUNTS[server_container["image"].split(":")[0]](server_env)
        database = url.path.lstrip("/")
        account = (unquote(url.username or ""), database, unquote(url.password or ""))
        assert account in accounts, f"{service}: {url.username}@{url.hostname}/{database}"
        where = (str(url.hostname), database)
        assert where not in databases, f"{service} shares {where} with {databases.get(where)}"
        databases[where] = service


def test_rollouts_never_lower_capacity(manifests: Manifests) -> None:
    """Rolling updates surge first; only single-writer SQLite pods are replaced instead."""
    autoscaled = {
        h["spec"]["scaleTargetRef"]["name"] for h in manifests.all("HorizontalPodAutoscaler")
    }
    for deployment in manifests.all("Deployment"):
        name = deployment["metadata"]["name"]
        strategy = deployment["spec"]["strategy"]
        claims = [
            v for v in pod_spec(deployment).get("volumes", []) if "persistentVolumeClaim" in v
        ]
        if claims:
            # A ReadWriteOnce volume and one SQLite writer: exactly one pod, ever.
            assert strategy == {"type": "Recreate"}, name
            assert deployment["spec"]["replicas"] == 1, name
            assert name not in autoscaled
        else:
            assert strategy["type"] == "RollingUpdate", name
            assert strategy["rollingUpdate"]["maxUnavailable"] in (0, "0%"), name


def test_autoscalers_target_deployments_they_own(manifests: Manifests) -> None:
    for hpa in manifests.all("HorizontalPodAutoscaler"):
        ref = hpa["spec"]["scaleTargetRef"]
        assert (ref["apiVersion"], ref["kind"]) == ("apps/v1", "Deployment")
        target = manifests.get("Deployment", ref["name"])
        # A replicas field would be re-applied on every deploy, fighting the autoscaler.
        assert "replicas" not in target["spec"], ref["name"]
        # Utilization is relative to the CPU request.
        for container in containers(target):
            assert "cpu" in container["resources"]["requests"]


def test_services_and_disruption_budgets_select_pods(manifests: Manifests) -> None:
    selectors = [(s, s["spec"]["selector"]) for s in manifests.all("Service")]
    selectors += [
        (p, p["spec"]["selector"]["matchLabels"]) for p in manifests.all("PodDisruptionBudget")
    ]
    for obj, selector in selectors:
        assert any(matches(selector, labels) for _, labels in manifests.pod_labels()), name_of(obj)


# ------------------------------------------------------------------ configuration


def test_everything_a_workload_reads_is_defined(manifests: Manifests) -> None:
    """ConfigMap and Secret keys, whole ConfigMaps/Secrets, volumes and claims."""
    claims = {c["metadata"]["name"] for c in manifests.all("PersistentVolumeClaim")}
    for workload in manifests.workloads():
        spec = pod_spec(workload)
        for container in containers(workload, init=True):
            for source in container.get("envFrom", []):
                ((kind, ref),) = source.items()
                manifests.get("ConfigMap" if kind == "configMapRef" else "Secret", ref["name"])
            for var in container.get("env", []):
                ref = var.get("valueFrom", {})
                if "configMapKeyRef" in ref:
                    key = ref["configMapKeyRef"]
                    assert key["key"] in manifests.configmap_data(key["name"]), var
                if "secretKeyRef" in ref:
                    key = ref["secretKeyRef"]
                    assert key["key"] in manifests.secret_data(key["name"]), var
            # The whole environment resolves, $(VAR) references included.
            env = manifests.container_env(workload, container)
            unresolved = {k: v for k, v in env.items() if re.search(r"\$\(", v)}
            assert not unresolved, f"{name_of(workload)}: {unresolved}"
        volumes = {v["name"]: v for v in spec.get("volumes", [])}
        templates = {
            t["metadata"]["name"] for t in workload["spec"].get("volumeClaimTemplates", [])
        }
        for container in containers(workload, init=True):
            for mount in container.get("volumeMounts", []):
                assert mount["name"] in volumes or mount["name"] in templates, mount
        for volume in volumes.values():
            if "configMap" in volume:
                data = manifests.configmap_data(volume["configMap"]["name"])
                for item in volume["configMap"].get("items", []):
                    assert item["key"] in data
            if "secret" in volume:
                data = manifests.secret_data(volume["secret"]["secretName"])
                for item in volume["secret"].get("items", []):
                    assert item["key"] in data
            if "persistentVolumeClaim" in volume:
                assert volume["persistentVolumeClaim"]["claimName"] in claims


def test_every_service_accepts_its_settings_and_listens_in_the_pod(manifests: Manifests) -> None:
    """An unknown PROFILE stops a service at start-up; the overlay's name is its profile. The
    default bind is loopback, which the kubelet's probes and the gateway could not reach."""
    for service in SERVICES:
        deployment = manifests.get("Deployment", service)
        (container,) = containers(deployment)
        env = manifests.container_env(deployment, container)
        settings = Settings.from_env(service, spec_of(service).default_port, env)
        assert settings.profile == manifests.overlay, service
        assert settings.grpc_bind == "0.0.0.0", service


def test_prod_has_no_fault_injection(prod: Manifests) -> None:
    """Not set anywhere in what prod applies (a ConfigMap or Secret key, an env var, a
    command), and every container that runs a service is in the prod profile, in which pay
    injects no faults even if FAULT_INJECTION appeared (pay_svc/__main__.py)."""
    rendered = yaml.safe_dump_all(prod.objects)
    assert "FAULT_INJECTION" not in rendered
    running = set()
    for workload in prod.workloads():
        for container in containers(workload, init=True):
            service = _bread_service(container)
            if service is None:
                continue
            running.add(service)
            env = prod.container_env(workload, container)
            assert env["PROFILE"] == "prod", service
            settings = Settings.from_env(service, spec_of(service).default_port, env)
            assert not settings.fault_injection, service
    assert running == set(SERVICES)


def test_secret_values_are_set(manifests: Manifests) -> None:
    for secret in manifests.all("Secret"):
        for key, value in manifests.secret_data(secret["metadata"]["name"]).items():
            assert value.strip(), f"{name_of(secret)}: {key} is empty"


_CREDENTIAL_KEY = re.compile(r"PASS|SECRET|TOKEN|COOKIE|CREDENTIAL|PRIVATE", re.IGNORECASE)
# scheme://user:password@host: a URL with a password in it.
_URL_WITH_PASSWORD = re.compile(r"[a-z][a-z0-9+.-]*://[^/\s:@]+:([^/\s@]+)@", re.IGNORECASE)


def test_no_credentials_in_configmaps_or_manifests(manifests: Manifests) -> None:
    """Credentials live in Secrets; a ConfigMap or a literal env value never holds one."""
    for configmap in manifests.all("ConfigMap"):
        for key, value in configmap.get("data", {}).items():
            assert not _CREDENTIAL_KEY.search(key), f"{name_of(configmap)}: {key}"
            assert not _URL_WITH_PASSWORD.search(value), f"{name_of(configmap)}: {key}"
    for workload in manifests.workloads():
        for container in containers(workload, init=True):
            for var in container.get("env", []):
                if "value" not in var:
                    continue
                assert not _CREDENTIAL_KEY.search(var["name"]), f"{name_of(workload)}: {var}"
                for password in _URL_WITH_PASSWORD.findall(var["value"]):
                    # Only a reference to a variable that comes from a Secret.
                    assert re.fullmatch(r"\$\([A-Z_]+\)", password), f"{name_of(workload)}: {var}"


# ------------------------------------------------------------------ network policies

# (from, to, port name on the target): what must be allowed. Everything else between these
# pods must be refused.
ALLOWED = {
    *(("gateway", service, "grpc") for service in SERVICES),
    ("order", "gateway", "mesh"),
    *((service, "rabbitmq", "amqp") for service in SERVICES),
    *((service, "postgres", "postgres") for service in ("order", "bakery", "customer")),
    ("pay", "mariadb", "mysql"),
    ("rabbitmq", "rabbitmq", "cluster"),
    ("rabbitmq", "rabbitmq", "epmd"),
}
# Prometheus, where the policies expect it: it scrapes each of these ports and nothing else.
PROMETHEUS = Pod("monitoring", {"app.kubernetes.io/name": "prometheus"})
SCRAPED = {
    *(("prometheus", service, "metrics") for service in SERVICES),
    ("prometheus", "gateway", "metrics"),
    ("prometheus", "rabbitmq", "prometheus"),
}
ALLOWED |= SCRAPED
# (to, port name): open to anyone, in the cluster or not.
OPEN = {("gateway", "edge")}


# Sources that are no pod of the namespace: a client outside the cluster's pods, and pods of
# another namespace, one of them with the labels of each workload here (a look-alike order
# elsewhere must not reach the mesh listener).
def _strangers(manifests: Manifests) -> dict[str, Source]:
    strangers: dict[str, Source] = {"outside the cluster": OUTSIDE}
    for workload, labels in manifests.pod_labels():
        name = workload["metadata"]["name"]
        strangers[f"{name} of another namespace"] = Pod("elsewhere", labels)
    # Being called Prometheus, or living beside it, is not enough.
    strangers["prometheus of another namespace"] = Pod("elsewhere", PROMETHEUS.labels)
    strangers["another pod of monitoring"] = Pod("monitoring", {"app.kubernetes.io/name": "x"})
    return strangers


def test_network_policies_allow_exactly_the_intended_paths(manifests: Manifests) -> None:
    pods = {w["metadata"]["name"]: pod_of(manifests, w) for w in manifests.workloads()}
    sources: dict[str, Source] = {**pods, "prometheus": PROMETHEUS, **_strangers(manifests)}
    policies = manifests.all("NetworkPolicy")
    for source_name, source in sources.items():
        for workload in manifests.workloads():
            target = workload["metadata"]["name"]
            for container in containers(workload):
                for port in container.get("ports", []):
                    admitted = allowed(policies, source, pods[target], Port.of(port))
                    expected = (source_name, target, port["name"]) in ALLOWED or (
                        (target, port["name"]) in OPEN
                    )
                    assert admitted == expected, f"{source_name} -> {target}:{port['name']}"


def test_gateway_edge_is_open_to_clients(manifests: Manifests) -> None:
    gateway = manifests.get("Deployment", "gateway")
    (envoy,) = containers(gateway)
    ports = {p["name"]: Port.of(p) for p in envoy["ports"]}
    policies = manifests.all("NetworkPolicy")
    for name, stranger in _strangers(manifests).items():
        assert allowed(policies, stranger, pod_of(manifests, gateway), ports["edge"]), name
        assert not allowed(policies, stranger, pod_of(manifests, gateway), ports["mesh"]), name


def pod_of(manifests: Manifests, workload: Obj) -> Pod:
    """A workload's pods as policies see them: labels, namespace and the namespace's labels."""
    namespace = manifests.get("Namespace", workload["metadata"]["namespace"])
    return Pod(
        namespace["metadata"]["name"],
        workload["spec"]["template"]["metadata"]["labels"],
        namespace["metadata"].get("labels", {}),
    )


def _pod_labels(manifests: Manifests, workload: str) -> dict[str, str]:
    for obj, labels in manifests.pod_labels():
        if obj["metadata"]["name"] == workload:
            return labels
    raise AssertionError(workload)


def _seconds(duration: str) -> float:
    assert duration.endswith("s")
    return float(duration[:-1])


def _sleeps(script: str) -> list[int]:
    return [int(s) for s in re.findall(r"\bsleep (\d+)\b", script)]


def _bread_service(container: Obj) -> str | None:
    """The bread service a container runs (`python -m order_svc`), if any."""
    match container.get("command", []):
        case ["python", "-m", module] if module.removesuffix("_svc") in SERVICES:
            return str(module.removesuffix("_svc"))
    return None


# ------------------------------------------------------------------ metrics

# What Prometheus is told to scrape on each pod (kubernetes_sd, pod role): the port is a
# container port of the pod that the policies admit Prometheus to.
SCRAPE_PATHS = {
    **{service: "/metrics" for service in SERVICES},
    "gateway": "/stats/prometheus",
    "rabbitmq": "/metrics/per-object",
}


def test_every_scraped_pod_says_where_prometheus_finds_its_metrics(manifests: Manifests) -> None:
    annotated = {}
    for workload in manifests.workloads():
        name = workload["metadata"]["name"]
        annotations = workload["spec"]["template"]["metadata"].get("annotations", {})
        if annotations.get("prometheus.io/scrape") != "true":
            continue
        port = int(annotations["prometheus.io/port"])
        named = {p["containerPort"]: p["name"] for c in containers(workload) for p in c["ports"]}
        assert ("prometheus", name, named.get(port)) in SCRAPED, name
        annotated[name] = annotations["prometheus.io/path"]
        if name in SERVICES:
            (container,) = containers(workload)
            env = manifests.container_env(workload, container)
            settings = Settings.from_env(name, spec_of(name).default_port, env)
            # Served on the pod's address, where the annotation says.
            assert (settings.metrics_port, settings.grpc_bind) == (port, "0.0.0.0"), name
    assert annotated == SCRAPE_PATHS


def test_the_gateway_serves_only_prometheus_stats_where_it_is_scraped(
    manifests: Manifests,
) -> None:
    gateway = manifests.get("Deployment", "gateway")
    port = int(gateway["spec"]["template"]["metadata"]["annotations"]["prometheus.io/port"])
    config = envoy_config(manifests)
    (stats,) = [
        listener
        for listener in config["static_resources"]["listeners"]
        if listener["address"]["socket_address"]["port_value"] == port
    ]
    (chain,) = stats["filter_chains"]
    (manager,) = chain["filters"]
    (host,) = manager["typed_config"]["route_config"]["virtual_hosts"]
    proxied = [r for r in host["routes"] if "route" in r]
    assert [(r["match"]["path"], r["route"]["cluster"]) for r in proxied] == [
        ("/stats/prometheus", "envoy_admin")
    ]
    assert all(r["direct_response"]["status"] == 404 for r in host["routes"] if r not in proxied)
    (admin,) = [c for c in config["static_resources"]["clusters"] if c["name"] == "envoy_admin"]
    (endpoint,) = admin["load_assignment"]["endpoints"][0]["lb_endpoints"]
    assert endpoint["endpoint"]["address"] == config["admin"]["address"]


def test_rabbitmq_serves_its_metrics(manifests: Manifests) -> None:
    rabbitmq = manifests.get("StatefulSet", "rabbitmq")
    (config,) = [
        v["configMap"]["name"] for v in pod_spec(rabbitmq)["volumes"] if v["name"] == "config"
    ]
    assert "rabbitmq_prometheus" in manifests.configmap_data(config)["enabled_plugins"]
