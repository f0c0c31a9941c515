"""`make run`: every service and Envoy in the foreground under supervisord.

supervisord keeps the others running when one exits, restarts it, and stops
them all cleanly on Ctrl-C (SIGTERM to each, which drains before exiting).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import pathlib
import socket
import sys
from collections.abc import Mapping
from urllib.parse import urlparse

import aio_pika

from ops import dev_signin, trace_sink
from ops.databases import ensure_database
from ops.envoy_config import Endpoint, EnvoyTopology, render
from ops.profiles import PROFILES, database_urls, describe
from ops.tokens import DevIssuer
from servicekit import registry
from servicekit.registry import NAMES
from servicekit.settings import DEFAULT_AMQP_URL, METRICS_PORT_OFFSET, sample_ratio

ROOT = pathlib.Path(__file__).resolve().parent.parent
VAR = ROOT / "var"
# Spans of every process, one JSON object per line (`make trace` reads it).
TRACE_FILE = VAR / "traces.jsonl"
# Ports per service in Envoy's cluster: the replicas plus a free one that a
# rollout starts the next version in (see ops/rollout.py).
SLOTS = 3

BROKER_HELP = """RabbitMQ does not answer at {url} ({error}).
Start it, then run `make run` again:
  rabbitmq-server -detached           # Debian package, as on the CI machines
  # or: docker run -d -p 5672:5672 rabbitmq:3-management
Set AMQP_URL to use another broker."""

SUPERVISORD = """\
[supervisord]
nodaemon=true
logfile={var}/supervisord.log
pidfile={var}/supervisord.pid
childlogdir={var}

[unix_http_server]
file={var}/supervisor.sock

[supervisorctl]
serverurl=unix://{var}/supervisor.sock

[rpcinterface:supervisor]
supervisor.rpcinterface_factory = supervisor.rpcinterface:make_main_rpcinterface
"""

PROGRAM = """
[program:{name}]
priority={priority}
autostart={autostart}
command={command}
directory={root}
{environment}autorestart=true
startsecs=1
stopsignal=TERM
stopwaitsecs=30
redirect_stderr=true
stdout_logfile=/dev/stdout
stdout_logfile_maxbytes=0
"""


def check_broker(url: str) -> str | None:
    """None when RabbitMQ answers at url, else what went wrong."""

    async def connect() -> None:
        connection = await aio_pika.connect(url, timeout=3)
        await connection.close()

    try:
        asyncio.run(connect())
    except Exception as exc:
        return repr(exc)
    return None


def slot_ports(service: str) -> list[int]:
    """The ports a service's replicas may use: 8081, 18081, 28081 for order."""
    base = registry.service(service).port
    return [base + 10000 * slot for slot in range(SLOTS)]


def metrics_port(port: int) -> int:
    """Where the replica on gRPC port `port` serves /metrics (9081 for 8081)."""
    return port + METRICS_PORT_OFFSET


def program(
    name: str,
    command: str,
    env: Mapping[str, object] | None = None,
    priority: int = 20,
    autostart: bool = True,
) -> str:
    """One supervisord program: restarted whenever it exits, stopped with SIGTERM."""
    return PROGRAM.format(
        name=name,
        priority=priority,
        autostart=str(autostart).lower(),
        command=command,
        root=ROOT,
        environment="environment=" + ",".join(f'{k}="{v}"' for k, v in env.items()) + "\n"
        if env
        else "",
    )


def run_database_urls(profile: str, replicas: int) -> dict[str, str]:
    """The databases of `make run`: the profile's, with every service on a server database
    once it has more than one replica (see ops.profiles.database_urls)."""
    return database_urls(profile, str(VAR), replicas={name: replicas for name in NAMES})


def trace_collector(otlp_endpoint: str) -> Endpoint:
    """Where the edge reports its spans: the OTLP collector named (Envoy takes an address),
    else the local receiver that writes them to TRACE_FILE."""
    if not otlp_endpoint:
        return ("127.0.0.1", trace_sink.DEFAULT_PORT)
    url = urlparse(otlp_endpoint if "//" in otlp_endpoint else f"//{otlp_endpoint}")
    return (socket.gethostbyname(url.hostname or "127.0.0.1"), url.port or 4317)


