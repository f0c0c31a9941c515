"""What each process of a running system costs, read from /proc: CPU seconds and memory."""

from __future__ import annotations

import os
import pathlib
import time
from collections.abc import Mapping
from dataclasses import dataclass

TICK = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    """User + system CPU time the process has used so far."""
    fields = pathlib.Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / TICK  # utime, stime


def memory_mb(pid: int) -> tuple[float, float]:
    """(resident set now, its peak since the process started), in MB (VmRSS, VmHWM)."""
    values: dict[str, float] = {}
    for line in pathlib.Path(f"/proc/{pid}/status").read_text().splitlines():
        name, _, rest = line.partition(":")
        if name in ("VmRSS", "VmHWM"):
            values[name] = int(rest.split()[0]) / 1024  # kB
    return values["VmRSS"], values["VmHWM"]


class CpuMeter:
    """CPU seconds per named process over a stretch of time."""

    def __init__(self, pids: Mapping[str, int]) -> None:
        self.pids = dict(pids)

    def snapshot(self) -> dict[str, float]:
        return {name: cpu_seconds(pid) for name, pid in self.pids.items()}

    @staticmethod
    def spent(before: Mapping[str, float], after: Mapping[str, float]) -> dict[str, float]:
        return {name: after[name] - before[name] for name in after}


@dataclass(frozen=True)
class Memory:
    idle: float  # MB resident before any load
    peak: float  # MB, the most it was ever resident (VmHWM) by the end
    end: float  # MB resident at the end


def calibration_ms(rounds: int = 5) -> float:
    """CPU ms of a fixed pure-Python loop (best of `rounds`): how fast this machine runs
    Python, so runs on different machines can be set side by side."""
    best = float("inf")
    for _ in range(rounds):
        started = time.process_time()
        total = 0
        for i in range(1_000_000):
            total += i * i % 7
        best = min(best, time.process_time() - started)
    return best * 1e3
