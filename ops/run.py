"""`make run`: every service and Envoy in the foreground under supervisord.

supervisord keeps the others running when one exits, restarts it, and stops
them all cleanly on Ctrl-C (SIGTERM to each, which drains before exiting).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import pathlib
import sys

import aio_pika

from ops.databases import ensure_database
from ops.envoy_config import EnvoyTopology, render
from ops.profiles import SERVICES, database_urls
from servicekit.settings import DEFAULT_AMQP_URL

ROOT = pathlib.Path(__file__).resolve().parent.parent
VAR = ROOT / "var"

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
command={command}
directory={root}
environment={environment}
autorestart=true
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


def supervisord_config(profile: str, envoy_yaml: pathlib.Path) -> str:
    python = sys.executable
    config = SUPERVISORD.format(var=VAR)
    for name, url in database_urls(profile, str(VAR)).items():
        env = {"DATABASE_URL": url, "PYTHONUNBUFFERED": "1"}
        config += PROGRAM.format(
            name=name,
            priority=20,
            command=f"{python} -m {name}_svc",
            root=ROOT,
            environment=",".join(f'{k}="{v}"' for k, v in env.items()),
        )
    envoy = pathlib.Path(python).parent / "envoy"
    # One group stops the services together (each drains in parallel);
    # Envoy starts first and stops last, routing while they drain.
    config += f"\n[group:bread]\nprograms={','.join(SERVICES)}\npriority=20\n"
    config += PROGRAM.format(
        name="envoy",
        priority=10,
        # One worker beat two on a 2-core machine (DESIGN.md, measured).
        command=f"{envoy} -c {envoy_yaml} --concurrency 1 --log-level warn",
        root=ROOT,
        environment='ENVOY="1"',
    )
    return config


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--profile", default="default", choices=["default", "polyglot"])
    args = parser.parse_args()

    amqp_url = os.environ.get("AMQP_URL", DEFAULT_AMQP_URL)
    if error := check_broker(amqp_url):
        print(BROKER_HELP.format(url=amqp_url, error=error), file=sys.stderr)
        return 1
    VAR.mkdir(exist_ok=True)
    for url in database_urls(args.profile, str(VAR)).values():
        ensure_database(url)
    envoy_yaml = VAR / "envoy.yaml"
    envoy_yaml.write_text(render(EnvoyTopology()))
    conf = VAR / "supervisord.conf"
    conf.write_text(supervisord_config(args.profile, envoy_yaml))
    print(
        f"bread ({args.profile}): services {', '.join(SERVICES)}; gateway http://localhost:8088"
        f" (gRPC and HTTP/JSON); Ctrl-C stops everything. Logs: {VAR}",
        flush=True,
    )
    supervisord = pathlib.Path(sys.executable).parent / "supervisord"
    os.execv(supervisord, [str(supervisord), "-n", "-c", str(conf)])


if __name__ == "__main__":
    sys.exit(main())