def supervisord_config(
    profile: str, envoy_yaml: pathlib.Path, replicas: int, trace_ratio: float, otlp_endpoint: str
) -> str:
    python = sys.executable
    config = SUPERVISORD.format(var=VAR)
    programs = []
    for name, url in run_database_urls(profile, replicas).items():
        for slot, port in enumerate(slot_ports(name), start=1):
            programs.append(f"{name}-{slot}")
            env = {
                "DATABASE_URL": url,
                "GRPC_PORT": port,
                "METRICS_PORT": metrics_port(port),
                "PYTHONUNBUFFERED": 1,
                "TRACE_SAMPLE_RATIO": trace_ratio,
                "TRACE_FILE": TRACE_FILE,
            }
            command = f"{python} -m {registry.service(name).package}"
            config += program(programs[-1], command, env, 20, slot <= replicas)
    # One group stops the services together (each drains in parallel);
    # Envoy starts first and stops last, routing while they drain.
    config += f"\n[group:bread]\nprograms={','.join(programs)}\npriority=20\n"
    envoy = pathlib.Path(python).parent / "envoy"
    # One worker beat two on a 2-core machine (DESIGN.md, measured).
    command = f"{envoy} -c {envoy_yaml} --concurrency 1 --disable-hot-restart --log-level warn"
    config += program("envoy", command, priority=10)
    # The page's development sign-in, on loopback behind Envoy (/auth/dev-token); the page
    # itself is served by Envoy.
    signin = f"{python} -m ops.dev_signin --port {dev_signin.DEFAULT_PORT}"
    config += program("dev-signin", signin, {"PYTHONUNBUFFERED": 1}, priority=10)
    if trace_ratio and not otlp_endpoint:
        sink = f"{python} -m ops.trace_sink --port {trace_sink.DEFAULT_PORT} --file {TRACE_FILE}"
        config += program("trace-sink", sink, priority=10)
    return config


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--profile", default="default", choices=PROFILES)
    parser.add_argument("--replicas", type=int, default=1, choices=range(1, SLOTS))
    parser.add_argument(
        "--database-url", choices=NAMES, help="only print this service's DATABASE_URL"
    )
    args = parser.parse_args()
    try:
        # Every order is traced unless told otherwise (TRACE_SAMPLE_RATIO=0 turns tracing off).
        trace_ratio = sample_ratio(os.environ.get("TRACE_SAMPLE_RATIO", "1"))
    except ValueError as bad:
        parser.error(str(bad))
    if args.database_url:
        print(run_database_urls(args.profile, args.replicas)[args.database_url])
        return 0

    amqp_url = os.environ.get("AMQP_URL", DEFAULT_AMQP_URL)
    if error := check_broker(amqp_url):
        print(BROKER_HELP.format(url=amqp_url, error=error), file=sys.stderr)
        return 1
    VAR.mkdir(exist_ok=True)
    urls = run_database_urls(args.profile, args.replicas)
    for url in urls.values():
        ensure_database(url)
    envoy_yaml = VAR / "envoy.yaml"
    upstreams = {name: [("127.0.0.1", port) for port in slot_ports(name)] for name in NAMES}
    # The edge verifies tokens with the development key (`make token` signs with it).
    jwks = DevIssuer().ensure_keys().jwks_path
    rate_limit = int(os.environ.get("EDGE_RATE_LIMIT", EnvoyTopology.rate_limit))
    otlp_endpoint = os.environ.get("OTEL_EXPORTER_OTLP_ENDPOINT", "")
    topology = EnvoyTopology(
        upstreams=upstreams,
        jwks_path=jwks,
        rate_limit=rate_limit,
        dev_signin=("127.0.0.1", dev_signin.DEFAULT_PORT),
        trace_sample_percent=100 * trace_ratio,
        trace_collector=trace_collector(otlp_endpoint),
    )
    envoy_yaml.write_text(render(topology))
    conf = VAR / "supervisord.conf"
    conf.write_text(
        supervisord_config(args.profile, envoy_yaml, args.replicas, trace_ratio, otlp_endpoint)
    )
    print(
        f"bread ({args.profile}): services {', '.join(NAMES)}; gateway and web page"
        " http://localhost:8088 (sign in there; gRPC and HTTP/JSON with `make token`);"
        f" Ctrl-C stops everything. Logs: {VAR}",
        flush=True,
    )
    for name, url in urls.items():
        print(f"  {name}: {args.replicas} replica(s), {describe(url)}", flush=True)
    supervisord = pathlib.Path(sys.executable).parent / "supervisord"
    os.execv(supervisord, [str(supervisord), "-n", "-c", str(conf)])


if __name__ == "__main__":
    sys.exit(main())
