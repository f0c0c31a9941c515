"""Envoy admin figures for the scenarios: counter deltas and an ejection timeline."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field

import httpx

# What tells the story of the order -> pay path (and of the edge's PlaceOrder admission, if any).
INTERESTING = (
    "upstream_rq_total",
    "upstream_rq_timeout",
    "upstream_rq_retry",
    "upstream_rq_retry_success",
    "upstream_rq_retry_overflow",
    "upstream_rq_pending_overflow",
    "upstream_rq_active_overflow",
    "upstream_cx_none_healthy",
    "upstream_rq_503",
    "upstream_rq_504",
    "outlier_detection.ejections_enforced_total",
    "outlier_detection.ejections_active",
)
CLUSTERS = ("pay_mesh", "order_place", "order")
EJECTIONS_ACTIVE = "cluster.pay_mesh.outlier_detection.ejections_active"


def stats(admin_url: str, pattern: str = "") -> dict[str, int]:
    """Counters and gauges (no histograms) whose name matches the regex pattern."""
    params = {"filter": pattern} if pattern else {}
    text = httpx.get(f"{admin_url}/stats", params=params, timeout=2).text
    values: dict[str, int] = {}
    for line in text.splitlines():
        name, _, value = line.partition(": ")
        if value.isdigit():
            values[name] = int(value)
    return values


def path_stats(admin_url: str) -> dict[str, int]:
    names = "|".join(c.replace(".", r"\.") for c in CLUSTERS)
    return {
        k: v
        for k, v in stats(admin_url, rf"^cluster\.({names})\.").items()
        if k.split(".", 2)[2] in INTERESTING
    }


def delta_report(before: dict[str, int], after: dict[str, int]) -> str:
    """Counter increases during the run (gauges as their last value), zeros left out."""
    lines = []
    for name, value in sorted(after.items()):
        gauge = name.endswith("_active")
        change = value if gauge else value - before.get(name, 0)
        if change:
            lines.append(f"  {name}: {change}{' (now)' if gauge else ''}")
    return "\n".join(lines) or "  (nothing)"


@dataclass
class EjectionTimeline:
    """Samples pay_mesh's ejections_active every `interval` s, on perf_counter time."""

    admin_url: str
    interval: float = 0.1
    samples: list[tuple[float, int]] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def __enter__(self) -> EjectionTimeline:
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(5)

    def _run(self) -> None:
        pattern = "^" + EJECTIONS_ACTIVE.replace(".", r"\.") + "$"
        with httpx.Client(timeout=1) as client:
            while not self._stop.is_set():
                try:
                    text = client.get(f"{self.admin_url}/stats", params={"filter": pattern}).text
                    active = int(text.rpartition(": ")[2] or 0)
                except (httpx.HTTPError, ValueError):
                    active = -1  # unknown; Envoy too busy to answer in time
                self.samples.append((time.perf_counter(), active))
                self._stop.wait(self.interval)

    def ejected_windows(self, origin: float) -> list[tuple[float, float]]:
        """[start, end) seconds after origin during which pay was seen ejected."""
        windows: list[tuple[float, float]] = []
        start: float | None = None
        for at, active in self.samples:
            if active > 0 and start is None:
                start = at
            elif active == 0 and start is not None:
                windows.append((start - origin, at - origin))
                start = None
        if start is not None:
            windows.append((start - origin, self.samples[-1][0] - origin))
        return windows
