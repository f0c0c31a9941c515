"""What the edge answered, from Envoy's JSON access log (envoy/envoy.yaml.tmpl).

h2load counts HTTP statuses only; a gRPC call that failed is an HTTP 200 whose grpc-status
says so. Envoy logs each request's grpc-status, so the benchmark counts them per row here.
"""

from __future__ import annotations

import datetime
import json
import pathlib
import time
from collections import Counter


def _now() -> str:
    """The access log's time format (START_TIME, UTC, ms), which sorts as text."""
    return datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


class EdgeLog:
    """Counts the requests that started between start() and stop()."""

    def __init__(self, path: pathlib.Path) -> None:
        self.path = path
        self.offset = 0
        self.started = self.stopped = ""

    def start(self) -> None:
        self.offset = self.path.stat().st_size
        self.started = _now()

    def stop(self) -> None:
        self.stopped = _now()

    def grpc_statuses(self, path: str, expected: int, timeout: float = 5.0) -> Counter[str]:
        """grpc-status (its number; "-" for none) of each request to `path` in the window,
        once `expected` of them are logged (Envoy flushes its log about once a second) or
        timeout seconds pass."""
        deadline = time.monotonic() + timeout
        while True:
            counts = self._count(path)
            if counts.total() >= expected or time.monotonic() > deadline:
                return counts
            time.sleep(0.25)

    def _count(self, path: str) -> Counter[str]:
        counts: Counter[str] = Counter()
        with self.path.open("rb") as log:
            log.seek(self.offset)
            for line in log:
                if not line.startswith(b"{"):
                    continue  # Envoy's own warnings share the file
                entry = json.loads(line)
                if entry.get("path") == path and self.started <= entry["time"] <= self.stopped:
                    status = entry.get("grpc_status")
                    counts["-" if status is None else str(status)] += 1
        return counts
