"""`make observe`: Prometheus in the foreground, scraping a running `make run`, alerts loaded.

It scrapes every replica slot of the four services (a free slot is simply down), Envoy's
admin stats and RabbitMQ's rabbitmq_prometheus plugin, evaluates prometheus/alerts.yml, and
keeps its data in var/prometheus. Debian's `prometheus` package provides the binary.

    python -m ops.observe [--print-config]
"""

from __future__ import annotations

import argparse
import os
import shutil
import socket
import sys

import yaml

from ops.envoy_config import EnvoyTopology
from ops.run import ROOT, VAR, metrics_port, slot_ports
from servicekit.registry import NAMES

ALERTS = ROOT / "prometheus" / "alerts.yml"
DATA = VAR / "prometheus"
LISTEN = "127.0.0.1:9090"
# rabbitmq_prometheus: /metrics/per-object labels each queue (the dead-letter alert needs it).
RABBITMQ_METRICS = ("127.0.0.1", 15692)
SCRAPE_INTERVAL = "5s"

RABBITMQ_HELP = """RabbitMQ's metrics do not answer at {host}:{port}, so the dead-letter alert
cannot see the queues. Enable its Prometheus plugin (the broker keeps running):
  rabbitmq-plugins enable rabbitmq_prometheus"""


def config() -> dict[str, object]:
    """Prometheus' configuration for `make run` (every slot, ops.run.slot_ports)."""
    envoy = EnvoyTopology()
    services = [
        {
            "targets": [f"127.0.0.1:{metrics_port(port)}" for port in slot_ports(name)],
            "labels": {"service": name},
        }
        for name in NAMES
    ]
    return {
        "global": {"scrape_interval": SCRAPE_INTERVAL, "evaluation_interval": SCRAPE_INTERVAL},
        "rule_files": [str(ALERTS)],
        "scrape_configs": [
            {"job_name": "bread", "static_configs": services},
            {
                "job_name": "envoy",
                "metrics_path": "/stats/prometheus",
                "static_configs": [
                    {"targets": [f"{envoy.admin_address}:{envoy.admin_port}"]},
                ],
            },
            {
                "job_name": "rabbitmq",
                "metrics_path": "/metrics/per-object",
                "static_configs": [{"targets": ["{}:{}".format(*RABBITMQ_METRICS)]}],
            },
        ],
    }


def answers(host: str, port: int) -> bool:
    try:
        socket.create_connection((host, port), timeout=1).close()
    except OSError:
        return False
    return True


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--print-config", action="store_true", help="print it and exit")
    args = parser.parse_args()
    text = yaml.safe_dump(config(), sort_keys=False)
    if args.print_config:
        sys.stdout.write(text)
        return 0
    prometheus = shutil.which("prometheus")
    if prometheus is None:
        print("no prometheus: apt-get install prometheus (Debian's package)", file=sys.stderr)
        return 1
    if not answers(*RABBITMQ_METRICS):
        print(RABBITMQ_HELP.format(host=RABBITMQ_METRICS[0], port=RABBITMQ_METRICS[1]))
    DATA.mkdir(parents=True, exist_ok=True)
    path = DATA / "prometheus.yml"
    path.write_text(text)
    print(f"Prometheus on http://{LISTEN} (alerts: /alerts); data in {DATA}; Ctrl-C stops it.")
    os.execv(
        prometheus,
        [
            prometheus,
            f"--config.file={path}",
            f"--storage.tsdb.path={DATA / 'data'}",
            f"--web.listen-address={LISTEN}",
        ],
    )


if __name__ == "__main__":
    sys.exit(main())
