"""Settings shared by every service, read once from the environment."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass

from servicekit.events import LOG_RETENTION_DAYS

DEFAULT_AMQP_URL = "amqp://guest:guest@127.0.0.1:5672/"
PROFILES = ("dev", "prod")
# METRICS_PORT's default: GRPC_PORT plus this.
METRICS_PORT_OFFSET = 1000


@dataclass(frozen=True)
class Settings:
    service: str
    grpc_port: int
    grpc_bind: str
    # Prometheus scrapes http://<grpc_bind>:<metrics_port>/metrics.
    metrics_port: int
    database_url: str
    amqp_url: str
    # Topic exchange for domain events; tests give each run its own.
    exchange: str
    # Queue names are "<queue_prefix>.<service>".
    queue_prefix: str
    # After SIGTERM: stay NOT_SERVING but answering this long, so load
    # balancers and the kubelet notice before the port closes.
    drain_seconds: float
    # Then: how long accepted RPCs may take to finish.
    stop_grace_seconds: float
    # A dependency may be down this long before readiness drops: a broker
    # blip should not take every replica out of rotation (the outbox holds
    # the events meanwhile).
    dependency_grace_seconds: float
    # A background task failing this long (not for a missing dependency)
    # fails liveness, so the process is restarted.
    stuck_task_seconds: float
    log_level: str
    # "dev" or "prod"; prod refuses development switches such as faults.
    profile: str
    # Development fault injection (pay): off unless FAULT_INJECTION=on, never in prod.
    fault_injection: bool
    # Share of the traces this service starts that are recorded (servicekit.tracing); a
    # trace begun upstream keeps its caller's decision. 0: tracing off.
    trace_sample_ratio: float
    # Where spans go: OTLP to this collector when set, else JSON lines to trace_file.
    otlp_endpoint: str
    trace_file: str
    # Inbox rows older than this are pruned (servicekit/pruning.py).
    inbox_retention_days: float

    @classmethod
    def from_env(
        cls, service: str, default_port: int, environ: Mapping[str, str] = os.environ
    ) -> Settings:
        grpc_port = int(environ.get("GRPC_PORT", default_port))
        return cls(
            service=service,
            grpc_port=grpc_port,
            # Loopback unless told otherwise: locally only Envoy may reach a service
            # (a pod sets 0.0.0.0, and NetworkPolicies admit only the gateway).
            grpc_bind=environ.get("GRPC_BIND", "127.0.0.1"),
            # 9081-9084 beside 8081-8084 under `make run`; tests give each replica a free one.
            metrics_port=int(environ.get("METRICS_PORT", grpc_port + METRICS_PORT_OFFSET)),
            database_url=environ.get("DATABASE_URL", f"sqlite:///var/{service}.db"),
            amqp_url=environ.get("AMQP_URL", DEFAULT_AMQP_URL),
            exchange=environ.get("EVENT_EXCHANGE", "bread.events"),
            queue_prefix=environ.get("QUEUE_PREFIX", "bread"),
            drain_seconds=float(environ.get("DRAIN_SECONDS", "3")),
            stop_grace_seconds=float(environ.get("STOP_GRACE_SECONDS", "10")),
            dependency_grace_seconds=float(environ.get("DEPENDENCY_GRACE_SECONDS", "10")),
            stuck_task_seconds=float(environ.get("STUCK_TASK_SECONDS", "60")),
            log_level=environ.get("LOG_LEVEL", "INFO"),
            profile=_profile(environ.get("PROFILE", "dev")),
            fault_injection=environ.get("FAULT_INJECTION", "off") == "on",
            trace_sample_ratio=sample_ratio(environ.get("TRACE_SAMPLE_RATIO", "0")),
            otlp_endpoint=environ.get("OTEL_EXPORTER_OTLP_ENDPOINT", ""),
            trace_file=environ.get("TRACE_FILE", "var/traces.jsonl"),
            inbox_retention_days=_inbox_retention(environ.get("INBOX_RETENTION_DAYS", "8")),
        )

    @property
    def queue(self) -> str:
        return f"{self.queue_prefix}.{self.service}"


def _profile(value: str) -> str:
    if value not in PROFILES:
        # A typo must not quietly run production with development switches.
        raise ValueError(f"PROFILE must be one of {', '.join(PROFILES)}, not {value!r}")
    return value


def sample_ratio(value: str) -> float:
    """TRACE_SAMPLE_RATIO as a number from 0 to 1; ValueError saying so otherwise."""
    try:
        ratio = float(value)
    except ValueError:
        ratio = -1.0
    if not 0.0 <= ratio <= 1.0:
        raise ValueError(f"TRACE_SAMPLE_RATIO must be a number from 0 to 1, not {value!r}")
    return ratio


def _inbox_retention(value: str) -> float:
    days = float(value)
    if days <= LOG_RETENTION_DAYS:
        # A replay from the event log could then bring back events the inbox forgot.
        raise ValueError(
            f"INBOX_RETENTION_DAYS must be more than the event log's {LOG_RETENTION_DAYS} days,"
            f" not {value}"
        )
    return days
